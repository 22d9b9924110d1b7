"""Bicubic interpolation as a model, the reference every SR table starts from."""
from __future__ import annotations

from torch import Tensor, nn

from frb.imaging import imresize_torch
from frb.models.backbone import BackboneSpec, register_backbone


class Bicubic(nn.Module):
    """MATLAB-style bicubic upscaling by an integer factor; no parameters."""

    def __init__(self, scale: int = 4) -> None:
        super().__init__()
        self.scale = scale

    #: The bicubic kernel has 4 taps: 2 LR pixels of context on each side.
    receptive_radius = 2

    def forward(self, x: Tensor) -> Tensor:
        return imresize_torch(x, float(self.scale))

    def binary_layer_names(self) -> list[str]:
        return []

    def activations_before_binary(self) -> list[str]:
        return []

    def feature_blocks(self) -> list[nn.Module]:
        return []

    def forward_distilled(self, x: Tensor) -> Tensor:
        return self(x)


register_backbone(BackboneSpec(name="bicubic", build=lambda scale, depth=0: Bicubic(scale), teacher=None))
