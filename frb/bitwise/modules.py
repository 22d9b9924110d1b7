"""Drop-in torch modules that run one binary layer in the bitwise kernels (the generic path).

:func:`pack_modules` copies a binarized model with every ``BinaryConv2d`` / ``BinaryLinear``
replaced by :class:`PackedBinaryConv2d` / :class:`PackedBinaryLinear`; everything else stays
torch. This is how FRBT (binarized SwinIR) runs on the engine. The packed modules are for
inference only (float32, no autograd) and hold no latent weights.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import Tensor, nn

from frb.bitwise import ops
from frb.bitwise.packing import PackedLayer
from frb.layers import BinaryConv2d, BinaryLinear, binary_layers


def _channels_last(x: Tensor) -> np.ndarray:
    """(N, C, H, W) tensor -> C-contiguous (N, H, W, C) float32 array, zero-copy when possible."""
    return np.ascontiguousarray(x.detach().float().permute(0, 2, 3, 1).numpy())


class _PackedModule(nn.Module):
    """Holds one packed layer; ``adds_input`` mirrors the binary layer's (the models read it)."""

    def __init__(self, layer: BinaryConv2d | BinaryLinear) -> None:
        super().__init__()
        self.packed = PackedLayer.from_layer(layer)

    @property
    def adds_input(self) -> bool:
        return self.packed.shortcut


class PackedBinaryConv2d(_PackedModule):
    """A ``BinaryConv2d`` in the kernels: (N, Cin, H, W) -> (N, Cout, H', W') channels_last."""

    def forward(self, x: Tensor) -> Tensor:
        xa = _channels_last(x)
        bits = ops.input_bits(self.packed, xa, self.packed.padding)
        out, _ = ops.conv(self.packed, bits, xa)
        return torch.from_numpy(out).permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        p = self.packed
        return f"{p.in_channels}, {p.out_channels}, kernel_size={p.kernel_size}, bases={p.num_bases}"


class PackedBinaryLinear(_PackedModule):
    """A ``BinaryLinear`` in the kernels: (..., Cin) -> (..., Cout)."""

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        xa = np.ascontiguousarray(x.detach().float().reshape(-1, x.shape[-1]).numpy())
        samples = x.shape[0] if x.dim() > 2 else 1
        out = ops.linear(self.packed, xa, samples)
        return torch.from_numpy(out).reshape(*lead, self.packed.out_channels)

    def extra_repr(self) -> str:
        p = self.packed
        return f"{p.in_channels}, {p.out_channels}, bases={p.num_bases}"


def pack_modules(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose binary layers run in the bitwise kernels (``model`` is untouched)."""
    memo: dict[int, nn.Module] = {}
    for layer in binary_layers(model).values():
        memo[id(layer)] = PackedBinaryConv2d(layer) if isinstance(layer, BinaryConv2d) else PackedBinaryLinear(layer)
    return copy.deepcopy(model, memo).eval()
