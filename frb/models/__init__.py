"""Models: the twelve public names and the one way to build them, ``create_model``.

Every name is a registered backbone (``frb.models.backbone``: SRResNet, SwinIR_S, bicubic) and,
for the binarized ones, a binarization method (``frb.binarize``) applied with
``frb.layers.binarize``; ``frb.models.registry`` lists them, ``frb.models.pretrained`` loads
trained weights.
"""
from __future__ import annotations

import os

from torch import nn

from frb.models.backbone import BACKBONES, Backbone, BackboneSpec, get_backbone, register_backbone
from frb.models.pretrained import ON_MISSING, load_pretrained
from frb.models.registry import MODELS, SCALES, ModelSpec, build, get_spec

__all__ = [
    "BACKBONES", "MODELS", "ON_MISSING", "SCALES", "Backbone", "BackboneSpec", "ModelSpec", "create_model",
    "get_backbone", "get_spec", "register_backbone",
]


def create_model(
    name: str,
    scale: int = 4,
    pretrained: bool | str | os.PathLike = False,
    *,
    local_files_only: bool = False,
    on_missing: str = "error",
    depth: int = 0,
    **method_options: object,
) -> nn.Module:
    """Build a model by public name, e.g. ``create_model("frbc", 4, pretrained=True)``.

    pretrained: False -> random initialisation (training mode); True -> the verified shipped
        weights (bundled ``assets/weights``, then the Hugging Face cache, then the Hub unless
        ``local_files_only`` or ``HF_HUB_OFFLINE``); a path -> that weights file (packed binary or
        a full-precision state dict, loaded strictly). Pretrained models come in eval mode.
    on_missing: with ``pretrained=True`` and no usable weights, "error" raises
        ``frb.hub.WeightsError`` (what was tried, what to do); "random" returns a model seeded from
        its name and scale, with the reason in ``weights_origin.notices``.
    depth: > 0 shortens the backbone (residual blocks / RSTBs), for quick runs and tests.
    method_options: reach the binarization method (``second_order=False`` for FRB's ablation).

    The model carries ``spec`` (its ``ModelSpec``) and, when ``pretrained``, ``weights_origin``
    (``frb.hub.Resolved``: source "bundled", "hub-cache", "hub", "file", "builtin" or "random").
    """
    if pretrained is False:
        return build(name, scale, depth, **method_options)
    return load_pretrained(name, scale, pretrained, local_files_only, on_missing, depth, **method_options)
