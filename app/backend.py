"""The one place that picks how a model runs: the bitwise CPU engine or plain torch.

Binarized models default to the bitwise engine (``frb.bitwise``); when it cannot run a model, the
torch forward is used and a notice says so. Full-precision models always run in torch.
"""
from __future__ import annotations

import threading
import weakref
from typing import Callable

from torch import Tensor, nn

from frb.bitwise import make_runner
from frb.models import ModelSpec

BACKENDS = ("bitwise", "torch")

Forward = Callable[[Tensor], Tensor]

_lock = threading.Lock()
_runners: "weakref.WeakKeyDictionary[nn.Module, Forward | str]" = weakref.WeakKeyDictionary()


def _make_bitwise(model: nn.Module) -> Forward | str:
    """A bitwise runner for ``model``, or the reason there is none."""
    try:
        return make_runner(model, "bitwise")
    except (NotImplementedError, ValueError, TypeError) as exc:
        return f"the bitwise engine cannot run this model ({exc})"


def select_forward(model: nn.Module, spec: ModelSpec, backend: str) -> tuple[Forward, str, str]:
    """``(forward, backend actually used, notice)`` for running ``model`` with the requested backend."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if not spec.binary or backend == "torch":
        return model, "torch", ""
    with _lock:
        if model not in _runners:
            _runners[model] = _make_bitwise(model)
        runner = _runners[model]
    if isinstance(runner, str):
        return model, "torch", f"{spec.title}: {runner}; ran with torch instead"
    return runner, "bitwise", ""

