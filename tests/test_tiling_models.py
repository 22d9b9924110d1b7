"""Tiled inference of every registered model with the context it declares (``tiling_context``):
identical to untiled inference where the model says tiling is exact, close where it says it is not."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from frb.layers import binarize
from frb.models import MODELS, ModelSpec, create_model
from frb.models.bicubic import Bicubic
from frb.models.srresnet import SRResNet
from frb.models.swinir import SwinIR
from frb.tiling import APPROXIMATE_CONTEXT, tiled_forward, tiling_context

#: Random-init outputs of approximately tileable models stay this close to untiled ones on a random
#: input (shipped weights on real photographs: the README's Reliability section).
APPROXIMATE_MIN_PSNR = 35.0


def small_model(spec: ModelSpec, scale: int = 2) -> nn.Module:
    """The model with a shallow backbone (2 residual blocks: radius 7; 2 Swin layers), so that an
    input a few tiles wide has tiles whose context is not clamped away by the border."""
    torch.manual_seed(0)
    arch = {
        "srresnet": lambda: SRResNet(scale, num_block=2),
        "swinir": lambda: SwinIR(scale, embed_dim=12, depths=(2,), num_heads=(2,)),
        "bicubic": lambda: Bicubic(scale),
    }[spec.arch]()
    if spec.binary:
        binarize(arch, spec.method)
    return arch.eval()


def _tiled_and_full(model: nn.Module, pad: int, scale: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(1, 3, 48, 40, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return tiled_forward(model, x, scale, tile=16, tile_pad=pad), model(x)


@pytest.mark.parametrize("name", list(MODELS))
def test_tiling_with_the_declared_context(name):
    model = small_model(MODELS[name])
    context = tiling_context(model)
    tiled, full = _tiled_and_full(model, context.pad)
    if context.exact:
        assert (tiled - full).abs().max() < 1e-5
    else:
        psnr = 10 * torch.log10(1 / ((tiled - full) ** 2).mean())
        assert psnr > APPROXIMATE_MIN_PSNR, f"{name}: {psnr:.1f} dB ({context.reason})"


@pytest.mark.parametrize("name", [n for n, spec in MODELS.items() if spec.arch == "srresnet" and spec.binary])
def test_the_declared_radius_is_needed(name):
    """Less context changes the output (binary models show it: a sign flips), so the test above is not
    trivially true for the input and tile used."""
    model = small_model(MODELS[name])
    assert tiling_context(model).pad == 2 * 2 + 3
    tiled, full = _tiled_and_full(model, tiling_context(model).pad - 2)
    assert (tiled - full).abs().max() > 1e-5


def test_full_srresnet_radius():
    assert tiling_context(create_model("frbc", 4)).pad == 2 * 16 + 3


@pytest.mark.parametrize("name, reason", [("btm", "statistics over the whole image"), ("swinir_s", "whole image")])
def test_models_that_cannot_tile_exactly_say_why(name, reason):
    context = tiling_context(create_model(name, 2))
    assert not context.exact and reason in context.reason
    assert context.pad >= (APPROXIMATE_CONTEXT if name == "swinir_s" else 35)
