"""Methods side by side on one image (the app's Compare tab): runs, zoomed crops, the metrics table.

Two modes: in HR mode the input is a high-resolution image, the low-resolution input is made
with MATLAB bicubic downscaling (``frb.imaging.make_lr``) and every output is scored against the
(mod-cropped) HR image with Y-channel PSNR/SSIM (border = scale); in LR mode the input is upscaled
as it is and nothing is scored. Large inputs are either downscaled to the demo's limit (with a
notice) or rejected with a message; inputs above one tile run tile by tile (``frb.tiling``).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from frb.bitwise.runner import select_runner
from frb.cost import model_cost
from frb.imaging import ImageError, ImageTooLargeError, enlarge, imresize, make_lr, to_tensor, to_uint8
from frb.metrics import psnr_y, ssim_y
from frb.models import MODELS, SCALES, get_spec
from frb.tiling import tiled_forward, tiling_context
from frb.weights import shared_model

MODE_HR = "HR: downscale, restore and score"
MODE_LR = "LR: upscale only"
MODES = (MODE_HR, MODE_LR)
HR_LABEL = "HR (ground truth)"

#: Largest low-resolution input the demo runs (about 4 s per SRResNet-size model at x4 on 2 vCPUs).
MAX_LR_PIXELS = 256 * 256
#: Smallest low-resolution side (metrics drop a border of `scale` pixels; SwinIR works in 8x8 windows).
MIN_LR_SIDE = 8
#: LR tile size for inputs larger than one tile (the context around each tile is the model's own,
#: ``frb.tiling.tiling_context``).
TILE = 256

Progress = Callable[[float, str], None]


@dataclass
class MethodResult:
    """One method's output on the LR input."""

    name: str
    title: str
    image: np.ndarray  # HxWx3 uint8, scale x the LR size
    runtime_s: float
    backend: str
    psnr: float | None = None
    ssim: float | None = None
    params_K: float | None = None


@dataclass
class Comparison:
    """All outputs of one run; ``hr`` is None in LR mode. ``alpha`` is the input's transparency at the
    output size (bicubic from the LR alpha) and ``hr_alpha`` the HR image's, None for opaque inputs."""

    mode: str
    scale: int
    lr: np.ndarray
    hr: np.ndarray | None
    results: list[MethodResult]
    notices: list[str] = field(default_factory=list)
    alpha: np.ndarray | None = None
    hr_alpha: np.ndarray | None = None


def _downscale(img: np.ndarray, factor: float) -> np.ndarray:
    """Lanczos-downscale ``img`` by ``factor`` (< 1), keeping at least one pixel per side."""
    h, w = img.shape[:2]
    size = (max(1, int(w * factor)), max(1, int(h * factor)))
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.LANCZOS))


