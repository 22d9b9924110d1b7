"""One binary layer on numpy arrays: input bits, convolution, linear (thin wrappers on the kernels).

Activations are channels-last float32 arrays, C-contiguous: (N, H, W, C) for convolutions and
(T, C) for Linear layers. Every function allocates its outputs, so concurrent calls share
nothing mutable.
"""
from __future__ import annotations

import numpy as np
import torch

from frb.binarize import match_channels
from frb.bitwise import kernels
from frb.bitwise.packing import PackedLayer, num_words


def _dummy(ndim: int, dtype: type = np.float32) -> np.ndarray:
    return np.zeros((1,) * ndim, dtype)


def input_offsets(layer: PackedLayer, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sub, div), each (S, C), such that the layer's input bit is not ((x - sub) / div >= 0).

    x is (S, P, Q, C): S samples of P*Q positions. "sign": sub = 0; "threshold" (RSign):
    sub = threshold; "mean_centered" (BTM): sub = mu, div = sigma + eps with the per-sample,
    per-channel mean and population standard deviation over positions, computed in torch as
    ``MeanCenteredSign`` does. div = 1 otherwise.
    """
    samples, channels = x.shape[0], x.shape[3]
    if layer.input_mode == "mean_centered":
        t = torch.from_numpy(x)
        mu = t.mean(dim=(1, 2))
        sigma = t.std(dim=(1, 2), unbiased=False) + layer.eps
        return mu.numpy(), sigma.numpy()
    sub = np.broadcast_to(layer.threshold, (samples, channels))
    return np.ascontiguousarray(sub), np.ones((samples, channels), np.float32)


def input_bits(layer: PackedLayer, x: np.ndarray, pad: int) -> np.ndarray:
    """Packed input signs of ``x`` (S, P, Q, C) with a zero (+1) border of ``pad`` pixels."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    samples, height, width, channels = x.shape
    out = np.zeros((samples, height + 2 * pad, width + 2 * pad, num_words(channels)), np.uint64)
    sub, div = input_offsets(layer, x)
    kernels.run(kernels.pack_signs, x, sub, div, out)
    return out


def conv(
    layer: PackedLayer,
    bits: np.ndarray,
    residual: np.ndarray | None,
    skip: np.ndarray | None = None,
    float_out: bool = True,
    next_layer: PackedLayer | None = None,
    next_pad: int = 1,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Binary convolution of padded input bits (N, H + 2p, W + 2p, words), epilogue fused.

    residual: the layer input (N, H, W, Cin), used when the layer has a shortcut (widths are
    matched as ``frb.binarize.match_channels`` does); skip: an extra (N, H, W, Cout) term added
    last (the residual block's identity). With ``next_layer`` (whose input mode must be "sign"
    or "threshold") the output's sign bits for that layer come back too, with a ``next_pad``
    border. Returns (float output or None, next bits or None).
    """
    n_img, hp, wp, _ = bits.shape
    k = layer.kernel_size
    height, width, cout = hp - k + 1, wp - k + 1, layer.out_channels
    if layer.shortcut:
        if residual is None:
            raise ValueError("this layer has a shortcut: pass its input as residual")
        residual = np.ascontiguousarray(match_channels(torch.from_numpy(residual), cout, -1).numpy())
    out = np.empty((n_img, height, width, cout), np.float32) if float_out else _dummy(4)
    if next_layer is not None:
        if next_layer.input_mode == "mean_centered":
            raise ValueError("mean-centred input bits need the whole output: pack them with input_bits")
        out_bits = np.zeros((n_img, height + 2 * next_pad, width + 2 * next_pad, num_words(cout)), np.uint64)
        thr = next_layer.threshold
    else:
        out_bits, thr = _dummy(4, np.uint64), _dummy(1)
    kernel = kernels.conv_kernel(
        k, layer.num_bases, layer.output_mode == "prelu", layer.shortcut, skip is not None,
        float_out, next_layer is not None, kernels.default_csa(),
    )
    kernels.run(
        kernel, bits, layer.bits, layer.kbits, layer.scales, layer.bias, layer.prelu,
        residual if layer.shortcut else _dummy(4), skip if skip is not None else _dummy(4), thr, out, out_bits,
    )
    return (out if float_out else None), (out_bits if next_layer is not None else None)


def linear(layer: PackedLayer, x: np.ndarray, samples: int = 1) -> np.ndarray:
    """Binary Linear layer on tokens x (T, Cin) -> (T, Cout), epilogue fused.

    ``samples`` splits the T tokens into equal consecutive groups, the per-sample statistics
    of a mean-centred input quantizer (the leading dimension of the torch input).
    """
    tokens, _ = x.shape
    bits = input_bits(layer, x.reshape(samples, tokens // samples, 1, -1), 0).reshape(tokens, -1)
    residual = _dummy(2)
    if layer.shortcut:
        residual = np.ascontiguousarray(match_channels(torch.from_numpy(x), layer.out_channels, -1).numpy())
    out = np.empty((tokens, layer.out_channels), np.float32)
    kernel = kernels.gemm_kernel(layer.num_bases, layer.output_mode == "prelu", layer.shortcut)
    kernels.run(kernel, bits, layer.bits, layer.kbits, layer.scales, layer.bias, layer.prelu, residual, out)
    return out
