"""frb.png.PngStream: band-by-band PNG files that standard decoders read back exactly."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from frb.png import PngStream

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("channels, bit_depth", [(1, 8), (2, 8), (3, 8), (4, 8), (1, 16), (3, 16), (4, 16)])
def test_round_trip_in_bands(tmp_path, channels, bit_depth):
    dtype = np.uint16 if bit_depth == 16 else np.uint8
    image = RNG.integers(0, np.iinfo(dtype).max + 1, (37, 23, channels)).astype(dtype)
    path = tmp_path / "out.png"
    with PngStream(path, 23, 37, channels=channels, bit_depth=bit_depth) as png:
        for band in np.array_split(image, [1, 10, 11, 30]):  # includes a one-row band
            png.write(band)
    if channels == 2:  # gray + alpha: PIL's "LA"
        decoded = np.asarray(Image.open(path))
    else:  # cv2 reads 16-bit colour, PIL does not
        decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if channels in (3, 4):
            decoded = decoded[..., [2, 1, 0, 3][:channels]]
    assert decoded.dtype == dtype
    assert np.array_equal(decoded.reshape(image.shape), image)


def test_smooth_images_compress(tmp_path):
    ramp = np.broadcast_to(np.arange(256, dtype=np.uint8)[:, None, None], (256, 256, 3))
    with PngStream(tmp_path / "ramp.png", 256, 256) as png:
        png.write(np.ascontiguousarray(ramp))
    assert (tmp_path / "ramp.png").stat().st_size < ramp.nbytes / 50


def test_icc_profile_and_exif_are_carried(tmp_path):
    icc = b"\x00\x00\x02\x0cnot a real ICC profile, carried byte for byte" * 4
    exif = Image.Exif()
    exif[0x010F] = "frb-sr test camera"  # Make
    with PngStream(tmp_path / "meta.png", 4, 2, icc_profile=icc, exif=exif.tobytes()) as png:
        png.write(np.zeros((2, 4, 3), np.uint8))
    with Image.open(tmp_path / "meta.png") as img:
        assert img.info["icc_profile"] == icc
        assert img.getexif()[0x010F] == "frb-sr test camera"
    data = (tmp_path / "meta.png").read_bytes()
    assert data[data.index(b"eXIf") + 4 :][:2] in (b"II", b"MM")  # TIFF data, as the PNG spec wants


def test_missing_rows_or_an_error_leave_no_file(tmp_path):
    path = tmp_path / "out.png"
    png = PngStream(path, 4, 3)
    png.write(np.zeros((2, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="only 2 of 3 rows"):
        png.close()
    png.abort()
    with pytest.raises(RuntimeError), PngStream(path, 4, 3) as png:
        png.write(np.zeros((1, 4, 3), np.uint8))
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "rows, message",
    [
        (np.zeros((1, 5, 3), np.uint8), r"expected rows of shape \(n, 4, 3\)"),
        (np.zeros((1, 4, 3), np.uint16), "expected 8-bit rows"),
        (np.zeros((4, 4, 3), np.uint8), "4 rows for an image of height 3"),
    ],
)
def test_bad_rows_are_refused(tmp_path, rows, message):
    with pytest.raises(ValueError, match=message), PngStream(tmp_path / "out.png", 4, 3) as png:
        png.write(rows)
    assert list(tmp_path.iterdir()) == []


def test_bad_headers_are_refused(tmp_path):
    for kwargs, message in [({"channels": 5}, "channels must be one of"), ({"bit_depth": 4}, "bit_depth must be 8 or 16")]:
        with pytest.raises(ValueError, match=message):
            PngStream(tmp_path / "x.png", 4, 4, **kwargs)
    assert list(tmp_path.iterdir()) == []
