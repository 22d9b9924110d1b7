"""Image files kept whole: colour, transparency, bit depth and metadata, for tools that write files back.

:func:`frb.imaging.load_image` gives the 8-bit RGB array every model and metric works on (alpha
flattened onto white). A command that writes images for people (``frb upscale``) should give back
what it was given instead, as Real-ESRGAN's inference script does: :func:`load_picture` returns a
:class:`Picture` with the colour planes at the file's own depth (8 or 16 bits), the alpha channel
kept apart when some pixel is transparent (so that it can be upscaled on its own), the ICC profile,
and the EXIF data with its orientation already applied to the pixels and reset to 1 (upright), so
that viewers do not rotate the output a second time.

16-bit colour PNG and TIFF files are decoded with OpenCV (PIL reduces them to 8 bits); everything
else with PIL, through the same checks as ``load_image`` (pixel limit before decoding, truncated
files, decompression bombs).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image, ImageOps

from frb.imaging import ImageDecodeError, ImageTooLargeError, check_size, open_image, pil_to_array

ORIENTATION = 0x0112  # EXIF tag


@dataclass
class Picture:
    """An image file's content: ``rgb`` ``HxWx3`` (uint8 or uint16), ``alpha`` ``HxW`` of the same type or
    None (fully opaque), the ICC profile and EXIF bytes (orientation reset) or None, and notices for
    what was left out (frames after the first)."""

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    icc_profile: bytes | None = None
    exif: bytes | None = None
    notices: list[str] = field(default_factory=list)

    @property
    def bit_depth(self) -> int:
        return 16 if self.rgb.dtype == np.uint16 else 8

    @property
    def max_value(self) -> int:
        return 65535 if self.bit_depth == 16 else 255


def _reset_orientation(img: Image.Image) -> bytes | None:
    exif = img.getexif()
    if ORIENTATION in exif:
        exif[ORIENTATION] = 1
    return exif.tobytes() if len(exif) else None


def _is_16_bit_colour(img: Image.Image, path: str | os.PathLike) -> bool:
    """PIL opens 16-bit RGB(A) PNG/TIFF as 8-bit RGB(A); the file's header says what it holds."""
    if img.mode not in ("RGB", "RGBA"):
        return False
    if img.format == "PNG":
        with open(path, "rb") as f:
            return f.read(25)[24] == 16  # IHDR bit depth
    if img.format == "TIFF":
        bits = img.tag_v2.get(258, (8,))
        return max(bits if isinstance(bits, tuple) else (bits,)) == 16
    return False


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an ``HxW[xC]`` array, as ``PIL.ImageOps.exif_transpose`` does."""
    ops = {
        2: lambda x: x[:, ::-1],
        3: lambda x: x[::-1, ::-1],
        4: lambda x: x[::-1],
        5: lambda x: np.swapaxes(x, 0, 1),
        6: lambda x: np.rot90(x, -1),
        7: lambda x: np.swapaxes(x, 0, 1)[::-1, ::-1],
        8: lambda x: np.rot90(x, 1),
    }
    return np.ascontiguousarray(ops[orientation](a)) if orientation in ops else a


def _decode_16_bit(path: str | os.PathLike, orientation: int) -> np.ndarray:
    a = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
    if a is None or a.dtype != np.uint16:
        raise ImageDecodeError(f"cannot read image: {os.fspath(path)} is not a readable 16-bit image")
    if a.ndim == 3:
        a = a[:, :, [2, 1, 0, 3][: a.shape[2]]]  # BGR(A) -> RGB(A)
    return _orient(a, orientation)


def _split_alpha(a: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``HxW[xC]`` (C = 1..4) -> RGB and alpha (None when every pixel is opaque)."""
    if a.ndim == 2:
        a = a[:, :, None]
    alpha = None
    if a.shape[2] in (2, 4):
        alpha, a = a[:, :, -1], a[:, :, :-1]
        if alpha.min() == np.iinfo(alpha.dtype).max:
            alpha = None
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return np.ascontiguousarray(a), None if alpha is None else np.ascontiguousarray(alpha)


def load_picture(path: str | os.PathLike, max_pixels: int | None) -> Picture:
    """Read an image file whole (see the module docstring); raises ``frb.imaging.ImageError`` subclasses."""
    img = open_image(path)
    check_size(img.width, img.height, max_pixels)
    notices = []
    frames = getattr(img, "n_frames", 1)
    if frames > 1:
        notices.append(f"animated image: only the first of its {frames} frames is used")
    try:
        icc, orientation = img.info.get("icc_profile") or None, img.getexif().get(ORIENTATION, 1)
        if _is_16_bit_colour(img, path):
            a = _decode_16_bit(path, orientation)
        else:
            img.load()
            upright = ImageOps.exif_transpose(img)
            if upright.mode.startswith("I;16") or upright.mode == "I":  # 16-bit gray, kept at 16 bits
                a = np.asarray(upright).astype(np.int64).clip(0, 65535).astype(np.uint16)
            else:
                a = pil_to_array(upright)
                if a.dtype != np.uint8:
                    a = np.floor(np.clip(a, 0, 255) + 0.5).astype(np.uint8)
        exif = _reset_orientation(img)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"image is too large to decode safely: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"cannot read image: file is truncated or not an image ({exc})") from exc
    rgb, alpha = _split_alpha(a)
    return Picture(rgb, alpha, icc, exif, notices)
