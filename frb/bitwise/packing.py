"""Bit packing and the engine's description of one binary layer (:class:`PackedLayer`).

Signs are packed along channels, 64 per ``uint64`` word: bit ``c % 64`` of word ``c // 64`` is 1
where the value is -1 (``frb.binarize``'s convention), and the tail bits of the last word are 0.
Weights of a binary layer become ``bits[base, tap, word, out]`` (tap = dy * k + dx; a Linear
layer is a 1x1 "convolution" with one tap) and ``scales[base, out]``, so that

    W_b = sum_i scales[i, c] * B_i,   B_i = +1 / -1 from the bits,

which is what the layer's weight quantizer computes (``weight_quantizer.bases(W)``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from frb import binarize as B
from frb.layers import BinaryConv2d, BinaryLinear

WORD_BITS = 64

#: The most weight bases the kernels sum per output (FRB's SRB has two).
MAX_BASES = 2
INPUT_MODES = ("sign", "threshold", "mean_centered")
OUTPUT_MODES = ("plain", "shortcut", "prelu")


def num_words(channels: int) -> int:
    """64-bit words needed for ``channels`` packed signs: ceil(channels / 64)."""
    return -(-channels // WORD_BITS)


def pack_bits(negative: np.ndarray) -> np.ndarray:
    """Pack a boolean array along its last axis: (..., C) -> (..., ceil(C / 64)) uint64."""
    channels = negative.shape[-1]
    padded = np.zeros(negative.shape[:-1] + (num_words(channels) * WORD_BITS,), np.uint8)
    padded[..., :channels] = negative
    packed = np.packbits(padded, axis=-1, bitorder="little")
    return np.ascontiguousarray(packed.view("<u8"), dtype=np.uint64)


def unpack_bits(words: np.ndarray, channels: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: (..., words) uint64 -> (..., channels) bool."""
    as_bytes = np.ascontiguousarray(words, dtype="<u8").view(np.uint8)
    return np.unpackbits(as_bytes, axis=-1, bitorder="little")[..., :channels].astype(bool)


def pack_weight_signs(signs: Tensor) -> np.ndarray:
    """(out, in, k, k) or (out, in) +/-1 weights -> (k*k, words, out) uint64 (1 tap for Linear)."""
    neg = signs.detach().cpu().numpy() < 0
    if neg.ndim == 2:
        neg = neg[:, :, None, None]
    out_ch, in_ch, kh, kw = neg.shape
    taps = neg.transpose(2, 3, 0, 1).reshape(kh * kw, out_ch, in_ch)
    return np.ascontiguousarray(pack_bits(taps).transpose(0, 2, 1))


