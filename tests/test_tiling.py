"""Tests for frb.tiling.tiled_forward against untiled inference."""
from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from frb.tiling import tiled_forward


def _net(scale: int = 2) -> nn.Module:
    """4 conv 3x3 layers at LR resolution (receptive-field radius 4) + pixel shuffle."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 3 * scale * scale, 3, padding=1),
        nn.PixelShuffle(scale),
    ).eval()


@torch.no_grad()
def test_tiled_equals_untiled_with_enough_padding() -> None:
    net = _net()
    x = torch.rand(2, 3, 37, 53, generator=torch.Generator().manual_seed(1))
    ref = net(x)
    for pad in (4, 6):
        out = tiled_forward(net, x, scale=2, tile=16, tile_pad=pad)
        assert out.shape == ref.shape == (2, 3, 74, 106)
        assert float((out - ref).abs().max()) < 1e-5
    # too little context changes the seams: the test above is not trivially true
    short = tiled_forward(net, x, scale=2, tile=16, tile_pad=2)
    assert float((short - ref).abs().max()) > 1e-4


@torch.no_grad()
def test_single_call_when_untiled() -> None:
    calls: list[tuple[int, ...]] = []

    def fn(t: Tensor) -> Tensor:
        calls.append(tuple(t.shape))
        return torch.nn.functional.interpolate(t, scale_factor=3, mode="nearest")

    x = torch.rand(1, 3, 10, 12)
    for tile in (0, -1, 12, 64):
        calls.clear()
        out = tiled_forward(fn, x, scale=3, tile=tile, tile_pad=2)
        assert calls == [(1, 3, 10, 12)] and out.shape == (1, 3, 30, 36)
    calls.clear()
    tiled_forward(fn, x, scale=3, tile=5, tile_pad=2)
    assert calls[0] == (1, 3, 7, 7) and len(calls) == 2 * 3  # padding clamped at the border


def test_wrong_output_size_raises() -> None:
    with pytest.raises(ValueError, match="expected batch 1 and spatial size"):
        tiled_forward(lambda t: t, torch.rand(1, 3, 20, 20), scale=2, tile=8, tile_pad=2)
