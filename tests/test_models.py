"""The model registry and both architectures at every scale."""
from __future__ import annotations

import pytest
import torch

from frb.layers import BINARY_LAYERS
from frb.models import MODELS, SCALES, create_model, get_spec
from frb.models.srresnet import SRResNet

PUBLIC_NAMES = ["bicubic", "srresnet", "swinir_s", "bnn", "dorefa", "bireal", "irnet", "bam", "btm", "reactnet", "frbc", "frbt"]


def test_public_names():
    assert list(MODELS) == PUBLIC_NAMES
    assert [n for n, s in MODELS.items() if s.binary and s.arch == "srresnet"] == [
        "bnn", "dorefa", "bireal", "irnet", "bam", "btm", "reactnet", "frbc"
    ]
    with pytest.raises(ValueError, match="unknown model 'frbx'"):
        get_spec("frbx")
    with pytest.raises(ValueError, match="scale must be one of"):
        create_model("srresnet", 8)


@pytest.mark.parametrize("scale, count", [(2, 1_369_859), (3, 1_554_499), (4, 1_517_571)])
def test_srresnet_parameter_counts(scale, count):
    assert sum(p.numel() for p in SRResNet(scale).parameters()) == count


def test_srresnet_uses_basicsr_names():
    keys = set(SRResNet(4).state_dict())
    for k in ["conv_first.weight", "body.15.conv2.bias", "upconv1.weight", "upconv2.weight", "conv_hr.weight", "conv_last.bias"]:
        assert k in keys
    assert "upconv2.weight" not in SRResNet(2).state_dict()


def test_srresnet_with_zero_residual_returns_the_bilinear_skip():
    model = SRResNet(2)
    torch.nn.init.zeros_(model.conv_last.weight)
    torch.nn.init.zeros_(model.conv_last.bias)
    x = torch.rand(1, 3, 5, 7)
    expected = torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(model(x), expected)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_accepts_odd_sizes(name, scale):
    torch.manual_seed(0)
    model = create_model(name, scale).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 17, 23))
    assert out.shape == (1, 3, 17 * scale, 23 * scale)
    assert torch.isfinite(out).all()
    n_binary = sum(isinstance(m, BINARY_LAYERS) for m in model.modules())
    assert n_binary == len(model.binary_layer_names()) * model.spec.binary
    assert n_binary == {"srresnet": 32, "swinir": 100}.get(model.spec.arch, 0) * model.spec.binary  # the published depths
