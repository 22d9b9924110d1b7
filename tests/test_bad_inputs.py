"""A corpus of awkward and broken image files, made here, through the command line and the app's API.

Every file is either processed (with the right size, and a notice where something was changed) or
refused with a message that names the problem; nothing is lost (inputs are never modified) and the
server keeps serving. The 12 MP case of the large-image work is not part of this corpus.
"""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from frb.__main__ import main

pytestmark = pytest.mark.engine  # run again with the kernels compiled for AVX2 (.ci/run)

W, H = 40, 48  # every readable image below: 40 wide, 48 high


def smooth(h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h)], axis=-1)
    return np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


#: name -> the message it must be refused with (None: it must be processed)
REFUSED = {
    "zero.png": "cannot read image",
    "text.png": "cannot read image",
    "truncated.png": "truncated",
    "bomb.png": "too large",
}
PROCESSED = ["alpha.png", "palette.png", "gray16.png", "cmyk.jpg", "rotated.jpg", "anim.gif", "photo.webp", "photo.tiff"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("corpus")
    (d / "zero.png").write_bytes(b"")
    (d / "text.png").write_text("this is not an image\n")
    buf = io.BytesIO()
    Image.fromarray(smooth()).save(buf, "PNG")
    (d / "truncated.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    header = struct.pack(">IIBBBBB", 40000, 40000, 1, 0, 0, 0, 0)  # 1.6 gigapixels of 1-bit gray, 128 bytes
    idat = zlib.compress(b"\x00" * 5001 * 10)
    (d / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat)
                                 + _png_chunk(b"IEND", b""))
    rgba = np.dstack([smooth(), np.full((H, W), 255, np.uint8)])
    rgba[:8, :8, 3] = 0
    Image.fromarray(rgba, "RGBA").save(d / "alpha.png")
    Image.fromarray(smooth()).convert("P", palette=Image.Palette.ADAPTIVE).save(d / "palette.png")
    Image.fromarray(smooth()[..., 0].astype(np.uint16) * 257).save(d / "gray16.png")
    Image.fromarray(smooth()).convert("CMYK").save(d / "cmyk.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 48x40 the other way round; shown rotated by 90 degrees
    Image.fromarray(smooth(W, H)).save(d / "rotated.jpg", exif=exif, quality=95)
    frames = [Image.fromarray(smooth(seed=s)) for s in range(3)]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:])
    Image.fromarray(smooth()).save(d / "photo.webp", quality=95)
    Image.fromarray(smooth()).save(d / "photo.tiff")
    return d


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_the_command_line_processes_what_it_can_and_names_what_it_cannot(corpus, tmp_path, capsys):
    before = snapshot(corpus)
    out = tmp_path / "out"
    assert main(["upscale", "-i", str(corpus), "-o", str(out), "-m", "bicubic", "-s", "2"]) == 1
    printed = capsys.readouterr()
    assert f"{len(PROCESSED)} of {len(PROCESSED) + len(REFUSED)} images written" in printed.out
    for name, message in REFUSED.items():
        assert any(name in line and message in line for line in printed.out.splitlines()), name
    written = {p.name: Image.open(p) for p in out.iterdir()}
    assert len(written) == len(PROCESSED)
    for name, img in written.items():
        mode = "RGBA" if name.startswith("alpha") else "RGB"  # transparency kept (frb.picture)
        assert img.mode == mode and img.size == (2 * W, 2 * H), name  # EXIF rotation applied
    assert "anim.gif: animated image: only the first of its 3 frames is used" in printed.err
    assert "photo_webp_bicubic_x2.png" in written and "photo_tiff_bicubic_x2.png" in written
    assert snapshot(corpus) == before  # nothing lost


gradio_client = pytest.importorskip("gradio_client")


def compare(url: str, path: Path):
    from frb import compare as cmp

    client = gradio_client.Client(url, verbose=False)
    return client.predict(gradio_client.handle_file(str(path)), cmp.MODE_HR, 2, ["bicubic"], [], [], "torch", True,
                          api_name="/compare")


@pytest.mark.parametrize("name", list(REFUSED))
def test_the_app_refuses_a_broken_file_with_a_message_and_no_server_path(url, corpus, name):
    with pytest.raises(gradio_client.exceptions.AppError) as info:
        compare(url, corpus / name)
    message = str(info.value)
    assert REFUSED[name] in message and "/tmp/gradio" not in message and "gradio" not in message.lower()


@pytest.mark.parametrize("name", PROCESSED)
def test_the_app_processes_an_awkward_file_and_says_what_it_changed(url, corpus, name):
    out = compare(url, corpus / name)
    gallery, status = out[0], out[11]
    channels = 4 if name == "alpha.png" else 3  # transparency comes back
    assert np.asarray(Image.open(gallery[0]["image"])).shape == (H, W, channels)  # HR mode: the HR image's size
    expected = {"alpha.png": "the output files keep it", "anim.gif": "only the first of its 3 frames",
                "gray16.png": "16-bit image: shown and processed at 8 bits"}
    if name in expected:
        assert expected[name] in status
    else:
        assert status == "ok", status
