"""The file-writing sub-commands: ``upscale``, ``kernels`` and ``figure`` (run in-process on small crops)."""
from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from frb import kernel_view as K
from frb.imaging import enlarge
from frb import figure, upscale
from frb.__main__ import main
from frb.bitwise.runner import make_runner
from frb.imaging import load_image, make_lr
from frb.metrics import psnr_y, ssim_y
from frb.models import create_model

pytestmark = pytest.mark.engine  # run again with the kernels compiled for AVX2 (.ci/run)

CROPS = {"baby": (200, 180, 96, 80), "bird": (90, 100, 64, 64)}  # x, y, w, h


@pytest.fixture
def images(tmp_path: Path, set5_dir: Path) -> Path:
    """A folder with two small Set5 crops (baby 96x80, bird 64x64)."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name, (x, y, w, h) in CROPS.items():
        Image.open(set5_dir / f"{name}.png").convert("RGB").crop((x, y, x + w, y + h)).save(folder / f"{name}.png")
    return folder


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("info", "eval", "bench", "hub", "upscale", "kernels", "figure"):
        assert command in out


# --------------------------------------------------------------------------------------------
# upscale
# --------------------------------------------------------------------------------------------


def test_upscale_folder_writes_scaled_pngs(images, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["upscale", "-i", str(images), "-o", str(out), "-s", "4", "-m", "frbc"]) == 0
    for name, (_, _, w, h) in CROPS.items():
        with Image.open(out / f"{name}_frbc_x4.png") as img:
            assert img.format == "PNG" and img.size == (4 * w, 4 * h)
    assert "2 of 2 images written" in capsys.readouterr().out


def test_upscale_backends_agree_within_one_level(images, tmp_path):
    src = tmp_path / "bird.png"  # 24x24: the fake-quantised torch FRBC takes seconds on larger inputs
    Image.open(images / "bird.png").crop((20, 20, 44, 44)).save(src)
    for backend in ("bitwise", "torch"):
        assert main(["upscale", "-i", str(src), "-o", str(tmp_path / backend), "-s", "4", "-m", "frbc",
                     "--backend", backend, "--suffix", ""]) == 0
    a, b = (load_image(tmp_path / backend / "bird.png").astype(int) for backend in ("bitwise", "torch"))
    assert a.shape == (96, 96, 3) and np.abs(a - b).max() <= 1


def test_upscale_tiles_large_images_only():
    assert upscale.tile_size((600, 600, 3), None) == upscale.DEFAULT_TILE
    assert upscale.tile_size((512, 512, 3), None) == 0
    assert upscale.tile_size((600, 600, 3), 0) == 0 and upscale.tile_size((40, 40, 3), 16) == 16


def test_upscale_tiled_equals_whole_for_bicubic(images, tmp_path):
    for tile in ("0", "16"):
        assert main(["upscale", "-i", str(images / "baby.png"), "-o", str(tmp_path / tile), "-m", "bicubic",
                     "--tile", tile, "--tile-pad", "4"]) == 0
    assert np.array_equal(load_image(tmp_path / "0" / "baby_bicubic_x4.png"), load_image(tmp_path / "16" / "baby_bicubic_x4.png"))


def test_upscale_streams_the_output_band_by_band(images, tmp_path, monkeypatch, capsys):
    """A tiled image is written to the PNG one row of tiles at a time (never whole), as a whole-image
    run gives it up to one rounding level (float sums in another order), with a progress bar
    counting tiles."""
    from frb.png import PngStream

    heights: list[int] = []
    write = PngStream.write
    monkeypatch.setattr(PngStream, "write", lambda self, rows: (heights.append(rows.shape[0]), write(self, rows)))
    out = tmp_path / "tiled"
    assert main(["upscale", "-i", str(images / "baby.png"), "-o", str(out), "-m", "frbc", "-s", "2", "--tile", "32"]) == 0
    assert heights == [64, 64, 32]  # 80 LR rows: tiles of 32, 32, 16
    assert "3/3" not in capsys.readouterr().out  # the per-tile bar goes to stderr
    model = create_model("frbc", 2, pretrained=True)
    whole = upscale.upscale_image(make_runner(model, "bitwise"), load_image(images / "baby.png"), 2, 0, 0)
    assert np.abs(load_image(out / "baby_frbc_x2.png").astype(int) - whole.astype(int)).max() <= 1


def test_upscale_notes_inexact_tiling_once(images, tmp_path, capsys):
    assert main(["upscale", "-i", str(images), "-o", str(tmp_path / "out"), "-m", "btm", "-s", "2", "--tile", "32"]) == 0
    err = capsys.readouterr().err
    assert err.count("not exactly tileable (a layer uses statistics over the whole image)") == 1


def test_upscale_refuses_inputs_above_the_pixel_limit(images, tmp_path, capsys):
    assert main(["upscale", "-i", str(images), "-o", str(tmp_path / "out"), "-m", "bicubic",
                 "--max-megapixels", "0.005"]) == 1
    captured = capsys.readouterr()
    assert "above the limit of 0.005 MP" in captured.err and "1 of 2 images written" in captured.out


def test_upscale_reports_unreadable_file_and_goes_on(images, tmp_path, capsys):
    (images / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    assert main(["upscale", "-i", str(images), "-o", str(out), "-m", "bicubic", "-s", "2"]) == 1
    assert sorted(p.name for p in out.iterdir()) == ["baby_bicubic_x2.png", "bird_bicubic_x2.png"]
    captured = capsys.readouterr()
    assert re.search(r"error: .*broken\.png: cannot read image", captured.err)
    assert "2 of 3 images written" in captured.out


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing input", "input not found"),
        ("empty folder", "no images"),
        ("output under a file", "cannot create output folder"),
        ("overwrite input", "refusing to overwrite the input"),
    ],
)
def test_upscale_usage_errors(case, message, images, tmp_path, capsys):
    before = {p.name: p.read_bytes() for p in images.iterdir()}
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("a regular file")
    args = {
        "missing input": ["-i", str(tmp_path / "nope"), "-o", str(tmp_path / "out")],
        "empty folder": ["-i", str(tmp_path / "empty"), "-o", str(tmp_path / "out")],
        "output under a file": ["-i", str(images), "-o", str(tmp_path / "file.txt" / "out")],
        "overwrite input": ["-i", str(images), "-o", str(images), "--suffix", ""],
    }[case]
    assert main(["upscale", *args, "-m", "bicubic"]) == 2
    assert message in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in images.iterdir()} == before


# --------------------------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------------------------


def test_kernels_writes_the_apps_figure_and_table(tmp_path, capsys):
    assert main(["kernels", "--model", "frbc", "--layer", "body.3.conv2", "--scale", "2", "-o", str(tmp_path)]) == 0
    view = K.kernel_view("frbc", "body.3.conv2", scale=2)
    stem = "frbc_x2_body.3.conv2"
    assert np.array_equal(load_image(tmp_path / f"fig1_{stem}.png"), view.figure)
    with open(tmp_path / f"table1_{stem}.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == K.TABLE_HEADERS and len(rows) == len(view.rows) + 1
    for got, want in zip(rows[1:], view.rows):
        assert got[0] == str(want[0]) and [float(v) for v in got[1:]] == want[1:]
    md = (tmp_path / f"table1_{stem}.md").read_text()
    last = view.rows[-1]
    assert f"| {last[0]} | {last[1]:.4f} | {last[2]:.4f} | {last[3]:.1f} |" in md
    assert md.count("\n| ") == len(view.rows) + 1
    assert f"FRB improvement {last[3]:.1f} %" in capsys.readouterr().out


def test_kernels_wrong_layer_lists_the_valid_ones(tmp_path, capsys):
    assert main(["kernels", "--layer", "conv_first", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no binary layer 'conv_first'" in err and "body.0.conv1" in err and "body.15.conv2" in err
    assert list(tmp_path.iterdir()) == []


def test_kernels_unwritable_output_folder(tmp_path, capsys):
    (tmp_path / "file.txt").write_text("a regular file")
    assert main(["kernels", "-o", str(tmp_path / "file.txt" / "out")]) == 2
    assert "cannot create output folder" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# figure
# --------------------------------------------------------------------------------------------


def test_figure_layout_and_scores(images, tmp_path, capsys):
    out = tmp_path / "fig" / "baby.png"
    assert main(["figure", "--data", str(images), "--image", "baby", "-s", "4", "-o", str(out),
                 "--models", "bicubic,frbc", "--backend", "torch"]) == 0
    fig = load_image(out)
    hr, lr = make_lr(load_image(images / "baby.png"), 4)
    x, y, w, h = figure.default_box(*hr.shape[:2])
    assert (x, y, w, h) == (38, 30, 20, 20)
    zoom = figure.crop_zoom((x, y, w, h))
    crop = enlarge(hr[y : y + h, x : x + w], zoom)
    # one row of three panels (HR, bicubic, FRBC), the HR image as tall as a crop
    assert fig.shape[0] == 2 * figure.MARGIN + zoom * h + figure.CAPTION_H
    assert fig.shape[1] >= 2 * figure.MARGIN + zoom * h * 96 // 80 + 2 * figure.GAP + 3 * zoom * w + 2 * figure.GAP
    top = fig[figure.MARGIN : figure.MARGIN + zoom * h]
    assert any(np.array_equal(top[:, c : c + zoom * w], crop) for c in range(fig.shape[1] - zoom * w))
    sr = upscale.upscale_image(make_runner(create_model("bicubic", 4), "torch"), lr, 4, None, 2)
    assert f"{psnr_y(sr, hr, 4):.2f} / {ssim_y(sr, hr, 4):.4f}" in capsys.readouterr().out


def test_figure_two_rows_for_many_models():
    layout = figure.figure_layout((320, 480, 3), (60, 80, 3), 13, min_cell_w=100, min_hr_w=50)
    assert (layout.rows, layout.columns, layout.cell_w) == (2, 7, 100)
    assert layout.height == 2 * figure.MARGIN + 2 * (60 + figure.CAPTION_H) + figure.GAP
    assert layout.panel_origin(7) == (figure.MARGIN + layout.hr_column + 2 * figure.GAP, figure.MARGIN + layout.cell_h + figure.GAP)
    assert layout.width == layout.panel_origin(6)[0] + 100 + figure.MARGIN


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--box", "60,10,40,20"], "box 60,10,40,20 (x,y,w,h) is not inside the 96x80 image"),
        (["--box", "0,0,0,8"], "width and height must be at least 1"),
        (["--models", "bicubic,nope"], "unknown model(s) nope"),
        (["--image", "lena"], "images there: baby, bird"),
        (["-o", "figure.jpg"], "the output must be a .png file"),
    ],
)
def test_figure_usage_errors(extra, message, images, tmp_path, capsys):
    args = ["figure", "--data", str(images), "--image", "baby", "-o", str(tmp_path / "f.png"), "--models", "bicubic"]
    assert main(args + extra) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "f.png").exists()


def test_figure_malformed_box_is_an_argparse_error(images, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["figure", "--data", str(images), "--image", "baby", "-o", str(tmp_path / "f.png"), "--box", "1,2,3"])
    assert exit_.value.code == 2 and "expected x,y,w,h" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Damaged weights: stop, name the checksum, write nothing (unless --allow-random)
# --------------------------------------------------------------------------------------------


@pytest.fixture
def damaged_frbc(tmp_path, monkeypatch) -> Path:
    """A copy of the bundled weights in which frbc_x4.safetensors has one flipped byte."""
    import shutil

    from frb import weights as W
    from frb import hub

    assets = tmp_path / "assets"
    shutil.copytree(hub.ASSETS_DIR, assets)
    data = bytearray((assets / "frbc_x4.safetensors").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (assets / "frbc_x4.safetensors").write_bytes(bytes(data))
    monkeypatch.setattr(hub, "ASSETS_DIR", assets)
    monkeypatch.setattr(W, "_cache", {})
    return assets


def test_damaged_weights_stop_upscale_kernels_figure_and_eval_naming_the_checksum(damaged_frbc, images, tmp_path, capsys, set5_dir):
    import time

    out = tmp_path / "out"
    start = time.perf_counter()
    assert main(["upscale", "-i", str(images), "-o", str(out), "-m", "frbc"]) == 1
    err = capsys.readouterr().err
    assert "frbc x4 is unavailable" in err and "fails its sha256 check" in err and "git checkout assets/weights" in err
    assert not list(out.glob("*.png"))  # nothing written from fake weights
    assert time.perf_counter() - start < 30  # offline: no Hub retries
    assert main(["kernels", "--model", "frbc", "-o", str(tmp_path / "k")]) == 1
    assert "fails its sha256 check" in capsys.readouterr().err
    assert main(["figure", "--data", str(set5_dir), "--image", "baby", "--models", "bicubic,frbc",
                 "-o", str(tmp_path / "f.png")]) == 1
    assert "fails its sha256 check" in capsys.readouterr().err and not (tmp_path / "f.png").exists()
    with pytest.raises(SystemExit) as exit_:
        main(["eval", "--model", "frbc", "--data", str(set5_dir)])
    assert "fails its sha256 check" in str(exit_.value)


def test_allow_random_runs_a_damaged_model_and_says_so(damaged_frbc, images, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["upscale", "-i", str(images), "-o", str(out), "-m", "frbc", "--allow-random"]) == 0
    assert "randomly initialised frbc x4 (--allow-random)" in capsys.readouterr().err
    assert len(list(out.glob("*.png"))) == len(CROPS)


# --------------------------------------------------------------------------------------------
# Batch runs: no collisions, nothing overwritten, resumable, a summary
# --------------------------------------------------------------------------------------------


def test_a_stem_clash_writes_both_files(images, tmp_path, capsys):
    Image.open(images / "bird.png").save(images / "bird.jpg", quality=95)
    out = tmp_path / "out"
    assert main(["upscale", "-i", str(images), "-o", str(out), "-m", "bicubic", "-s", "2"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["baby_bicubic_x2.png", "bird_jpg_bicubic_x2.png", "bird_png_bicubic_x2.png"]
    assert "3 of 3 images written" in capsys.readouterr().out


def test_existing_outputs_are_never_overwritten_unless_asked(images, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["upscale", "-i", str(images), "-o", str(out), "-m", "bicubic", "-s", "2"]) == 0
    first = out / "baby_bicubic_x2.png"
    first.write_bytes(b"an earlier result")
    (out / "bird_bicubic_x2.png").unlink()  # as if the first run had been interrupted
    capsys.readouterr()
    assert main(["upscale", "-i", str(images), "-o", str(out), "-m", "bicubic", "-s", "2"]) == 2
    assert "already exist" in capsys.readouterr().err and first.read_bytes() == b"an earlier result"
    assert main(["upscale", "-i", str(images), "-o", str(out), "-m", "bicubic", "-s", "2", "--skip-existing"]) == 0
    assert first.read_bytes() == b"an earlier result" and (out / "bird_bicubic_x2.png").is_file()
    printed = capsys.readouterr().out
    assert "1 of 2 images written to" in printed and "1 skipped (already there)" in printed
    assert main(["upscale", "-i", str(images), "-o", str(out), "-m", "bicubic", "-s", "2", "--overwrite"]) == 0
    assert load_image(first).shape[:2] == (160, 192)
    assert not list(out.glob(".*.partial"))


def test_the_summary_lists_failures_with_reasons(images, tmp_path, capsys):
    (images / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    assert main(["upscale", "-i", str(images), "-o", str(out), "-m", "bicubic", "-s", "2"]) == 1
    printed = capsys.readouterr().out
    assert "2 of 3 images written" in printed and "1 failed:" in printed and "broken.png: cannot read image" in printed


def test_the_library_never_imports_the_app_or_the_hub_client_on_import():
    # frb knows no screen: importing every frb module loads neither app/ nor gradio, and leaves
    # huggingface_hub unimported so the command line can still choose offline mode.
    import subprocess
    import sys

    script = (
        "import importlib, pkgutil, sys, frb\n"
        "for m in pkgutil.walk_packages(frb.__path__, 'frb.'): importlib.import_module(m.name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('app', 'gradio', 'huggingface_hub')))\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
