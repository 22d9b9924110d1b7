"""A whole binarized SRResNet on the engine: body in the kernels, head and tail in torch.

The 16 residual blocks of a binarized SRResNet compute, with binary layers L1, L2 whose output
transforms T1, T2 come from the method (no activation between them once binarized):

    h = T1(L1(x), x),    x' = T2(L2(h), h) if T2 adds its input h (a shortcut), else x + T2(L2(h), h).

Each layer is one kernel launch: the epilogue applies scales, bias, the transform, the
shortcut, the block's identity and writes the sign bits that the next layer reads, so the body
never leaves packed form except for the float values the shortcuts need. BTM's mean-centred
signs need statistics of the whole output, so their bits are packed in a second pass.

Head (conv_first + LeakyReLU) and tail (upsampler, conv_hr, conv_last, bilinear skip) run in
torch. The head stays NCHW, as in the torch model, so the body starts from bit-identical
features (a plain binary body amplifies any rounding difference); the tail runs channels_last,
whose NHWC memory is the engine's output layout (no copy).
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import Tensor, nn

from frb.bitwise import ops
from frb.bitwise.packing import PackedLayer
from frb.layers import BinaryConv2d
from frb.models.srresnet import SRResNet


def _fused(layer: PackedLayer | None) -> PackedLayer | None:
    """The next layer when its bits can come out of the previous epilogue."""
    return layer if layer is not None and layer.input_mode != "mean_centered" else None


class BitwiseSRResNet:
    """Callable (N, 3, H, W) float32 in [0, 1] -> (N, 3, sH, sW), equal to ``model(x)``
    up to float rounding. ``model`` must be a binarized ``SRResNet`` (its body convs binary)."""

    def __init__(self, model: SRResNet) -> None:
        if not isinstance(model, SRResNet):
            raise TypeError(f"expected an SRResNet, got {type(model).__name__}")
        self.layers: list[tuple[PackedLayer, PackedLayer]] = []
        for i, block in enumerate(model.body):
            if not all(isinstance(c, BinaryConv2d) for c in (block.conv1, block.conv2)):
                raise ValueError(f"body.{i} is not binarized; use the torch backend for this model")
            if not isinstance(block.act, nn.Identity):
                raise ValueError(f"body.{i}.act must be Identity in a binarized SRResNet")
            self.layers.append((PackedLayer.from_layer(block.conv1), PackedLayer.from_layer(block.conv2)))
        self.float_part = copy.deepcopy(model, {id(model.body): nn.Sequential()})
        self.float_part.eval().to(memory_format=torch.channels_last)
        self.float_part.conv_first.to(memory_format=torch.contiguous_format)
        self.float_part.lrelu.inplace = True  # same values, no new 64-channel HR buffers

    def body(self, x: np.ndarray) -> np.ndarray:
        """The residual blocks on channels-last features (N, H, W, C) float32."""
        bits = ops.input_bits(self.layers[0][0], x, 1)
        for idx, (l1, l2) in enumerate(self.layers):
            nxt = self.layers[idx + 1][0] if idx + 1 < len(self.layers) else None
            h, h_bits = ops.conv(l1, bits, x, float_out=l2.shortcut or _fused(l2) is None, next_layer=_fused(l2))
            if h_bits is None:
                h_bits = ops.input_bits(l2, h, 1)
            x, bits = ops.conv(l2, h_bits, h, skip=None if l2.shortcut else x, next_layer=_fused(nxt))
            if bits is None and nxt is not None:
                bits = ops.input_bits(nxt, x, 1)
        return x

    def __call__(self, x: Tensor) -> Tensor:
        with torch.inference_mode():
            lr = x.float()
            feat = self.float_part.forward_head(lr.contiguous())
            body = self.body(np.ascontiguousarray(feat.permute(0, 2, 3, 1).numpy()))
            return self.float_part.forward_tail(torch.from_numpy(body).permute(0, 3, 1, 2), lr)
