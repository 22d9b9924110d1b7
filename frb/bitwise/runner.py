"""The one backend switch (bitwise engine or plain torch), used by the CLI, evaluation and the app.

``make_runner(model, backend)`` returns a callable ``(N, 3, H, W) float32 -> (N, 3, sH, sW)``:

* ``"torch"``: the model's own forward under ``torch.inference_mode`` (fake-quantised binary
  layers for binarized models).
* ``"bitwise"``: binary layers in the packed kernels. A backbone with a fused whole-body runner
  (:data:`FUSED_RUNNERS`: a binarized SRResNet runs as :class:`BitwiseSRResNet`) uses it; any
  other binarized model gets its binary layers swapped for packed modules (:func:`pack_modules`,
  e.g. FRBT). A model without binary layers (bicubic, full precision) runs in torch.

``select_runner`` is what interactive callers use: it keeps one runner per model and, when the
engine refuses a model (a part it cannot run), falls back to torch with a notice saying why.
Both backends give the same uint8 images up to float rounding (at most 1 level, in a few
pixels). Runners hold no per-call state and may be called from several threads at once.
"""
from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

from frb.bitwise.modules import pack_modules
from frb.bitwise.srresnet import BitwiseSRResNet
from frb.layers import binary_layers
from frb.models import MODELS, create_model, get_spec
from frb.models.srresnet import SRResNet

#: The backends, the default first.
BACKENDS = ("bitwise", "torch")

Runner = Callable[[Tensor], Tensor]

#: Backbone class -> a runner with the whole body fused in the kernels (optional per backbone).
FUSED_RUNNERS: dict[type[nn.Module], Callable[[nn.Module], Runner]] = {SRResNet: BitwiseSRResNet}


class TorchRunner:
    """``model(x)`` in inference mode."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model.eval()

    def __call__(self, x: Tensor) -> Tensor:
        with torch.inference_mode():
            return self.model(x)


def make_runner(model: nn.Module, backend: str = "bitwise") -> Runner:
    """A callable running ``model`` on ``backend``; raises ``TypeError`` / ``ValueError`` when the
    engine cannot run one of the model's binary layers (the message names the part)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch" or not binary_layers(model):
        return TorchRunner(model)
    fused = FUSED_RUNNERS.get(type(model))
    return fused(model) if fused is not None else TorchRunner(pack_modules(model))


_lock = threading.Lock()
_runners: "weakref.WeakKeyDictionary[nn.Module, Runner | str]" = weakref.WeakKeyDictionary()


def select_runner(model: nn.Module, backend: str) -> tuple[Runner, str, str]:
    """``(runner, backend actually used, notice)``: the runner for ``model`` on ``backend``, built once
    per model; where the engine cannot run the model, torch and a notice that says why."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if backend == "torch" or not binary_layers(model):
        return TorchRunner(model), "torch", ""
    with _lock:
        if model not in _runners:
            try:
                _runners[model] = make_runner(model, "bitwise")
            except (NotImplementedError, ValueError, TypeError) as exc:
                _runners[model] = f"the bitwise engine cannot run this model ({exc})"
        runner = _runners[model]
    if isinstance(runner, str):
        title = getattr(getattr(model, "spec", None), "title", type(model).__name__)
        return TorchRunner(model), "torch", f"{title}: {runner}; ran with torch instead"
    return runner, "bitwise", ""


def warmup(names: Iterable[str] | None = None) -> float:
    """Compile (or load from the cache) every kernel the binarized models use; returns seconds.

    ``names``: public model names, default all binarized ones. Runs each model's bitwise path
    once on its backbone's tiny configuration; the app calls this at start so that no request
    pays for compilation.
    """
    start = time.perf_counter()
    for name in names if names is not None else list(MODELS):
        spec = get_spec(name)
        if spec.binary:
            tiny = create_model(name, 2, depth=spec.backbone.tiny_depth)
            make_runner(tiny, "bitwise")(torch.rand(1, 3, 8, 8))
    return time.perf_counter() - start
