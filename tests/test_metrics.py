"""Tests for frb.metrics: Y conversion, PSNR and SSIM on Y with border cropping."""
from __future__ import annotations

import math

import numpy as np
import pytest

from frb.metrics import evaluate_pair, psnr_y, rgb_to_y, ssim_y

RNG = np.random.default_rng(1)


def _image(shape: tuple[int, int] = (48, 40)) -> np.ndarray:
    return RNG.integers(20, 200, (*shape, 3), dtype=np.uint8)


def test_rgb_to_y_reference_values() -> None:
    white = np.full((2, 2, 3), 255, np.uint8)
    black = np.zeros((2, 2, 3), np.uint8)
    np.testing.assert_allclose(rgb_to_y(white), 235.0, atol=1e-12)
    np.testing.assert_allclose(rgb_to_y(black), 16.0, atol=1e-12)
    np.testing.assert_allclose(rgb_to_y(np.array([[[255.0, 0.0, 0.0]]])), 16 + 65.481, atol=1e-12)
    gray = np.arange(6, dtype=np.uint8).reshape(2, 3)
    y = rgb_to_y(gray)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, gray)
    assert rgb_to_y(white).dtype == np.float64


def test_psnr_of_constant_offset() -> None:
    hr = _image()
    sr = hr + np.uint8(10)  # every channel +10 -> Y offset d = 10 * (65.481 + 128.553 + 24.966) / 255
    d = 10 * 219.0 / 255
    assert psnr_y(sr, hr, 0) == pytest.approx(20 * math.log10(255 / d), abs=1e-9)
    assert psnr_y(sr, hr, 4) == pytest.approx(20 * math.log10(255 / d), abs=1e-9)


def test_psnr_identical_is_inf_and_border_is_cropped() -> None:
    hr = _image()
    assert psnr_y(hr, hr, 2) == math.inf
    sr = hr.copy()
    sr[:3] = 0
    sr[:, -3:] = 255
    assert psnr_y(sr, hr, 3) == math.inf
    assert math.isfinite(psnr_y(sr, hr, 2))
    assert ssim_y(sr, hr, 3) == pytest.approx(1.0)


def test_mismatched_shapes_raise() -> None:
    with pytest.raises(ValueError, match=r"\(48, 40, 3\).*\(40, 48, 3\)"):
        psnr_y(_image((48, 40)), _image((40, 48)), 2)
    with pytest.raises(ValueError, match="differ in shape"):
        ssim_y(_image((48, 40)), _image((48, 41)), 2)


def test_ssim_identical_and_decreasing_with_noise() -> None:
    hr = _image((64, 64))
    assert ssim_y(hr, hr, 4) == pytest.approx(1.0, abs=1e-12)
    values = []
    for sigma in (2.0, 8.0, 30.0):
        noisy = np.clip(hr + RNG.normal(0, sigma, hr.shape), 0, 255).round().astype(np.uint8)
        values.append(ssim_y(noisy, hr, 4))
    assert 1.0 > values[0] > values[1] > values[2] > 0.0


def test_evaluate_pair_uses_scale_as_crop() -> None:
    hr, sr = _image(), _image()
    res = evaluate_pair(sr, hr, 3)
    assert set(res) == {"psnr", "ssim"}
    assert res["psnr"] == psnr_y(sr, hr, 3) and res["ssim"] == ssim_y(sr, hr, 3)
