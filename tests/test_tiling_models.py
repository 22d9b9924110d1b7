"""Tiled inference of the real models equals untiled inference (within a measured tolerance)."""
from __future__ import annotations

import pytest
import torch

from frb.models import create_model
from frb.tiling import tiled_forward

# SRResNet's receptive-field radius in LR pixels: conv_first + 32 body convs + upconv1, plus at
# most one LR pixel for the layers at higher resolution and the bilinear skip.
SRRESNET_RADIUS = 36


@pytest.mark.parametrize("name", ["srresnet", "frbc", "reactnet"])
def test_tiled_equals_untiled_for_convolutional_models(name):
    torch.manual_seed(0)
    model = create_model(name, 2).eval()
    x = torch.rand(1, 3, 61, 47)
    with torch.no_grad():
        full = model(x)
        tiled = tiled_forward(model, x, 2, tile=24, tile_pad=SRRESNET_RADIUS)
    assert (tiled - full).abs().max() < 1e-4


def test_btm_tiling_is_approximate_because_its_statistics_are_per_image():
    torch.manual_seed(0)
    model = create_model("btm", 2).eval()
    x = torch.rand(1, 3, 61, 47)
    with torch.no_grad():
        diff = (tiled_forward(model, x, 2, tile=24, tile_pad=SRRESNET_RADIUS) - model(x)).abs().max()
    assert diff > 0


def test_swinir_tiling_stays_close():
    """Windows are laid from each tile's origin, so tiles see other window partitions."""
    torch.manual_seed(0)
    model = create_model("swinir_s", 2).eval()
    x = torch.rand(1, 3, 40, 36)
    with torch.no_grad():
        full = model(x)
        tiled = tiled_forward(model, x, 2, tile=16, tile_pad=16)
    mse = ((tiled - full) ** 2).mean()
    psnr = 10 * torch.log10(1 / mse)
    assert psnr > 40
