"""The public model names: what each one means, and how to build it with random weights.

A public model is a backbone (``frb.models.backbone``) and, for the binarized ones, a
binarization method applied with ``frb.layers.binarize``. Trained weights are the business of
``frb.models.pretrained``; ``frb.models.create_model`` is the one entry point for both.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from frb.layers import binarize
from frb.models import bicubic, srresnet, swinir  # noqa: F401  (each registers its backbone)
from frb.models.backbone import BackboneSpec, get_backbone

SCALES = (2, 3, 4)


@dataclass(frozen=True)
class ModelSpec:
    """What a public model name means: a registered backbone (``arch``) and a method or ``None``."""

    name: str
    arch: str
    method: str | None  # binarization method name, None for full precision
    title: str
    citation: str

    @property
    def backbone(self) -> BackboneSpec:
        return get_backbone(self.arch)

    @property
    def binary(self) -> bool:
        return self.method is not None

    @property
    def needs_weights(self) -> bool:
        """Whether the model has parameters that must be trained (bicubic has none)."""
        return self.backbone.has_weights

    @property
    def teacher(self) -> str | None:
        """The full-precision model a binarized one starts from and distils from (None for others)."""
        return self.backbone.teacher if self.binary else None

    @property
    def group(self) -> str:
        if not self.needs_weights:
            return "baseline"
        return "binarized" if self.binary else "full precision"


_SRRESNET = "Ledig et al., CVPR 2017 (BasicSR MSRResNet)"
_SWINIR = "Liang et al., SwinIR, ICCVW 2021"

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec("bicubic", "bicubic", None, "Bicubic", "MATLAB imresize"),
        ModelSpec("srresnet", "srresnet", None, "SRResNet (full precision)", _SRRESNET),
        ModelSpec("swinir_s", "swinir", None, "SwinIR-S (full precision)", _SWINIR),
        ModelSpec("bnn", "srresnet", "bnn", "BNN", "Hubara et al., NeurIPS 2016"),
        ModelSpec("dorefa", "srresnet", "dorefa", "DoReFa", "Zhou et al., 2016"),
        ModelSpec("bireal", "srresnet", "bireal", "Bi-Real", "Liu et al., ECCV 2018"),
        ModelSpec("irnet", "srresnet", "irnet", "IRNet", "Qin et al., CVPR 2020"),
        ModelSpec("bam", "srresnet", "bam", "BAM", "Xin et al., ECCV 2020"),
        ModelSpec("btm", "srresnet", "btm", "BTM", "Jiang et al., AAAI 2021"),
        ModelSpec("reactnet", "srresnet", "reactnet", "ReActNet", "Liu et al., ECCV 2020"),
        ModelSpec("frbc", "srresnet", "frb", "FRBC (FRB on SRResNet)", "Zhang, Qin et al., ICML 2024"),
        ModelSpec("frbt", "swinir", "frb", "FRBT (FRB on SwinIR-S)", "Zhang, Qin et al., ICML 2024"),
    ]
}


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {list(MODELS)}") from None


def build(name: str, scale: int, depth: int = 0, **method_options: object) -> nn.Module:
    """``name`` at ``scale`` with fresh (random) weights; ``depth`` > 0 shortens the backbone.

    ``method_options`` reach the binarization method (``second_order=False`` for FRB's ablation).
    The model carries its ``spec``.
    """
    spec = get_spec(name)
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale}")
    model = spec.backbone.build(scale, depth)
    if spec.binary:
        binarize(model, spec.method, **method_options)
    elif method_options:
        raise ValueError(f"{name} is full precision; method options {sorted(method_options)} do not apply")
    model.spec = spec
    return model
