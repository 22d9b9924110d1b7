"""Image I/O and MATLAB-compatible bicubic resizing.

* :func:`load_image` turns whatever a user hands us (path, bytes, file object, PIL image,
  numpy array) into an ``HxWx3`` ``uint8`` RGB array, or raises :class:`ImageError` with a
  message fit to show to a person.
* :func:`imresize_torch` / :func:`imresize` reproduce MATLAB's ``imresize(img, scale, 'bicubic')``,
  which the super-resolution literature uses to make LR images and the bicubic baseline.
* :func:`make_lr`, :func:`modcrop`, :func:`to_tensor`, :func:`to_uint8` are the small glue
  functions used by training, evaluation and the app.
"""
from __future__ import annotations

import io
import math
import os
from typing import BinaryIO, Union

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

#: Default largest accepted image, in pixels (16 MP).
DEFAULT_MAX_PIXELS = 16_000_000

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO, Image.Image, np.ndarray]


class ImageError(ValueError):
    """An input that cannot be used as an image; the message is meant for end users."""


class ImageDecodeError(ImageError):
    """The input is unreadable: missing, not an image, truncated or of an unsupported kind."""


class ImageTooLargeError(ImageError):
    """The image has more pixels than the allowed limit."""


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _megapixels(n: float) -> str:
    """``n`` pixels as megapixels: one decimal from 0.1 MP up, three below (e.g. ``"24.0 MP"``)."""
    return f"{n / 1e6:.1f} MP" if n >= 100_000 else f"{n / 1e6:.3f} MP"


def check_size(width: int, height: int, max_pixels: int | None) -> None:
    """Raise :class:`ImageTooLargeError` when ``width*height > max_pixels`` (``None``: no limit)."""
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"cannot read image: it is empty ({width}x{height} pixels)")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            f"image is {width}x{height} = {_megapixels(width * height)}, above the limit of "
            f"{_megapixels(max_pixels)}; downscale it or raise the limit"
        )


def open_image(src: ImageSource) -> Image.Image:
    """Open a path, bytes-like object or binary file object with PIL (header only, pixels not decoded)."""
    if isinstance(src, (str, os.PathLike)):
        stream: str | BinaryIO = os.fspath(src)
    elif isinstance(src, (bytes, bytearray, memoryview)):
        stream = io.BytesIO(bytes(src))
    elif hasattr(src, "read"):
        data = src.read()
        if not isinstance(data, (bytes, bytearray)):
            raise ImageDecodeError("cannot read image: the file object must be opened in binary mode")
        stream = io.BytesIO(data)
    else:
        raise ImageDecodeError(f"cannot read image: unsupported input of type {type(src).__name__}")
    try:
        return Image.open(stream)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(
            f"image is too large to open safely (above PIL's decompression-bomb limit of "
            f"{_megapixels(2 * (Image.MAX_IMAGE_PIXELS or 0))}): {exc}"
        ) from exc
    except FileNotFoundError as exc:
        raise ImageDecodeError(f"cannot read image: no such file ({src})") from exc
    except IsADirectoryError as exc:
        raise ImageDecodeError(f"cannot read image: {src} is a folder, not a file") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"cannot read image: file is not an image or of an unsupported format ({exc})") from exc


def _scale_float(a: np.ndarray) -> np.ndarray:
    """Map a float array to the 0..255 scale.

    Rule: non-finite values become 0; if every value is <= 1 the array is taken to be in [0, 1]
    and multiplied by 255, otherwise it is taken to be in [0, 255] already.  Clipping to
    [0, 255] happens at the final rounding.
    """
    a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return a * 255.0 if a.size == 0 or a.max() <= 1.0 else a


