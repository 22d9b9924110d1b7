"""Model registry: the twelve public model names and ``create_model``.

Every name builds the same way: an architecture (SRResNet, SwinIR_S or bicubic) and, for the
binarized models, a binarization method applied with ``frb.layers.binarize``.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from frb.layers import binarize

SCALES = (2, 3, 4)


@dataclass(frozen=True)
class ModelSpec:
    """What a public model name means."""

    name: str
    arch: str  # "srresnet", "swinir" or "bicubic"
    method: str | None  # binarization method name, None for full precision
    title: str
    citation: str

    @property
    def binary(self) -> bool:
        return self.method is not None

    @property
    def teacher(self) -> str | None:
        """The full-precision model a binarized one starts from and distils from (None for others)."""
        if not self.binary:
            return None
        return {"srresnet": "srresnet", "swinir": "swinir_s"}[self.arch]

    @property
    def group(self) -> str:
        if self.arch == "bicubic":
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


def create_architecture(arch: str, scale: int) -> nn.Module:
    """The full-precision architecture alone (the teacher of a binarized model)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale}")
    if arch == "srresnet":
        from frb.models.srresnet import SRResNet

        return SRResNet(scale=scale)
    if arch == "swinir":
        from frb.models.swinir import SwinIR

        return SwinIR(scale=scale)
    if arch == "bicubic":
        from frb.models.bicubic import Bicubic

        return Bicubic(scale=scale)
    raise ValueError(f"unknown architecture {arch!r}")


def create_model(name: str, scale: int = 4, pretrained: bool = False, **method_options: object) -> nn.Module:
    """Build a model by public name, e.g. ``create_model("frbc", 4, pretrained=True)``.

    Randomly initialised unless ``pretrained``, which loads the verified shipped weights through
    ``frb.hub`` (bundled, then the Hugging Face cache, then the Hub) and raises
    ``frb.hub.WeightsError`` when there are none. ``method_options`` reach the binarization
    method (``second_order=False`` for FRB's ablation).
    """
    if pretrained:
        from frb.hub import load_pretrained

        return load_pretrained(name, scale)[0]
    spec = get_spec(name)
    model = create_architecture(spec.arch, scale)
    if spec.binary:
        binarize(model, spec.method, **method_options)
    model.spec = spec
    return model
