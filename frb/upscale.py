"""Super-resolution of one image into a file, in bounded memory, the image kept whole.

Used by ``python -m frb upscale`` (``frb.cli.upscale``) and the app's ``/upscale`` endpoint.
Images are kept whole (``frb.picture``): transparency is upscaled separately with bicubic
interpolation (Real-ESRGAN's ``--alpha_upsampler bicubic``) and written back as RGBA, 16-bit
inputs give 16-bit PNGs, and the ICC profile and EXIF data (orientation applied to the pixels and
reset) are carried to the output. JPEG and WebP hold 8 bits (JPEG no alpha): what an output
format cannot hold is said in a note.

Memory stays bounded for any image size: a large image runs tile by tile (``frb.tiling``, with the
context each model declares: exact for the SRResNet family, within the README's stated tolerance for
SwinIR and BTM), and a PNG output is compressed one band of tiles at a time (``frb.png.PngStream``),
so the full-resolution result is never held in memory (JPEG and WebP outputs are); a progress bar
(stderr) advances per tile.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from frb.bitwise.runner import Runner
from frb.imaging import ImageError, imresize_torch
from frb.picture import Picture
from frb.png import PngStream
from frb.tiling import tile_count, tiled_bands

#: LR tile size used when no tile is given and the LR image has more than AUTO_TILE_ABOVE pixels.
DEFAULT_TILE = 256
AUTO_TILE_ABOVE = 512 * 512
#: Output formats, and the longest side each can hold.
OUTPUT_FORMATS = {"png": 2**31 - 1, "jpg": 65535, "webp": 16383}


def tile_size(lr_shape: tuple[int, ...], tile: int | None) -> int:
    """``tile`` when given (0 = whole image); else DEFAULT_TILE above AUTO_TILE_ABOVE LR pixels, 0 below."""
    if tile is not None:
        return tile
    return DEFAULT_TILE if lr_shape[0] * lr_shape[1] > AUTO_TILE_ABOVE else 0


def upscale_bands(
    runner: Runner, picture: Picture, scale: int, tile: int | None, tile_pad: int, on_tile=None
) -> Iterator[np.ndarray]:
    """SR of a picture as bands of rows, top to bottom: ``(rows, s*W, 3 or 4)`` at the picture's bit
    depth, tiled as :func:`tile_size` says. The model runs on the colour planes, bicubic on the alpha
    plane; each patch is converted to float (``v / max``) only when it runs, and back with
    ``floor(max * clamp(v, 0, 1) + 0.5)``."""
    planes = picture.rgb if picture.alpha is None else np.dstack([picture.rgb, picture.alpha])
    if planes.dtype == np.uint16 or not planes.flags.writeable:  # torch has no uint16 arithmetic
        planes = planes.astype(np.int32 if planes.dtype == np.uint16 else np.uint8)
    x = torch.from_numpy(planes).permute(2, 0, 1)[None]
    top = picture.max_value

    @torch.inference_mode()
    def forward(patch: Tensor) -> Tensor:  # quantized per tile: a band is held as integers, not floats
        f = patch.float().div_(top)
        y = runner(f[:, :3])
        if f.shape[1] == 4:
            y = torch.cat([y, imresize_torch(f[:, 3:], scale)], dim=1)
        return torch.floor(y.clamp_(0.0, 1.0).mul_(top).add_(0.5)).to(torch.int32 if top > 255 else torch.uint8)

    dtype = np.uint16 if picture.bit_depth == 16 else np.uint8
    for band in tiled_bands(forward, x, scale, tile_size(picture.rgb.shape, tile), tile_pad, on_tile):
        yield band[0].permute(1, 2, 0).numpy().astype(dtype, copy=False)


def upscale_image(runner: Runner, lr: np.ndarray, scale: int, tile: int | None, tile_pad: int) -> np.ndarray:
    """SR of one ``HxWx3`` uint8 image as one array (for images that fit in memory)."""
    return np.concatenate(list(upscale_bands(runner, Picture(lr), scale, tile, tile_pad)))


def write_upscaled(
    runner: Runner, picture: Picture, scale: int, tile: int | None, tile_pad: int, dst: Path,
    quality: int = 95, desc: str = "",
) -> list[str]:
    """Upscale ``picture`` into ``dst`` (format from its suffix) with a per-tile progress bar; returns
    notes on what the format could not hold. PNG is written band by band; JPEG and WebP whole."""
    h, w = picture.rgb.shape[:2]
    fmt = dst.suffix.lstrip(".").lower()
    if max(scale * h, scale * w) > OUTPUT_FORMATS[fmt]:
        raise ImageError(f"x{scale} of {w}x{h} is {scale * w}x{scale * h}, above {fmt.upper()}'s limit of "
                         f"{OUTPUT_FORMATS[fmt]} pixels per side; use --ext png")
    total = tile_count(h, w, tile_size(picture.rgb.shape, tile))
    channels = 3 if picture.alpha is None else 4
    with tqdm(total=total, desc=desc, unit="tile", leave=False, disable=total == 1) as bar:
        bands = upscale_bands(runner, picture, scale, tile, tile_pad, bar.update)
        if fmt == "png":
            with PngStream(dst, scale * w, scale * h, channels, picture.bit_depth, icc_profile=picture.icc_profile,
                           exif=picture.exif) as png:
                for band in bands:
                    png.write(band)
            return []
        return save_whole(np.concatenate(list(bands)), picture, dst, fmt, quality)


def save_whole(sr: np.ndarray, picture: Picture, dst: Path, fmt: str, quality: int) -> list[str]:
    """Save a JPEG or WebP (8 bits; JPEG without alpha) through a temporary file; returns the notes."""
    notes = []
    if sr.dtype == np.uint16:
        sr = np.floor(sr / 257.0 + 0.5).astype(np.uint8)
        notes.append(f"{fmt.upper()} holds 8 bits: the 16-bit result was reduced to 8 bits (use --ext png to keep 16)")
    if fmt == "jpg" and sr.shape[2] == 4:
        alpha = sr[:, :, 3:].astype(np.float32) / 255.0
        sr = np.floor(sr[:, :, :3] * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
        notes.append("JPEG has no transparency: it was flattened onto white (use --ext png or webp to keep it)")
    options = {"quality": quality, "icc_profile": picture.icc_profile, "exif": picture.exif or b""}
    tmp = dst.with_name(f".{dst.name}.partial")
    try:
        Image.fromarray(sr).save(tmp, format="JPEG" if fmt == "jpg" else "WEBP", **options)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return notes
