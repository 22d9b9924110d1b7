"""Super-resolution metrics on the luma (Y) channel, as reported in the SR literature.

Conventions (those of the MATLAB evaluation scripts and BasicSR): RGB -> Y with the BT.601
"studio swing" coefficients, ``crop_border`` pixels (usually the scale) removed on every side,
PSNR with a peak of 255 and SSIM with an 11x11 Gaussian window (sigma 1.5).
"""
from __future__ import annotations

import math

import numpy as np
from skimage.metrics import structural_similarity


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB image with values in 0..255 (uint8 or float), as float64.

    ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` (MATLAB ``rgb2ycbcr``, not rounded),
    so white -> 235 and black -> 16.  A 2-D (gray) input is returned as float64 unchanged.
    """
    if img.ndim == 2:
        return img.astype(np.float64)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB or HxW gray image, got shape {img.shape}")
    rgb = img.astype(np.float64)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def _y_pair(sr: np.ndarray, hr: np.ndarray, crop_border: int) -> tuple[np.ndarray, np.ndarray]:
    """Y channels of ``sr`` and ``hr`` with ``crop_border`` pixels removed on each side."""
    if sr.shape != hr.shape:
        raise ValueError(f"images differ in shape: sr {sr.shape} vs hr {hr.shape}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    y_sr, y_hr = rgb_to_y(sr), rgb_to_y(hr)
    if crop_border:
        c = crop_border
        if y_sr.shape[0] <= 2 * c or y_sr.shape[1] <= 2 * c:
            raise ValueError(f"image of shape {sr.shape} is too small for crop_border={c}")
        y_sr, y_hr = y_sr[c:-c, c:-c], y_hr[c:-c, c:-c]
    return y_sr, y_hr


def psnr_y(sr: np.ndarray, hr: np.ndarray, crop_border: int) -> float:
    """PSNR on Y: ``10 log10(255^2 / MSE)`` of the (unrounded) float Y after border cropping.

    Inputs are RGB images of equal shape (uint8, or floats in 0..255); returns ``inf`` when
    the cropped Y channels are identical.
    """
    y_sr, y_hr = _y_pair(sr, hr, crop_border)
    mse = float(np.mean((y_sr - y_hr) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(255.0**2 / mse)


def ssim_y(sr: np.ndarray, hr: np.ndarray, crop_border: int) -> float:
    """SSIM on Y after border cropping (scikit-image, matching MATLAB ``ssim`` / BasicSR).

    ``SSIM = mean[(2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))]``
    with Gaussian-weighted local statistics (sigma 1.5, 11x11 window, population covariance),
    ``C1 = (0.01 * 255)^2``, ``C2 = (0.03 * 255)^2``, averaged over the valid window positions.
    """
    y_sr, y_hr = _y_pair(sr, hr, crop_border)
    return float(
        structural_similarity(
            y_sr, y_hr, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255.0
        )
    )


def evaluate_pair(sr: np.ndarray, hr: np.ndarray, scale: int) -> dict[str, float]:
    """``{"psnr": psnr_y(sr, hr, scale), "ssim": ssim_y(sr, hr, scale)}`` (border crop = scale)."""
    return {"psnr": psnr_y(sr, hr, scale), "ssim": ssim_y(sr, hr, scale)}
