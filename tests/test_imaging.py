"""Tests for frb.imaging: loading, MATLAB-compatible bicubic resize, tensor glue, Set5 bicubic baseline."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from frb.imaging import (
    ImageDecodeError,
    ImageError,
    ImageTooLargeError,
    imresize,
    imresize_torch,
    load_image,
    make_lr,
    modcrop,
    output_size,
    to_tensor,
    to_uint8,
)
from frb.metrics import evaluate_pair

RNG = np.random.default_rng(0)


# ------------------------------------------------------------------------------------------
# imresize
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [0.25, 1 / 3, 0.5, 0.7, 1.5, 2.0, 3.0, 4.0])
def test_constant_image_stays_constant(scale: float) -> None:
    img = np.full((23, 31, 3), 77, np.uint8)
    out = imresize(img, scale)
    assert out.dtype == np.uint8
    assert out.shape == (output_size(23, scale), output_size(31, scale), 3)
    assert np.all(out == 77)
    out_f = imresize(np.full((23, 31), 0.25, np.float32), scale)
    assert out_f.dtype == np.float32
    np.testing.assert_allclose(out_f, 0.25, atol=1e-6)


def test_output_sizes() -> None:
    assert imresize(np.zeros((37, 53, 3), np.uint8), 0.5).shape == (19, 27, 3)
    assert imresize(np.zeros((37, 53), np.uint8), 2).shape == (74, 106)
    assert imresize(np.zeros((255, 120, 3), np.uint8), 1 / 3).shape == (85, 40, 3)  # not 86
    assert imresize_torch(torch.zeros(2, 3, 10, 7), 1.5).shape == (2, 3, 15, 11)
    assert imresize_torch(torch.zeros(3, 10, 7), 0.25).shape == (3, 3, 2)


def test_numpy_and_torch_paths_agree() -> None:
    img = RNG.uniform(0, 255, (29, 41, 3))
    t64 = torch.from_numpy(img.transpose(2, 0, 1).copy())[None]
    for scale in (0.25, 0.5, 2.0, 3.0):
        ref = imresize(img, scale)
        out64 = imresize_torch(t64, scale)[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(out64, ref, rtol=0, atol=1e-9)
        out32 = imresize_torch(t64.float() / 255, scale)[0].permute(1, 2, 0).numpy() * 255
        np.testing.assert_allclose(out32, ref, rtol=0, atol=2e-3)
        ref_u8 = imresize(img.astype(np.uint8), scale)
        expect_u8 = np.floor(np.clip(imresize(img.astype(np.uint8).astype(np.float64), scale), 0, 255) + 0.5)
        np.testing.assert_array_equal(ref_u8, expect_u8.astype(np.uint8))


def test_uint8_output_is_clipped() -> None:
    img = np.zeros((8, 8), np.uint8)
    img[:, 4:] = 255  # a hard edge: bicubic over/undershoots
    raw = imresize(img.astype(np.float64), 2)
    assert raw.min() < 0 and raw.max() > 255
    out = imresize(img, 2)
    assert out.min() == 0 and out.max() == 255


def test_upsampled_ramp_is_reproduced_away_from_borders() -> None:
    # Keys' cubic reproduces linear functions. For x2, 1-based output x maps to input
    # u = x/2 + 0.5*(1 - 1/2) = x/2 + 0.25, so with ramp value (j - 1) at 1-based input j
    # the 0-based output k = x - 1 holds u - 1 = k/2 - 0.25.
    ramp = np.tile(np.arange(20, dtype=np.float64), (5, 1))
    out = imresize(ramp, 2)
    k = np.arange(out.shape[1])
    assert out.shape == (10, 40)
    np.testing.assert_allclose(out[:, 4:-4], np.broadcast_to(k / 2 - 0.25, out.shape)[:, 4:-4], atol=1e-12)


def test_downscale_4x4_by_hand() -> None:
    # scale 1/2, antialiased kernel h(t) = 0.5 * k(t/2), width 8, 10 taps.
    # Output 1 (1-based): u = 1*2 + 0.5*(1-2) = 1.5, taps j = floor(1.5-4) + 0..9 = -3..6,
    # distances 1.5 - j = ±0.5, ±1.5, ±2.5, ±3.5 (±4.5 -> 0); k(0.25) = 111/128,
    # k(0.75) = 29/128, k(1.25) = -9/128, k(1.75) = -3/128, summing to 1 per side, so the
    # normalised weights are those values / 2 for j = 1, 2, 3, 4 and 0, -1, -2, -3.
    # Mirroring (n=4, 1-based): j = 0 -> 1, -1 -> 2, -2 -> 3, 5 -> 4, so per input pixel:
    # in1: (111+29)/256, in2: (111-9)/256, in3: (29-3)/256, in4: (-9-3)/256
    # = [140, 102, 26, -12] / 256; output 2 uses the mirror image.
    row = np.array([140.0, 102.0, 26.0, -12.0]) / 256
    m = np.stack([row, row[::-1]])
    a = np.arange(16, dtype=np.float64).reshape(4, 4) ** 1.5
    np.testing.assert_allclose(imresize(a, 0.5), m @ a @ m.T, atol=1e-12)


def test_imresize_torch_runs_on_input_device_and_dtype() -> None:
    x = torch.rand(1, 3, 9, 9, dtype=torch.float64)
    y = imresize_torch(x, 2)
    assert y.dtype == torch.float64 and y.device == x.device
    with pytest.raises(TypeError):
        imresize_torch(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), 2)


def test_modcrop_and_make_lr() -> None:
    hr = RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    assert modcrop(hr, 4).shape == (36, 52, 3)
    hr_c, lr = make_lr(hr, 4)
    assert hr_c.shape == (36, 52, 3) and lr.shape == (9, 13, 3)
    assert hr_c.dtype == np.uint8 and lr.dtype == np.uint8
    np.testing.assert_array_equal(hr_c, hr[:36, :52])


def test_tensor_roundtrip() -> None:
    img = RNG.integers(0, 256, (7, 5, 3), dtype=np.uint8)
    t = to_tensor(img)
    assert t.shape == (1, 3, 7, 5) and t.dtype == torch.float32
    assert float(t.min()) >= 0 and float(t.max()) <= 1
    np.testing.assert_array_equal(to_uint8(t), img)
    np.testing.assert_array_equal(to_uint8(t[0]), img)
    edge = torch.tensor([-0.5, 0.0, 0.49 / 255, 0.5 / 255, 1.0, 7.0]).reshape(1, 1, 6).expand(3, 1, 6)
    np.testing.assert_array_equal(to_uint8(edge)[0, :, 0], [0, 0, 0, 1, 255, 255])


# ------------------------------------------------------------------------------------------
# Set5 bicubic baseline (the SR literature's "Bicubic" row)
# ------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("scale", "psnr_ref"), [(2, 33.66), (4, 28.42)])
def test_set5_bicubic_baseline(set5_dir: Path, scale: int, psnr_ref: float, record_property) -> None:
    files = sorted(p for p in set5_dir.iterdir() if p.suffix.lower() in (".png", ".bmp", ".jpg"))
    assert len(files) == 5
    results = []
    for f in files:
        hr_c, lr = make_lr(load_image(f), scale)
        results.append(evaluate_pair(imresize(lr, scale), hr_c, scale))
    psnr = float(np.mean([r["psnr"] for r in results]))
    ssim = float(np.mean([r["ssim"] for r in results]))
    print(f"Set5 bicubic x{scale}: PSNR {psnr:.4f} dB, SSIM {ssim:.4f}")
    record_property(f"set5_bicubic_x{scale}", {"psnr": psnr, "ssim": ssim})
    assert abs(psnr - psnr_ref) <= 0.05


# ------------------------------------------------------------------------------------------
# load_image
# ------------------------------------------------------------------------------------------


def _encode(img: Image.Image, fmt: str = "PNG", **kw: object) -> bytes:
    """Encode `img` in memory in format `fmt`."""
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


_SMALL_PNG = _encode(Image.new("RGB", (300, 200)))


def _check_rgb(out: np.ndarray, shape: tuple[int, int]) -> None:
    assert out.dtype == np.uint8 and out.shape == (*shape, 3)


def test_load_gray_l_and_sources(tmp_path: Path) -> None:
    a = RNG.integers(0, 256, (6, 9), dtype=np.uint8)
    img = Image.fromarray(a, "L")
    path = tmp_path / "g.png"
    img.save(path)
    data = path.read_bytes()
    for src in (path, str(path), data, io.BytesIO(data), img, a):
        out = load_image(src)
        _check_rgb(out, (6, 9))
        for c in range(3):
            np.testing.assert_array_equal(out[..., c], a)


def test_load_alpha_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = [[0], [255], [128], [51]]  # per-row alpha
    (tmp_path / "a.png").write_bytes(_encode(Image.fromarray(rgba, "RGBA")))
    out = load_image(tmp_path / "a.png")
    _check_rgb(out, (4, 4))
    np.testing.assert_array_equal(out[0, 0], [255, 255, 255])
    np.testing.assert_array_equal(out[1, 0], [200, 0, 0])
    a = 128 / 255
    np.testing.assert_array_equal(out[2, 0], np.floor(np.array([200, 0, 0]) * a + 255 * (1 - a) + 0.5))
    la = np.stack([np.full((3, 3), 100, np.uint8), np.full((3, 3), 0, np.uint8)], axis=-1)
    out = load_image(_encode(Image.fromarray(la, "LA")))
    assert np.all(out == 255)
    la[..., 1] = 255
    assert np.all(load_image(Image.fromarray(la, "LA")) == 100)
    assert np.all(load_image(rgba[:1]) == 255)  # HxWx4 array, alpha 0


def test_load_palette() -> None:
    rgb = np.zeros((5, 5, 3), np.uint8)
    rgb[:, :, 1] = 180
    rgb[0] = [10, 20, 30]
    p = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    out = load_image(_encode(p))
    np.testing.assert_array_equal(out, rgb)
    p.info["transparency"] = int(np.asarray(p)[0, 0])  # make the first row's colour transparent
    out = load_image(_encode(p))
    assert np.all(out[0] == 255)
    np.testing.assert_array_equal(out[1:], rgb[1:])


def test_load_cmyk() -> None:
    cmyk = Image.new("CMYK", (4, 3), (0, 255, 255, 0))  # pure red
    out = load_image(_encode(cmyk, "TIFF"))
    _check_rgb(out, (3, 4))
    np.testing.assert_array_equal(out[0, 0], [255, 0, 0])
    assert np.all(load_image(_encode(Image.new("CMYK", (2, 2), (0, 0, 0, 255)), "JPEG")) < 8)


def test_load_16bit_scaled_not_clipped(tmp_path: Path) -> None:
    a16 = np.array([[0, 257, 32896, 65535]], np.uint16)  # -> 0, 1, 128, 255
    expect = np.array([[0, 1, 128, 255]], np.uint8)
    img = Image.fromarray(a16)  # mode I;16
    assert img.mode == "I;16"
    path = tmp_path / "d.png"
    img.save(path)
    for src in (path, img, a16, a16.astype(">u2")):
        out = load_image(src)
        _check_rgb(out, (1, 4))
        np.testing.assert_array_equal(out[..., 0], expect)
    big = Image.frombytes("I;16B", (4, 1), a16.astype(">u2").tobytes())
    np.testing.assert_array_equal(load_image(big)[..., 2], expect)
    i32 = Image.fromarray(a16.astype(np.int32), "I")
    np.testing.assert_array_equal(load_image(i32)[..., 1], expect)


def test_load_float_rules() -> None:
    f01 = np.array([[0.0, 0.5, 1.0]], np.float32)
    np.testing.assert_array_equal(load_image(Image.fromarray(f01, "F"))[..., 0], [[0, 128, 255]])
    f255 = np.array([[0.0, 100.4, 255.0, 300.0]], np.float32)
    np.testing.assert_array_equal(load_image(Image.fromarray(f255, "F"))[..., 0], [[0, 100, 255, 255]])
    rgb_f = np.full((2, 2, 3), 0.2, np.float64)
    assert np.all(load_image(rgb_f) == 51)
    assert np.all(load_image(np.ones((2, 2), bool)) == 255)


def test_load_exif_orientation_transposes() -> None:
    stored = np.zeros((20, 40, 3), np.uint8)  # H=20, W=40 as stored
    stored[:10, :10] = [255, 0, 0]  # red block at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation 6: rotate 90 degrees clockwise to display
    data = _encode(Image.fromarray(stored), "JPEG", exif=exif.tobytes(), quality=95)
    out = load_image(data)
    _check_rgb(out, (40, 20))
    assert out[2:8, -8:-2, 0].mean() > 200 and out[2:8, -8:-2, 1].mean() < 60  # now top-right


def test_truncated_png_raises(tmp_path: Path) -> None:
    data = _encode(Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    path = tmp_path / "t.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError, match="cannot read image: file is truncated or not an image"):
        load_image(path)


def test_non_image_inputs_raise(tmp_path: Path) -> None:
    txt = tmp_path / "notes.txt"
    txt.write_text("hello, I am not an image\n")
    with pytest.raises(ImageError, match="not an image"):
        load_image(txt)
    with txt.open("r") as text_mode, pytest.raises(ImageDecodeError, match="binary mode"):
        load_image(text_mode)  # type: ignore[arg-type]
    with pytest.raises(ImageDecodeError, match="unsupported input of type int"):
        load_image(42)  # type: ignore[arg-type]
    with pytest.raises(ImageDecodeError, match="no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageDecodeError, match="shape"):
        load_image(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(ImageDecodeError, match="outside 0..255"):
        load_image(np.full((4, 4), 1000, np.int32))
    assert issubclass(ImageError, ValueError)


def test_too_large_raises_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _encode(Image.new("1", (6000, 4000)))
    with pytest.raises(ImageTooLargeError) as err:
        load_image(data)
    assert str(err.value) == (
        "image is 6000x4000 = 24.0 MP, above the limit of 16.0 MP; downscale it or raise the limit"
    )

    def no_decode(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    with pytest.raises(ImageTooLargeError, match="limit of 0.010 MP"):
        load_image(io.BytesIO(_SMALL_PNG), max_pixels=10_000)
    with pytest.raises(ImageTooLargeError, match="limit"):
        load_image(np.zeros((200, 200, 3), np.uint8), max_pixels=10_000)


def test_decompression_bomb_becomes_image_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageTooLargeError, match="decompression-bomb"):
        load_image(_SMALL_PNG, max_pixels=None)
