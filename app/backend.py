"""The one place that picks how a model runs: the bitwise CPU engine or plain torch.

Binarized models default to the bitwise engine (``frb.bitwise``); when it is missing or cannot run
a model, the torch forward is used and a notice says so. Full-precision models always run in torch.
"""
from __future__ import annotations

import threading
import weakref
from typing import Callable

from torch import Tensor, nn

from frb.models import ModelSpec

BACKENDS = ("bitwise", "torch")

Forward = Callable[[Tensor], Tensor]

_lock = threading.Lock()
_runners: "weakref.WeakKeyDictionary[nn.Module, Forward | str]" = weakref.WeakKeyDictionary()


def _make_bitwise(model: nn.Module) -> Forward | str:
    """A bitwise runner for ``model``, or the reason there is none."""
    try:
        from frb.bitwise import make_runner
    except ImportError:
        return "the bitwise engine (frb.bitwise) is not available in this build"
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


def warmup() -> str:
    """Compile the bitwise kernels once (numba JIT) so the first request is fast; a notice if unavailable."""
    try:
        from frb.bitwise import warmup as bitwise_warmup
    except ImportError:
        return "bitwise engine not available: binarized models run with torch"
    bitwise_warmup()
    return ""