def unpack_weight_signs(bits: np.ndarray, in_channels: int, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`pack_weight_signs`: (k*k, words, out) -> +/-1 float32 of ``shape``."""
    neg = unpack_bits(bits.transpose(0, 2, 1), in_channels)  # (k*k, out, in)
    out_ch = shape[0]
    k = int(round(bits.shape[0] ** 0.5))
    signs = np.where(neg, np.float32(-1), np.float32(1)).reshape(k, k, out_ch, in_channels)
    return np.ascontiguousarray(signs.transpose(2, 3, 0, 1)).reshape(shape)


class FrozenBases(B.WeightQuantizer):
    """Stored binary weights (a packed file): W_b = sum_i scales[i, c] * B_i, fixed, no latent weights.

    bits (bases, k*k, words, out) uint64 and scales (bases, out) as in a :class:`PackedLayer`;
    ``shape`` is the weight's shape. ``forward`` ignores the latent weight and returns W_b;
    ``bases`` unpacks the signs for the torch path, and the engine takes ``bits`` as they are.
    """

    def __init__(self, bits: np.ndarray, scales: np.ndarray, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.bits = np.ascontiguousarray(bits, dtype=np.uint64)
        self.stored_scales = np.ascontiguousarray(scales, dtype=np.float32)
        self.num_bases = self.bits.shape[0]
        signs = np.stack([unpack_weight_signs(b, shape[1], shape) for b in self.bits])
        self.register_buffer("signs", torch.from_numpy(signs).to(torch.int8), persistent=False)
        self.register_buffer("scales", torch.from_numpy(self.stored_scales.copy()), persistent=False)

    def value(self) -> Tensor:
        shape = (-1,) + (1,) * (self.signs.dim() - 2)
        return sum(self.scales[i].view(shape) * self.signs[i].float() for i in range(self.num_bases))

    def forward(self, w: Tensor) -> Tensor:
        return self.value()

    def bases(self, w: Tensor) -> list[tuple[Tensor, Tensor]]:
        return [(self.signs[i].float(), self.scales[i].clone()) for i in range(self.num_bases)]


def _engine_spec(part: nn.Module, role: str, modes: tuple[str, ...]) -> B.EngineInput | B.EngineOutput:
    """What ``part`` declares the engine must compute (``engine_spec()``); refused when it declares nothing
    or a mode the kernels do not have."""
    declare = getattr(part, "engine_spec", None)
    if declare is None:
        raise TypeError(f"the bitwise engine cannot run the {role} {type(part).__name__}: it declares no engine_spec()")
    spec = declare()
    if spec.mode not in modes:
        raise TypeError(f"the bitwise engine has no {role} mode {spec.mode!r} ({type(part).__name__}); it has {modes}")
    return spec


def _f32(t: Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)


@dataclass
class PackedLayer:
    """A binary layer in engine form (arrays are C-contiguous numpy).

    kind: "conv" or "linear"; bits (bases, k*k, words, out) uint64; scales (bases, out);
    bias (out); input_mode "sign" | "threshold" | "mean_centered" with ``threshold`` (in) and
    ``eps``; output_mode "plain" | "shortcut" | "prelu" with ``prelu`` (3, out) = shift_in,
    slope, shift_out (zeros / ones for BTM's PReLU without shifts).
    """

    kind: str
    in_channels: int
    out_channels: int
    kernel_size: int
    padding: int
    bits: np.ndarray
    scales: np.ndarray
    bias: np.ndarray
    input_mode: str
    threshold: np.ndarray
    eps: float
    output_mode: str
    prelu: np.ndarray

    @property
    def num_bases(self) -> int:
        return self.bits.shape[0]

    @property
    def kbits(self) -> int:
        """Valid bits per output: k * k * in_channels."""
        return self.kernel_size * self.kernel_size * self.in_channels

    @property
    def shortcut(self) -> bool:
        return self.output_mode != "plain"

    @classmethod
    def from_layer(cls, layer: nn.Module) -> "PackedLayer":
        """Pack a ``BinaryConv2d`` / ``BinaryLinear`` of any registered method."""
        if isinstance(layer, BinaryConv2d):
            kind, in_ch, out_ch = "conv", layer.in_channels, layer.out_channels
            ksize, padding = layer.kernel_size[0], layer.padding[0]
        elif isinstance(layer, BinaryLinear):
            kind, in_ch, out_ch, ksize, padding = "linear", layer.in_features, layer.out_features, 1, 0
        else:
            raise TypeError(f"expected a BinaryConv2d or BinaryLinear, got {type(layer).__name__}")
        accepted = _engine_spec(layer.input_quantizer, "input quantizer", INPUT_MODES)
        applied = _engine_spec(layer.output, "output transform", OUTPUT_MODES)
        quantizer = layer.weight_quantizer
        if not 1 <= quantizer.num_bases <= MAX_BASES:
            raise TypeError(f"the bitwise engine sums 1 to {MAX_BASES} weight bases; "
                            f"{type(quantizer).__name__} has {quantizer.num_bases}")
        with torch.no_grad():
            if isinstance(quantizer, FrozenBases):  # a packed file's bits, as stored
                bits, scales = quantizer.bits, quantizer.stored_scales
            else:
                bases = quantizer.bases(layer.weight)
                bits = np.stack([pack_weight_signs(sign) for sign, _ in bases])
                scales = np.stack([_f32(scale.reshape(-1)) for _, scale in bases])
            if bits.shape[0] != quantizer.num_bases:
                raise TypeError(f"{type(quantizer).__name__} declares {quantizer.num_bases} bases but gave {bits.shape[0]}")
            bias = _f32(layer.bias) if layer.bias is not None else np.zeros(out_ch, np.float32)
            threshold = _f32(accepted.threshold) if accepted.threshold is not None else np.zeros(in_ch, np.float32)
            ones, zeros = np.ones(out_ch, np.float32), np.zeros(out_ch, np.float32)
            prelu = np.stack([
                zeros if applied.shift_in is None else _f32(applied.shift_in),
                ones if applied.slope is None else _f32(applied.slope),
                zeros if applied.shift_out is None else _f32(applied.shift_out),
            ])
        return cls(
            kind=kind,
            in_channels=in_ch,
            out_channels=out_ch,
            kernel_size=ksize,
            padding=padding,
            bits=bits,
            scales=scales,
            bias=bias,
            input_mode=accepted.mode,
            threshold=threshold,
            eps=float(accepted.eps),
            output_mode=applied.mode,
            prelu=prelu,
        )
