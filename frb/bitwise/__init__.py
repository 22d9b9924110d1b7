"""Bitwise CPU engine: binary layers as XOR-popcount kernels on packed sign bits (numba).

Public API:

* ``make_runner(model, backend="bitwise") -> Callable[[Tensor], Tensor]``: the backend switch
  ("torch" or "bitwise") used by the app and the CLI (:mod:`frb.bitwise.runner`).
* ``warmup(names=None) -> float``: compile every kernel once (call at start).
* ``BitwiseSRResNet(model)``: a binarized SRResNet with its body in fused kernels.
* ``pack_modules(model)``: any binarized model with packed Binary{Conv2d,Linear} (FRBT).
* ``pack_model(model)``, ``save_packed(model, path)``, ``read_packed(path)``,
  ``load_packed(path, name=None, scale=None)``: packed safetensors files (:mod:`frb.bitwise.export`).
* ``SETTINGS``: the cache directory, threading layer, CPU features and popcount strategy chosen
  at import (:mod:`frb.bitwise.config`, which must run before numba is imported).
"""
from frb.bitwise.config import SETTINGS  # first: sets numba's environment

from frb.bitwise.export import PackedFileError, load_packed, pack_model, read_packed, save_packed
from frb.bitwise.modules import pack_modules
from frb.bitwise.runner import BACKENDS, make_runner, warmup
from frb.bitwise.srresnet import BitwiseSRResNet

__all__ = [
    "BACKENDS",
    "SETTINGS",
    "BitwiseSRResNet",
    "PackedFileError",
    "load_packed",
    "make_runner",
    "pack_model",
    "pack_modules",
    "read_packed",
    "save_packed",
    "warmup",
]
