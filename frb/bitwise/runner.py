"""The backend switch used by the app and the CLI, and the start-up warm-up.

``make_runner(model, backend)`` returns a callable ``(N, 3, H, W) float32 -> (N, 3, sH, sW)``:

* ``"torch"``: the model's own forward under ``torch.inference_mode`` (fake-quantised binary
  layers for binarized models).
* ``"bitwise"``: binary layers in the packed kernels. A binarized SRResNet runs as
  :class:`BitwiseSRResNet` (fused body); any other model gets its binary layers swapped for
  packed modules (:func:`pack_modules`, e.g. FRBT). A model without binary layers (bicubic,
  full precision) has nothing to pack and runs in torch.

Both backends give the same uint8 images up to float rounding (at most 1 level, in a few
pixels). The runners hold no per-call state and may be called from several threads at once.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

from frb.bitwise.modules import pack_modules
from frb.bitwise.srresnet import BitwiseSRResNet
from frb.layers import binarize, binary_layers
from frb.models import MODELS, get_spec
from frb.models.srresnet import SRResNet
from frb.models.swinir import SwinIR

BACKENDS = ("torch", "bitwise")

Runner = Callable[[Tensor], Tensor]


class TorchRunner:
    """``model(x)`` in inference mode."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model.eval()

    def __call__(self, x: Tensor) -> Tensor:
        with torch.inference_mode():
            return self.model(x)


def make_runner(model: nn.Module, backend: str = "bitwise") -> Runner:
    """A callable running ``model`` on the chosen backend ("torch" or "bitwise")."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch" or not binary_layers(model):
        return TorchRunner(model)
    if isinstance(model, SRResNet):
        return BitwiseSRResNet(model)
    return TorchRunner(pack_modules(model))


def _tiny_model(name: str) -> nn.Module:
    """The smallest model with the same kernel variants as the public model ``name``."""
    spec = get_spec(name)
    if spec.arch == "srresnet":
        return binarize(SRResNet(scale=2, num_block=2), spec.method)
    return binarize(SwinIR(scale=2, depths=(2,), num_heads=(6,)), spec.method)


def warmup(names: Iterable[str] | None = None) -> float:
    """Compile (or load from the cache) every kernel the binarized models use; returns seconds.

    ``names``: public model names, default all binarized ones. Runs each model's bitwise path
    once on a tiny input; the app calls this at start so that no request pays for compilation.
    """
    start = time.perf_counter()
    for name in names if names is not None else [n for n, s in MODELS.items() if s.binary]:
        if not get_spec(name).binary:
            continue
        make_runner(_tiny_model(name), "bitwise")(torch.rand(1, 3, 8, 8))
    return time.perf_counter() - start