def prepare_input(
    image: np.ndarray, mode: str, scale: int, max_lr_pixels: int = MAX_LR_PIXELS, fit: bool = True
) -> tuple[np.ndarray | None, np.ndarray, list[str]]:
    """``(hr or None, lr, notices)`` for one run (HxWx3, or HxWx4 with alpha, uint8).

    The LR size is limited to ``max_lr_pixels``: larger inputs are downscaled to fit when ``fit``
    (with a notice), else rejected with :class:`ImageTooLargeError`. Too small inputs raise
    :class:`ImageError`.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale}")
    notices = []
    per_lr = scale if mode == MODE_HR else 1
    h, w = image.shape[:2]
    lr_pixels = (h // per_lr) * (w // per_lr)
    if lr_pixels > max_lr_pixels:
        what = f"the LR image (input / {scale})" if mode == MODE_HR else "the LR input"
        if not fit:
            raise ImageTooLargeError(
                f"input is too large for this demo: {what} would be {w // per_lr}x{h // per_lr} = "
                f"{lr_pixels:,} pixels, above the limit of {max_lr_pixels:,}; crop or downscale it"
            )
        image = _downscale(image, math.sqrt(max_lr_pixels / lr_pixels))
        notices.append(
            f"input downscaled from {w}x{h} to {image.shape[1]}x{image.shape[0]} (Lanczos) so that "
            f"{what} stays within the demo's limit of {max_lr_pixels:,} pixels"
        )
    h, w = image.shape[:2]
    if min(h, w) // per_lr < MIN_LR_SIDE:
        raise ImageError(
            f"image is too small: {w}x{h} gives an LR image below {MIN_LR_SIDE} pixels per side at x{per_lr}"
        )
    if mode == MODE_LR:
        return None, image, notices
    hr, lr = make_lr(image, scale)
    if hr.shape != image.shape:
        notices.append(f"HR cropped from {w}x{h} to {hr.shape[1]}x{hr.shape[0]}, a multiple of the scale {scale}")
    return hr, lr, notices


def run_method(name: str, lr: np.ndarray, scale: int, backend: str) -> tuple[MethodResult, list[str]]:
    """Run one public model on the uint8 LR image; returns the result and its notices."""
    spec = get_spec(name)
    model, weights_notice = shared_model(name, scale)
    if model is None:
        raise ValueError(weights_notice)
    forward, used, backend_notice = select_runner(model, backend)
    x = to_tensor(lr)
    with torch.inference_mode():
        start = time.perf_counter()
        y = tiled_forward(forward, x, scale, TILE, tiling_context(model).pad)
        runtime = time.perf_counter() - start
    result = MethodResult(name, spec.title, to_uint8(y), runtime, used, params_K=model_cost(name, scale).params_K)
    return result, [n for n in (weights_notice, backend_notice) if n]


def compare(
    image: np.ndarray,
    methods: Sequence[str],
    mode: str = MODE_HR,
    scale: int = 4,
    backend: str = "bitwise",
    max_lr_pixels: int = MAX_LR_PIXELS,
    fit: bool = True,
    progress: Progress | None = None,
) -> Comparison:
    """Run ``methods`` (public model names, in the given order) on an HxWx3 uint8 image, or an HxWx4
    one with transparency: the models and scores see its colour planes (as stored, not flattened),
    and the alpha plane is upscaled with bicubic for the output files (Real-ESRGAN's way).

    A model without usable weights is left out with a "not run: ..." notice saying why; when none
    of the chosen models can run, that is an error.
    """
    methods = list(dict.fromkeys(methods))
    if not methods:
        raise ValueError("choose at least one method")
    unknown = [m for m in methods if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {list(MODELS)}")
    hr, lr, notices = prepare_input(image, mode, scale, max_lr_pixels, fit)
    alpha = hr_alpha = None
    if lr.shape[2] == 4:
        lr, lr_alpha = lr[:, :, :3], lr[:, :, 3]
        alpha = imresize(lr_alpha, float(scale))
        if hr is not None:
            hr, hr_alpha = hr[:, :, :3], hr[:, :, 3]
        notices.append("the image has transparency: the output files keep it (alpha upscaled with bicubic); "
                       "the models and scores use the colour planes")
    unavailable = {}
    for name in methods:
        model, why = shared_model(name, scale)
        if model is None:
            unavailable[name] = why
    if len(unavailable) == len(methods):
        raise ValueError("; ".join(unavailable.values()))
    notices += [f"not run: {why}" for why in unavailable.values()]
    results = []
    for i, name in enumerate(m for m in methods if m not in unavailable):
        if progress is not None:
            progress(i / len(methods), f"running {MODELS[name].title}")
        result, method_notices = run_method(name, lr, scale, backend)
        if hr is not None:
            result.psnr = psnr_y(result.image, hr, scale)
            result.ssim = ssim_y(result.image, hr, scale)
        results.append(result)
        notices.extend(method_notices)
    if progress is not None:
        progress(1.0, "done")
    return Comparison(mode, scale, lr, hr, results, list(dict.fromkeys(notices)), alpha, hr_alpha)


# ---------------------------------------------------------------------------------------------
# Presentation helpers (still plain data)
# ---------------------------------------------------------------------------------------------


def caption(result: MethodResult) -> str:
    """``method · PSNR/SSIM · runtime · backend``."""
    score = f"{result.psnr:.2f} dB / {result.ssim:.4f}" if result.psnr is not None else "not scored"
    return f"{result.title} · {score} · {result.runtime_s:.2f} s · {result.backend}"


METRIC_HEADERS = ["method", "PSNR (dB, Y)", "SSIM (Y)", "runtime (s)", "backend", "size (K params, BBCU)"]


def metrics_table(comparison: Comparison) -> list[list]:
    """Rows of METRIC_HEADERS; PSNR/SSIM are None in LR mode, an output identical to HR scores "inf"."""
    return [
        [
            r.title,
            None if r.psnr is None else (round(r.psnr, 2) if math.isfinite(r.psnr) else "inf"),
            None if r.ssim is None else round(r.ssim, 4),
            round(r.runtime_s, 3),
            r.backend,
            None if r.params_K is None else round(r.params_K, 1),
        ]
        for r in comparison.results
    ]


@dataclass(frozen=True)
class Region:
    """A square region in output (HR) pixels; x, y and size are multiples of the scale."""

    x: int
    y: int
    size: int


def snap_region(x: float, y: float, size: float, height: int, width: int, scale: int) -> Region:
    """Clamp a requested region into a height x width output and align it to the LR pixel grid."""
    limit = min(height, width) - min(height, width) % scale
    size = int(min(max(int(size), scale), limit)) // scale * scale
    x = int(min(max(int(x), 0), width - size)) // scale * scale
    y = int(min(max(int(y), 0), height - size)) // scale * scale
    return Region(x, y, size)


def default_region(comparison: Comparison, size: int = 48) -> Region:
    """A centred region of ``size`` output pixels."""
    h, w = output_shape(comparison)
    return snap_region((w - size) // 2, (h - size) // 2, size, h, w, comparison.scale)


def output_shape(comparison: Comparison) -> tuple[int, int]:
    return comparison.lr.shape[0] * comparison.scale, comparison.lr.shape[1] * comparison.scale


def crops(comparison: Comparison, region: Region, display: int = 192) -> list[tuple[np.ndarray, str]]:
    """The same region from the HR image (HR mode), the LR input and every output, enlarged alike.

    Every crop is shown at ``zoom * region.size`` pixels, ``zoom = max(1, display // size)``; the
    LR crop covers the same area (``size / scale`` LR pixels), enlarged ``zoom * scale`` times.
    """
    s = comparison.scale
    zoom = max(1, display // region.size)
    x, y, n = region.x, region.y, region.size
    label = f"x={x} y={y} size={n}"
    out = []
    if comparison.hr is not None:
        out.append((enlarge(comparison.hr[y : y + n, x : x + n], zoom), f"HR · {label}"))
    lr_crop = comparison.lr[y // s : (y + n) // s, x // s : (x + n) // s]
    out.append((enlarge(lr_crop, zoom * s), f"LR input · x={x // s} y={y // s} size={n // s}"))
    for r in comparison.results:
        out.append((enlarge(r.image[y : y + n, x : x + n], zoom), f"{r.title} · {label}"))
    return out


def outline(img: np.ndarray, region: Region, color: tuple[int, int, int] = (255, 0, 64)) -> np.ndarray:
    """A copy of ``img`` with the region's border drawn (2 pixels, inside the region)."""
    out = img.copy()
    x0, y0, x1, y1 = region.x, region.y, region.x + region.size, region.y + region.size
    t = min(2, region.size)
    for sl in (np.s_[y0 : y0 + t, x0:x1], np.s_[y1 - t : y1, x0:x1], np.s_[y0:y1, x0 : x0 + t], np.s_[y0:y1, x1 - t : x1]):
        out[sl] = color
    return out


def named_images(comparison: Comparison, with_alpha: bool = False) -> dict[str, np.ndarray]:
    """Every full-size image of a run by label (HR first in HR mode), e.g. for a before/after slider;
    RGBA where the input had transparency and ``with_alpha`` (for the files)."""
    def attach(rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
        return rgb if alpha is None or not with_alpha else np.dstack([rgb, alpha])

    images = {HR_LABEL: attach(comparison.hr, comparison.hr_alpha)} if comparison.hr is not None else {}
    images.update({r.title: attach(r.image, comparison.alpha) for r in comparison.results})
    return images


def warm_up(scale: int = 4, backend: str = "bitwise") -> list[str]:
    """Build every model at ``scale``, pack the binarized ones for the bitwise engine and run each
    once on a tiny input (which compiles, or loads from numba's cache, every kernel they use), so
    that no request pays for a first call."""
    notices: list[str] = []
    x = torch.rand(1, 3, 16, 16)
    for name, spec in MODELS.items():
        model, weights_notice = shared_model(name, scale)
        if model is None:
            notices.append(weights_notice)
            continue
        forward, _, backend_notice = select_runner(model, backend)
        with torch.inference_mode():
            forward(x)
        notices += [weights_notice, backend_notice]
    return [n for n in dict.fromkeys(notices) if n]
