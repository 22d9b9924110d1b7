"""Images kept whole by ``frb upscale`` (``frb.picture``): transparency, 16 bits, ICC and EXIF, other
output formats, sub-folders. Bicubic x2 keeps every check exact and fast."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from frb.__main__ import main
from frb.imaging import imresize_torch
from frb.picture import ORIENTATION, load_picture

pytestmark = pytest.mark.engine  # run again with the kernels compiled for AVX2 (.ci/run)

H, W = 24, 32
RNG = np.random.default_rng(3)


def smooth(h: int = H, w: int = W, top: int = 255) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    planes = [(np.sin(x / (3 + c) + y / 5) + 1) / 2 for c in range(3)]
    return np.floor(np.dstack(planes) * top + 0.5).astype(np.uint16 if top > 255 else np.uint8)


def bicubic_levels(planes: np.ndarray, top: int) -> np.ndarray:
    """What the CLI's bicubic x2 gives for ``planes`` (``HxWxC``), at the same depth."""
    x = torch.from_numpy(planes.astype(np.float32) / top).permute(2, 0, 1)[None]
    y = torch.floor(imresize_torch(x, 2.0).clamp(0, 1) * top + 0.5)[0].permute(1, 2, 0).numpy()
    return y.astype(planes.dtype)


def upscale(src: Path, out: Path, *flags: str) -> int:
    return main(["upscale", "-i", str(src), "-o", str(out), "-m", "bicubic", "-s", "2", "--suffix", "", *flags])


def test_transparency_is_upscaled_separately_and_kept(tmp_path):
    rgba = np.dstack([smooth(), np.full((H, W), 255, np.uint8)])
    rgba[:10, :12, 3] = 0
    rgba[10:, 12:20, 3] = 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert upscale(tmp_path / "a.png", tmp_path / "out") == 0
    with Image.open(tmp_path / "out" / "a.png") as img:
        assert img.mode == "RGBA"
        assert np.array_equal(np.asarray(img), bicubic_levels(rgba, 255))


def test_opaque_alpha_is_dropped(tmp_path):
    Image.fromarray(np.dstack([smooth(), np.full((H, W), 255, np.uint8)]), "RGBA").save(tmp_path / "a.png")
    picture = load_picture(tmp_path / "a.png", None)
    assert picture.alpha is None and picture.rgb.shape == (H, W, 3)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16_bit_in_16_bit_out(tmp_path, channels):
    image = smooth(top=65535)
    if channels == 1:
        image = image[:, :, 0]
    elif channels == 4:
        image = np.dstack([image, np.full((H, W), 65535, np.uint16)])
        image[:5, :5, 3] = 1000
    bgr = image if channels == 1 else image[:, :, [2, 1, 0, 3][:channels]]
    cv2.imwrite(str(tmp_path / "deep.png"), bgr)
    assert upscale(tmp_path / "deep.png", tmp_path / "out") == 0
    out = cv2.imread(str(tmp_path / "out" / "deep.png"), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and out.shape == (2 * H, 2 * W, 3 if channels == 1 else channels)
    rgb = out[:, :, [2, 1, 0, 3][: out.shape[2]]]
    expected_in = np.repeat(image[:, :, None], 3, axis=2) if channels == 1 else image
    assert np.abs(rgb.astype(int) - bicubic_levels(expected_in, 65535).astype(int)).max() <= 1
    assert len(np.unique(rgb[:, :, 0])) > 256  # really more than 8 bits of levels


def test_icc_profile_and_exif_are_carried_and_orientation_reset(tmp_path):
    icc = b"\x00\x00\x01\x00frb-sr test profile, carried byte for byte" * 3
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # stored W x H, shown rotated by 90 degrees
    exif[0x010F] = "frb-sr camera"  # Make
    Image.fromarray(smooth()).save(tmp_path / "r.jpg", exif=exif, icc_profile=icc, quality=95)
    for ext in ("png", "jpg", "webp"):
        assert upscale(tmp_path / "r.jpg", tmp_path / ext, "--ext", ext) == 0
        with Image.open(tmp_path / ext / f"r.{ext}") as img:
            assert img.size == (2 * H, 2 * W), ext  # rotated upright, once
            assert img.info.get("icc_profile") == icc, ext
            assert img.getexif()[0x010F] == "frb-sr camera" and img.getexif().get(ORIENTATION, 1) == 1, ext


def test_jpeg_flattens_transparency_and_says_so(tmp_path, capsys):
    rgba = np.dstack([smooth(), np.full((H, W), 255, np.uint8)])
    rgba[:8, :8, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert upscale(tmp_path / "a.png", tmp_path / "jpg", "--ext", "jpg", "--quality", "90") == 0
    assert "JPEG has no transparency: it was flattened onto white" in capsys.readouterr().err
    with Image.open(tmp_path / "jpg" / "a.jpg") as img:
        assert img.mode == "RGB" and np.asarray(img)[:6, :6].min() > 240  # white where it was transparent
    assert upscale(tmp_path / "a.png", tmp_path / "webp", "--ext", "webp") == 0
    with Image.open(tmp_path / "webp" / "a.webp") as img:
        assert img.mode == "RGBA"


def test_quality_sets_the_size(tmp_path):
    Image.fromarray(RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(tmp_path / "n.png")
    sizes = {}
    for q in ("30", "95"):
        assert upscale(tmp_path / "n.png", tmp_path / q, "--ext", "jpg", "--quality", q) == 0
        sizes[q] = (tmp_path / q / "n.jpg").stat().st_size
    assert sizes["30"] < sizes["95"]


def test_an_output_too_large_for_the_format_fails_that_image_only(tmp_path, capsys):
    Image.fromarray(smooth(4, 8200)).save(tmp_path / "wide.png")
    Image.fromarray(smooth()).save(tmp_path / "small.png")
    assert upscale(tmp_path, tmp_path / "out", "--ext", "webp") == 1
    assert "above WEBP's limit of 16383 pixels per side; use --ext png" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["small.webp"]


def test_recursive_mirrors_sub_folders(tmp_path, capsys):
    src = tmp_path / "in"
    (src / "a" / "b").mkdir(parents=True)
    for path in (src / "top.png", src / "a" / "x.png", src / "a" / "b" / "x.png", src / "a" / "b" / "x.jpg"):
        Image.fromarray(smooth()).save(path)
    assert upscale(src, tmp_path / "flat") == 0
    assert [p.relative_to(tmp_path / "flat").as_posix() for p in sorted((tmp_path / "flat").rglob("*.png"))] == ["top.png"]
    assert upscale(src, tmp_path / "tree", "--recursive") == 0
    written = sorted(p.relative_to(tmp_path / "tree").as_posix() for p in (tmp_path / "tree").rglob("*.png"))
    assert written == ["a/b/x_jpg.png", "a/b/x_png.png", "a/x.png", "top.png"]  # the clash is per folder


def test_a_folder_with_images_only_below_it_names_recursive(tmp_path, capsys):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    Image.fromarray(smooth()).save(tmp_path / "in" / "sub" / "x.png")
    assert upscale(tmp_path / "in", tmp_path / "out") == 2
    assert "add --recursive" in capsys.readouterr().err
