"""Tiled inference for super-resolution models: bounded memory and visible progress on any input size.

The LR input is cut into a grid of ``tile x tile`` tiles (the last row/column may be smaller).
Tile ``[y0:y1, x0:x1]`` is fed to the model with ``pad`` extra pixels of context on each side,
clamped at the image border, i.e. the patch ``[max(y0-pad, 0) : min(y1+pad, H), ...]``; of its
output only the part covering the tile, ``[s*y0 : s*y1, s*x0 : s*x1]`` in SR coordinates, is kept.
:func:`tiled_bands` yields the SR output one row of tiles at a time, so a caller can write it out
as it is produced (memory bounded by one band, whatever the image height);
:func:`tiled_forward` assembles the whole output.

Exactness: for a convolutional model whose receptive-field radius is ``R`` LR pixels, every kept
output pixel sees the same input pixels as in the untiled run as long as ``pad >= R``: inside the
image the padded patch contains the whole receptive field, and where the patch is clamped at the
border it coincides with the real border, so the model's own padding applies exactly as untiled.
The result then equals the untiled one up to floating-point rounding. It does not hold for models
with statistics over the whole image (BTM's mean-centred sign) or with a receptive field that
covers the whole image (SwinIR's shifted windows); :func:`tiling_context` says which case a model
is in, and the README states the measured tolerance for the approximate ones.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

#: LR context used for models without a finite receptive field (SwinIR): 4 windows of 8.
APPROXIMATE_CONTEXT = 32


@dataclass(frozen=True)
class Tile:
    """One tile: the kept region ``[y0:y1, x0:x1]`` and the patch ``[py0:py1, px0:px1]`` fed to the model."""

    y0: int
    y1: int
    x0: int
    x1: int
    py0: int
    py1: int
    px0: int
    px1: int


@dataclass(frozen=True)
class TilingContext:
    """The LR context a model needs around a tile, and whether tiling with it is exact."""

    pad: int
    exact: bool
    reason: str


def tile_rows(h: int, w: int, tile: int, pad: int) -> list[list[Tile]]:
    """The tiles of an ``h x w`` input, row by row; one tile covering everything when ``tile <= 0``."""
    if pad < 0:
        raise ValueError(f"tile_pad must be >= 0, got {pad}")
    if tile <= 0 or (h <= tile and w <= tile):
        return [[Tile(0, h, 0, w, 0, h, 0, w)]]
    rows = []
    for y0 in range(0, h, tile):
        y1 = min(y0 + tile, h)
        rows.append([
            Tile(y0, y1, x0, min(x0 + tile, w), max(y0 - pad, 0), min(y1 + pad, h), max(x0 - pad, 0), min(x0 + tile + pad, w))
            for x0 in range(0, w, tile)
        ])
    return rows


def tile_count(h: int, w: int, tile: int) -> int:
    """How many tiles :func:`tile_rows` makes (for a progress bar's total)."""
    return sum(len(row) for row in tile_rows(h, w, tile, 0))


def tiled_bands(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    scale: int,
    tile: int,
    tile_pad: int,
    on_tile: Callable[[], object] | None = None,
) -> Iterator[Tensor]:
    """Run ``fn`` (an LR -> xscale SR map on float tensors) on ``x`` of shape ``(N, C, H, W)`` tile by tile.

    Yields, for each row of tiles, the SR band ``(N, C_out, s*(y1-y0), s*W)``, top to bottom.
    ``x`` may be of any dtype: each patch is passed to ``fn`` as it is sliced, so a uint8 input can
    be converted per patch inside ``fn`` (no float copy of a large image). ``on_tile`` is called
    after every tile (a progress bar's ``update``).
    """
    if x.ndim != 4:
        raise ValueError(f"expected an (N, C, H, W) tensor, got shape {tuple(x.shape)}")
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    n, _, h, w = x.shape
    s = scale
    for row in tile_rows(h, w, tile, tile_pad):
        band: Tensor | None = None
        for t in row:
            patch = x[:, :, t.py0 : t.py1, t.px0 : t.px1]
            out = fn(patch)
            expected = (s * (t.py1 - t.py0), s * (t.px1 - t.px0))
            if tuple(out.shape[-2:]) != expected or out.shape[0] != n:
                raise ValueError(
                    f"fn mapped a patch of shape {tuple(patch.shape)} to {tuple(out.shape)}; "
                    f"expected batch {n} and spatial size {expected} (scale {s})"
                )
            if band is None:
                band = torch.empty((n, out.shape[1], s * (t.y1 - t.y0), s * w), dtype=out.dtype, device=out.device)
            oy, ox = s * (t.y0 - t.py0), s * (t.x0 - t.px0)
            band[:, :, :, s * t.x0 : s * t.x1] = out[:, :, oy : oy + s * (t.y1 - t.y0), ox : ox + s * (t.x1 - t.x0)]
            if on_tile is not None:
                on_tile()
        assert band is not None
        yield band


def tiled_forward(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    scale: int,
    tile: int,
    tile_pad: int,
    on_tile: Callable[[], object] | None = None,
) -> Tensor:
    """The whole SR output of :func:`tiled_bands`, ``(N, C_out, s*H, s*W)``; one call ``fn(x)`` when
    ``tile <= 0`` or the input fits in one tile."""
    rows = tile_rows(x.shape[-2], x.shape[-1], tile, tile_pad) if x.ndim == 4 else []
    if len(rows) == 1 and len(rows[0]) == 1:
        out = fn(x)
        if on_tile is not None:
            on_tile()
        return out
    bands = tiled_bands(fn, x, scale, tile, tile_pad, on_tile)
    first = next(bands)
    out = torch.empty((*first.shape[:2], scale * x.shape[-2], first.shape[-1]), dtype=first.dtype, device=first.device)
    top = 0
    for band in (first, *bands):
        out[:, :, top : top + band.shape[-2]] = band
        top += band.shape[-2]
    return out


def tiling_context(model: nn.Module) -> TilingContext:
    """The context to tile ``model`` with: its receptive-field radius (``model.receptive_radius``, in
    LR pixels) when it has one, which makes tiling exact unless a layer uses statistics over the whole
    input (a module with ``image_statistics = True``); else :data:`APPROXIMATE_CONTEXT`."""
    radius = getattr(model, "receptive_radius", None)
    if radius is None:
        return TilingContext(APPROXIMATE_CONTEXT, False, "its receptive field covers the whole image")
    if any(getattr(m, "image_statistics", False) for m in model.modules()):
        return TilingContext(radius, False, "a layer uses statistics over the whole image")
    return TilingContext(radius, True, f"{radius} LR pixels of context cover the receptive field")
