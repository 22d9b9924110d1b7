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

#: input quantizer type -> how the engine computes its bits
INPUT_MODES: dict[type, str] = {
    B.SignInput: "sign",
    B.EDESign: "sign",
    B.RSign: "threshold",
    B.MeanCenteredSign: "mean_centered",
}
#: output transform type -> how the epilogue applies it
OUTPUT_MODES: dict[type, str] = {
    B.PlainOutput: "plain",
    B.ShortcutOutput: "shortcut",
    B.PReLUShortcutOutput: "prelu",
    B.RPReLUShortcutOutput: "prelu",
}


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
        quantizer, output = layer.input_quantizer, layer.output
        if type(quantizer) not in INPUT_MODES:
            raise TypeError(f"the bitwise engine has no input quantizer {type(quantizer).__name__}")
        if type(output) not in OUTPUT_MODES:
            raise TypeError(f"the bitwise engine has no output transform {type(output).__name__}")
        with torch.no_grad():
            bases = layer.weight_quantizer.bases(layer.weight)
            bits = np.stack([pack_weight_signs(sign) for sign, _ in bases])
            scales = np.stack([_f32(scale.reshape(-1)) for _, scale in bases])
            bias = _f32(layer.bias) if layer.bias is not None else np.zeros(out_ch, np.float32)
            threshold = np.zeros(in_ch, np.float32)
            if isinstance(quantizer, B.RSign):
                threshold = _f32(quantizer.threshold)
            prelu = np.stack([np.zeros(out_ch, np.float32), np.ones(out_ch, np.float32), np.zeros(out_ch, np.float32)])
            if isinstance(output, B.PReLUShortcutOutput):
                prelu[1] = _f32(output.slope)
            if isinstance(output, B.RPReLUShortcutOutput):
                prelu[0], prelu[2] = _f32(output.shift_in), _f32(output.shift_out)
        return cls(
            kind=kind,
            in_channels=in_ch,
            out_channels=out_ch,
            kernel_size=ksize,
            padding=padding,
            bits=bits,
            scales=scales,
            bias=bias,
            input_mode=INPUT_MODES[type(quantizer)],
            threshold=threshold,
            eps=float(getattr(quantizer, "eps", 0.0)),
            output_mode=OUTPUT_MODES[type(output)],
            prelu=prelu,
        )
