"""Tests for frb.tiling: tiled inference against untiled inference, band by band."""
from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from frb.tiling import tile_count, tile_rows, tiled_bands, tiled_forward


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


@torch.no_grad()
def test_bands_cover_the_output_top_to_bottom_and_report_every_tile() -> None:
    net = _net(scale=3)
    x = torch.rand(1, 3, 37, 53, generator=torch.Generator().manual_seed(2))
    ticks: list[int] = []
    bands = list(tiled_bands(net, x, 3, tile=16, tile_pad=4, on_tile=lambda: ticks.append(1)))
    assert [b.shape[-2] for b in bands] == [48, 48, 15]  # rows of tiles: 16, 16, 5 LR rows
    assert all(b.shape[-1] == 3 * 53 for b in bands)
    assert len(ticks) == tile_count(37, 53, 16) == 3 * 4
    assert float((torch.cat(bands, dim=2) - net(x)).abs().max()) < 1e-5


def test_uint8_input_is_sliced_as_is_and_converted_by_fn() -> None:
    x = torch.randint(0, 256, (1, 3, 20, 20), dtype=torch.uint8)
    seen: list[torch.dtype] = []

    def fn(t: Tensor) -> Tensor:
        seen.append(t.dtype)
        return torch.nn.functional.interpolate(t.float() / 255, scale_factor=2, mode="nearest")

    out = torch.cat(list(tiled_bands(fn, x, 2, tile=8, tile_pad=2)), dim=2)
    assert set(seen) == {torch.uint8}
    assert torch.equal(out, torch.nn.functional.interpolate(x.float() / 255, scale_factor=2, mode="nearest"))


def test_tile_rows_clamp_the_context_at_the_border() -> None:
    rows = tile_rows(10, 25, tile=8, pad=3)
    assert [len(r) for r in rows] == [4, 4]
    first, last = rows[0][0], rows[-1][-1]
    assert (first.py0, first.px0, first.py1, first.px1) == (0, 0, 10, 8 + 3)  # clamped at the bottom, context on the right
    assert (last.y0, last.y1, last.x0, last.x1) == (8, 10, 24, 25)
    assert (last.py0, last.py1, last.px0, last.px1) == (5, 10, 21, 25)
    with pytest.raises(ValueError, match="tile_pad must be >= 0"):
        tile_rows(10, 10, 4, -1)