def _to_255_scale(a: np.ndarray) -> np.ndarray:
    """Convert a numeric array to float64 or uint8 values on the 0..255 scale.

    ``uint8``: unchanged.  ``uint16``: ``v * 255 / 65535`` (so 65535 -> 255, not clipped).
    ``bool``: 0 / 255.  Floats: see :func:`_scale_float`.  Other integer types are accepted
    only when all values already lie in 0..255.
    """
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if a.dtype.kind == "u" and a.dtype.itemsize == 2:
        return a.astype(np.float64) * (255.0 / 65535.0)
    if np.issubdtype(a.dtype, np.floating):
        return _scale_float(a)
    if np.issubdtype(a.dtype, np.integer):
        if a.size and (a.min() < 0 or a.max() > 255):
            raise ImageDecodeError(
                f"cannot read image: integer array of type {a.dtype} has values outside 0..255; "
                "pass uint8, uint16 or float data"
            )
        return a.astype(np.uint8)
    raise ImageDecodeError(f"cannot read image: unsupported array type {a.dtype}")


def _channels_to_rgb(a: np.ndarray) -> np.ndarray:
    """Turn an ``HxW`` / ``HxWxC`` array on the 0..255 scale into ``HxWx3`` uint8 RGB.

    Gray (C=1 or 2-D) is replicated; an alpha channel (C=2: gray+alpha, C=4: RGBA) is composited
    on a white background: ``out = c * alpha/255 + 255 * (1 - alpha/255)``.  Values are rounded
    half up and clipped to 0..255.
    """
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise ImageDecodeError(
            f"cannot read image: array of shape {tuple(a.shape)} is not HxW, HxWx1, HxWx2, HxWx3 or HxWx4"
        )
    c = a.shape[2]
    if c in (2, 4):
        alpha = a[:, :, -1:].astype(np.float64) / 255.0
        color = a[:, :, :-1].astype(np.float64)
        a = color * alpha + 255.0 * (1.0 - alpha)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    if a.dtype != np.uint8:
        a = np.floor(np.clip(a, 0.0, 255.0) + 0.5).astype(np.uint8)
    return np.ascontiguousarray(a)


def pil_to_array(img: Image.Image) -> np.ndarray:
    """Decoded PIL image (any mode) -> array on the 0..255 scale, keeping alpha if present.

    Mode rules: ``1`` -> L; ``P``/``PA`` -> RGBA (honours palette transparency); ``La``/``RGBa``
    (premultiplied) -> LA/RGBA; ``I;16*`` -> uint16 scaled by 255/65535; ``I`` (32-bit int, what
    PIL uses for some 16-bit files) is clipped to 0..65535 and scaled likewise; ``F`` follows
    :func:`_scale_float`; CMYK, YCbCr, HSV and others go through PIL's ``convert("RGB")``.
    """
    mode = img.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        return np.asarray(img)
    if mode == "1":
        return np.asarray(img.convert("L"))
    if mode in ("P", "PA"):
        return np.asarray(img.convert("RGBA"))
    if mode == "La":
        return np.asarray(img.convert("LA"))
    if mode == "RGBa":
        return np.asarray(img.convert("RGBA"))
    if mode.startswith("I;16"):
        return np.asarray(img).astype(np.float64) * (255.0 / 65535.0)
    if mode == "I":
        return np.clip(np.asarray(img).astype(np.float64), 0, 65535) * (255.0 / 65535.0)
    if mode == "F":
        return _scale_float(np.asarray(img))
    try:
        return np.asarray(img.convert("RGB"))
    except (ValueError, OSError) as exc:
        raise ImageDecodeError(f"cannot read image: unsupported image mode {mode!r} ({exc})") from exc


