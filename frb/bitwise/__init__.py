"""Bitwise CPU engine: binary layers as XOR-popcount kernels on packed sign bits (numba).

Modules (import what you use from them; this package imports only ``config``, which must run
before numba is imported, so that importing the packed file format pulls in no model code):

* :mod:`frb.bitwise.runner`: ``make_runner(model, backend)`` / ``select_runner`` (the one backend
  switch), ``warmup()``, ``FUSED_RUNNERS`` (whole-backbone runners such as SRResNet's).
* :mod:`frb.bitwise.srresnet`: ``BitwiseSRResNet``, a binarized SRResNet with its body fused.
* :mod:`frb.bitwise.modules`: ``pack_modules(model)``, any binarized model with packed layers (FRBT).
* :mod:`frb.bitwise.export`: the packed safetensors format (``save_packed``, ``read_packed``,
  ``install_packed``; loading goes through ``frb.models.create_model(name, scale, pretrained=path)``).
* :mod:`frb.bitwise.packing`: ``PackedLayer``, what a binary layer is to the kernels, built from
  what its parts declare (``engine_spec()``, ``num_bases``), and ``FrozenBases``.
* :mod:`frb.bitwise.ops`, :mod:`frb.bitwise.kernels`: one layer; the numba kernels.
* ``SETTINGS``: cache directory, threading layer, CPU features and popcount strategy (:mod:`frb.bitwise.config`).
"""
from frb.bitwise.config import SETTINGS

__all__ = ["SETTINGS"]
