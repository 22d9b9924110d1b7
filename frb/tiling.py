"""Tiled inference for super-resolution models, to bound memory on large inputs."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


def tiled_forward(fn: Callable[[Tensor], Tensor], x: Tensor, scale: int, tile: int, tile_pad: int) -> Tensor:
    """Run ``fn`` (an LR -> xscale SR map) on ``x`` of shape ``(N, C, H, W)`` tile by tile.

    The input is cut into a grid of ``tile x tile`` tiles (the last row/column may be smaller).
    Tile ``[y0:y1, x0:x1]`` is fed to ``fn`` with ``tile_pad`` extra pixels of context on each
    side, clamped at the image border, i.e. the patch ``[max(y0-p, 0) : min(y1+p, H), ...]``;
    of its output only the part covering the tile, ``[s*y0 : s*y1, s*x0 : s*x1]`` in SR
    coordinates, is kept and written into the result ``(N, C_out, s*H, s*W)``.

    ``tile <= 0``, or an image no larger than one tile, means one untiled call ``fn(x)``.

    Exactness: for a convolutional model whose receptive-field radius is ``R`` LR pixels
    (e.g. ``R = k`` for ``k`` 3x3 convolutions at LR resolution), every kept output pixel sees
    the same input pixels as in the untiled run as long as ``tile_pad >= R``: inside the image
    the padded patch contains the whole receptive field, and where the patch is clamped at the
    image border it coincides with the real border, so the model's own (zero) padding applies
    exactly as untiled.  The result then equals ``fn(x)`` up to floating-point rounding.  This
    does not hold for models with global operations (e.g. statistics over the whole image).
    """
    if x.ndim != 4:
        raise ValueError(f"expected an (N, C, H, W) tensor, got shape {tuple(x.shape)}")
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    if tile_pad < 0:
        raise ValueError(f"tile_pad must be >= 0, got {tile_pad}")
    h, w = x.shape[-2:]
    if tile <= 0 or (h <= tile and w <= tile):
        return fn(x)

    s = scale
    out: Tensor | None = None
    for y0 in range(0, h, tile):
        y1 = min(y0 + tile, h)
        py0, py1 = max(y0 - tile_pad, 0), min(y1 + tile_pad, h)
        for x0 in range(0, w, tile):
            x1 = min(x0 + tile, w)
            px0, px1 = max(x0 - tile_pad, 0), min(x1 + tile_pad, w)
            patch_out = fn(x[:, :, py0:py1, px0:px1])
            expected = (s * (py1 - py0), s * (px1 - px0))
            if tuple(patch_out.shape[-2:]) != expected or patch_out.shape[0] != x.shape[0]:
                raise ValueError(
                    f"fn mapped a patch of shape {tuple(x[:, :, py0:py1, px0:px1].shape)} to "
                    f"{tuple(patch_out.shape)}; expected batch {x.shape[0]} and spatial size {expected} (scale {s})"
                )
            if out is None:
                out = torch.empty(
                    (x.shape[0], patch_out.shape[1], s * h, s * w), dtype=patch_out.dtype, device=patch_out.device
                )
            oy, ox = s * (y0 - py0), s * (x0 - px0)
            out[:, :, s * y0 : s * y1, s * x0 : s * x1] = patch_out[
                :, :, oy : oy + s * (y1 - y0), ox : ox + s * (x1 - x0)
            ]
    assert out is not None
    return out