def load_image(src: ImageSource, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Load ``src`` as an ``HxWx3`` uint8 RGB array.

    ``src`` may be a path, ``bytes``, a binary file object, a ``PIL.Image`` or a numpy array.
    The pixel count is checked against ``max_pixels`` (``None``: no limit) from the header,
    before pixels are decoded.  Files are fully decoded (so truncated files fail here), EXIF
    orientation is applied, and every PIL mode / array type is mapped to 8-bit RGB:

    * gray is replicated to 3 channels; alpha is composited on white,
      ``out = c * a + 255 * (1 - a)`` with ``a = alpha / 255``;
    * 16-bit data: ``v8 = round(v16 * 255 / 65535)``;
    * float data: in [0, 1] if its maximum is <= 1 (then ``v8 = round(255 v)``), else taken as
      0..255; clipped to 0..255.

    Raises:
        ImageTooLargeError: more than ``max_pixels`` pixels (or above PIL's bomb limit).
        ImageDecodeError: unreadable, not an image, truncated, or unsupported layout.
    """
    if isinstance(src, np.ndarray):
        if src.ndim not in (2, 3):
            raise ImageDecodeError(f"cannot read image: array of shape {tuple(src.shape)} is not 2-D or 3-D")
        check_size(src.shape[1], src.shape[0], max_pixels)
        return _channels_to_rgb(_to_255_scale(src))

    img = src if isinstance(src, Image.Image) else open_image(src)
    check_size(img.width, img.height, max_pixels)
    try:
        img.load()
        img = ImageOps.exif_transpose(img)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"image is too large to decode safely: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"cannot read image: file is truncated or not an image ({exc})") from exc
    return _channels_to_rgb(pil_to_array(img))


# --------------------------------------------------------------------------------------------
# Cropping, tensors
# --------------------------------------------------------------------------------------------


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right of ``img`` (``HxW[xC]``) so that H and W are multiples of ``scale``."""
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale, ...]


def enlarge(img: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer factor (each pixel becomes a factor x factor block)."""
    return np.repeat(np.repeat(img, factor, axis=0), factor, axis=1)


def to_tensor(img: np.ndarray) -> Tensor:
    """``HxWx3`` uint8 -> ``(1, 3, H, W)`` float32 tensor with values ``v / 255`` in [0, 1]."""
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 image, got shape {img.shape} and type {img.dtype}")
    planes = np.ascontiguousarray(img.transpose(2, 0, 1))
    if not planes.flags.writeable:  # e.g. a single-row image: ascontiguousarray returned a read-only view
        planes = planes.copy()
    return torch.from_numpy(planes).float().div_(255.0).unsqueeze(0)


def to_uint8(t: Tensor) -> np.ndarray:
    """``(1, 3, H, W)`` or ``(3, H, W)`` tensor in [0, 1] -> ``HxWx3`` uint8.

    ``v8 = floor(255 * clamp(v, 0, 1) + 0.5)`` (round half up).
    """
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ValueError(f"expected a single image (batch size 1), got shape {tuple(t.shape)}")
        t = t[0]
    if t.ndim != 3 or t.shape[0] != 3:
        raise ValueError(f"expected a (1, 3, H, W) or (3, H, W) tensor, got shape {tuple(t.shape)}")
    v = torch.floor(t.detach().float().clamp(0.0, 1.0) * 255.0 + 0.5)
    return v.to(torch.uint8).permute(1, 2, 0).contiguous().cpu().numpy()


# --------------------------------------------------------------------------------------------
# MATLAB-compatible bicubic imresize
# --------------------------------------------------------------------------------------------


def _cubic(x: Tensor) -> Tensor:
    """Keys cubic kernel with ``a = -0.5``.

    ``k(x) = 1.5|x|^3 - 2.5|x|^2 + 1``            for ``|x| <= 1``,
    ``k(x) = -0.5|x|^3 + 2.5|x|^2 - 4|x| + 2``    for ``1 < |x| <= 2``, else 0.
    """
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1.0)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1.0) & (ax <= 2.0))
    return near + far


def output_size(length: int, scale: float) -> int:
    """MATLAB's output length ``ceil(length * scale)``.

    The product is rounded to 9 decimals first so that e.g. ``255 * (1/3)`` gives 85, not 86.
    """
    return max(1, math.ceil(round(length * scale, 9)))


def _contributions(in_len: int, scale: float, device: torch.device) -> tuple[Tensor, Tensor]:
    """Taps of the 1-D MATLAB bicubic resampler, as ``(indices, weights)`` of shape ``(out_len, P)``.

    For output pixel ``x = 1..out_len`` (1-based, as MATLAB) the input coordinate is
    ``u = x / scale + 0.5 * (1 - 1/scale)``.  When downscaling (``scale < 1``) the kernel is
    stretched for antialiasing, ``h(t) = scale * k(scale * t)`` with width ``4 / scale``;
    otherwise ``h = k`` with width 4.  Taps are ``j = floor(u - width/2) + p`` for
    ``p = 0..ceil(width)+1``, weights ``h(u - j)`` normalised to sum 1 per output pixel.
    Out-of-range ``j`` are mirrored symmetrically (edge pixel repeated: ... 2 1 | 1 2 ... n | n n-1 ...).
    Indices are returned 0-based.
    """
    out_len = output_size(in_len, scale)
    antialias = scale < 1.0
    width = 4.0 / scale if antialias else 4.0
    x = torch.arange(1, out_len + 1, dtype=torch.float64, device=device)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = torch.floor(u - width / 2.0)
    taps = math.ceil(width) + 2
    j = left[:, None] + torch.arange(taps, dtype=torch.float64, device=device)[None, :]
    dist = u[:, None] - j
    w = scale * _cubic(scale * dist) if antialias else _cubic(dist)
    w = w / w.sum(dim=1, keepdim=True)
    period = 2 * in_len
    m = torch.remainder(j.long() - 1, period)
    idx = torch.where(m < in_len, m, period - 1 - m)
    return idx, w


def _resize_dim(x: Tensor, dim: int, scale: float) -> Tensor:
    """Resize floating tensor ``x`` along ``dim`` by ``scale``: ``out[i] = sum_p w[i,p] * x[idx[i,p]]``."""
    idx, w = _contributions(x.shape[dim], scale, x.device)
    w = w.to(x.dtype)
    shape = [1] * x.ndim
    shape[dim] = idx.shape[0]
    out = None
    for p in range(idx.shape[1]):
        term = x.index_select(dim, idx[:, p]) * w[:, p].reshape(shape)
        out = term if out is None else out.add_(term)
    return out


def imresize_torch(x: Tensor, scale: float) -> Tensor:
    """MATLAB ``imresize(x, scale, 'bicubic')`` (antialiased when downscaling) on a float tensor.

    ``x`` is ``(N, C, H, W)`` or ``(C, H, W)``; the output has ``H' = ceil(H*scale)``,
    ``W' = ceil(W*scale)`` (see :func:`output_size`) and the same dtype/device.  The filter is
    separable; MATLAB resizes the dimension with the smallest scale factor first and, with one
    scale for both, rows (H) before columns (W), which is the order used here.  No clamping or
    rounding is done (see :func:`imresize` for uint8 images).
    """
    if not torch.is_floating_point(x):
        raise TypeError(f"imresize_torch needs a floating-point tensor, got {x.dtype}")
    if x.ndim not in (3, 4):
        raise ValueError(f"expected a (N, C, H, W) or (C, H, W) tensor, got shape {tuple(x.shape)}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    return _resize_dim(_resize_dim(x, x.ndim - 2, scale), x.ndim - 1, scale)


def imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')`` on an ``HxW`` or ``HxWxC`` numpy array.

    Computed in float64 with :func:`imresize_torch`'s filter (H first, then W).  A uint8 input
    gives uint8 output, rounded half away from zero and clipped to 0..255, as MATLAB does; a
    float input gives output of the same float dtype, unclipped.
    """
    if img.ndim not in (2, 3):
        raise ValueError(f"expected an HxW or HxWxC array, got shape {img.shape}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    if img.dtype == np.uint8:
        out_dtype = np.uint8
    elif np.issubdtype(img.dtype, np.floating):
        out_dtype = img.dtype
    else:
        raise TypeError(f"imresize supports uint8 and float arrays, got {img.dtype}")
    x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float64))
    y = _resize_dim(_resize_dim(x, 0, scale), 1, scale).numpy()
    if out_dtype == np.uint8:
        return np.floor(np.clip(y, 0.0, 255.0) + 0.5).astype(np.uint8)
    return y.astype(out_dtype)


def make_lr(hr: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Make an SR training/evaluation pair: ``hr_c = modcrop(hr, scale)``, ``lr = imresize(hr_c, 1/scale)``.

    Both are uint8; ``lr`` is ``(H/scale) x (W/scale)``, rounded to uint8 as the literature stores it.
    """
    if hr.dtype != np.uint8:
        raise TypeError(f"make_lr expects a uint8 image, got {hr.dtype}")
    hr_c = modcrop(hr, scale)
    return hr_c, imresize(hr_c, 1.0 / scale)
