"""SRResNet as BasicSR's MSRResNet (Ledig et al., CVPR 2017; Wang et al., BasicSR).

conv_first -> LeakyReLU(0.1) -> 16 residual blocks (conv-ReLU-conv, identity skip, no BatchNorm)
-> pixel-shuffle upsampler (x2 / x3: one stage; x4: two x2 stages), each followed by LeakyReLU(0.1)
-> conv_hr -> LeakyReLU(0.1) -> conv_last, plus the bilinearly upsampled input.

Parameter names follow BasicSR, so its MSRResNet checkpoints load. Parameter counts:
1,369,859 (x2), 1,554,499 (x3), 1,517,571 (x4).

Binarized twins (BBCU, FRB): the 32 body convs are binary; conv_first, the upsampler, conv_hr and
conv_last stay full precision. The ReLU between a block's two convs is dropped in a binary block,
because sign(ReLU(x)) is +1 everywhere under sign(0) = +1.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from frb.models.backbone import BackboneSpec, register_backbone


class ResidualBlockNoBN(nn.Module):
    """x + conv2(act(conv1(x))), act = ReLU.

    When conv2 is a binary layer whose output already adds its input (a per-conv shortcut),
    the block's own identity is left out, as in BBCU: with h = x + y1 the block returns
    h + y2 = x + y1 + y2. Adding x again would double the identity path in every block
    (2^16 over the body).
    """

    def __init__(self, num_feat: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.act(self.conv1(x)))
        return out if getattr(self.conv2, "adds_input", False) else x + out


class SRResNet(nn.Module):
    """MSRResNet: num_feat 64, num_block 16, scale 2, 3 or 4."""

    def __init__(self, scale: int = 4, num_feat: int = 64, num_block: int = 16, in_chans: int = 3) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"SRResNet supports scales 2, 3 and 4, got {scale}")
        self.scale = scale
        self.conv_first = nn.Conv2d(in_chans, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[ResidualBlockNoBN(num_feat) for _ in range(num_block)])
        if scale == 4:
            self.upconv1 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
            self.upconv2 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
            self.pixel_shuffle = nn.PixelShuffle(2)
        else:
            self.upconv1 = nn.Conv2d(num_feat, num_feat * scale * scale, 3, 1, 1)
            self.pixel_shuffle = nn.PixelShuffle(scale)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, in_chans, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1)
        self._init_weights()

    def _init_weights(self) -> None:
        """BasicSR's default: Kaiming-normal weights scaled by 0.1, zero biases."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
                m.weight.data.mul_(0.1)
                nn.init.zeros_(m.bias)

    @property
    def receptive_radius(self) -> int:
        """LR pixels of context that determine an output pixel: conv_first, two convs per block and
        upconv1 at LR resolution, plus one LR pixel for everything at higher resolution (upconv2,
        conv_hr, conv_last and the bilinear skip): ``2 * num_block + 3``."""
        return 2 * len(self.body) + 3

    def forward_head(self, x: Tensor) -> Tensor:
        return self.lrelu(self.conv_first(x))

    def forward_tail(self, feat: Tensor, x: Tensor) -> Tensor:
        """Upsampler, conv_hr, conv_last and the bilinear skip, from body features."""
        out = self.lrelu(self.pixel_shuffle(self.upconv1(feat)))
        if self.scale == 4:
            out = self.lrelu(self.pixel_shuffle(self.upconv2(out)))
        out = self.conv_last(self.lrelu(self.conv_hr(out)))
        return out + F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_tail(self.body(self.forward_head(x)), x)

    def forward_distilled(self, x: Tensor) -> Tensor:
        """Head and body only: as far as the last of ``feature_blocks()`` (a DBT teacher needs no tail)."""
        return self.body(self.forward_head(x))

    def binary_layer_names(self) -> list[str]:
        return [f"body.{i}.{conv}" for i in range(len(self.body)) for conv in ("conv1", "conv2")]

    def activations_before_binary(self) -> list[str]:
        return [f"body.{i}.act" for i in range(len(self.body))]

    def feature_blocks(self) -> list[nn.Module]:
        """The residual blocks, whose outputs distillation (DBT) aligns."""
        return list(self.body)


def _build(scale: int, depth: int = 0) -> SRResNet:
    return SRResNet(scale, num_block=depth) if depth > 0 else SRResNet(scale)


register_backbone(BackboneSpec(
    name="srresnet", build=_build, teacher="srresnet", tiny_depth=2, suite_lr=5e-4,
    recipe=dict(batch=16, lr_patch=48, steps=300_000, schedule="cosine"),
))
