"""frb.compare and the Compare tab's handler, called directly (no server)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from frb import compare as cmp
from frb.hub import resolve
from frb.imaging import ImageTooLargeError, to_tensor, to_uint8
from frb.metrics import psnr_y, ssim_y
from frb.models import create_model

gr = pytest.importorskip("gradio")
from app import ui  # noqa: E402

pytestmark = pytest.mark.engine  # run again with the kernels compiled for AVX2 (.ci/run)


def synthetic(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus a little noise: a well-behaved small test image."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h)], axis=-1)
    return np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)


def no_progress(*args, **kwargs) -> None:
    return None


def handler(path, mode=cmp.MODE_HR, scale=2, methods=("bicubic",), fit=True):
    return ui.run_compare(str(path), mode, scale, list(methods), [], [], "torch", fit, None, progress=no_progress)


def png_bytes(img: Image.Image, **save) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **save)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------


def test_hr_mode_scores_against_modcropped_hr():
    img = synthetic(50, 66)
    comp = cmp.compare(img, ["bicubic", "frbc"], cmp.MODE_HR, scale=4, backend="bitwise")
    assert comp.hr.shape == (48, 64, 3) and comp.lr.shape == (12, 16, 3)
    assert any("HR cropped" in n for n in comp.notices)
    untrained = resolve("frbc", 4).source == "none"
    assert any("no trained weights bundled for frbc x4" in n for n in comp.notices) == untrained
    for r in comp.results:
        assert r.image.shape == comp.hr.shape and r.image.dtype == np.uint8
        assert r.psnr == pytest.approx(psnr_y(r.image, comp.hr, 4))
        assert r.ssim == pytest.approx(ssim_y(r.image, comp.hr, 4))
        assert r.runtime_s >= 0 and r.backend in ("torch", "bitwise")
    assert comp.results[0].backend == "torch"  # full precision / bicubic always torch
    rows = cmp.metrics_table(comp)
    assert [row[0] for row in rows] == ["Bicubic", "FRBC (FRB on SRResNet)"]
    assert rows[0][1] == round(comp.results[0].psnr, 2) and rows[1][5] > 0
    assert "dB" in cmp.caption(comp.results[0]) and "torch" in cmp.caption(comp.results[0])


def test_lr_mode_upscales_without_scores():
    img = synthetic(16, 20)
    comp = cmp.compare(img, ["bicubic"], cmp.MODE_LR, scale=3)
    assert comp.hr is None and comp.lr.shape == img.shape
    (r,) = comp.results
    assert r.image.shape == (48, 60, 3) and r.psnr is None and r.ssim is None
    assert cmp.metrics_table(comp)[0][1:3] == [None, None]
    assert "not scored" in cmp.caption(r)


def test_bicubic_crop_matches_direct_slice():
    img = synthetic(64, 80, seed=3)
    scale = 4
    comp = cmp.compare(img, ["bicubic"], cmp.MODE_HR, scale=scale)
    with torch.no_grad():
        direct = to_uint8(create_model("bicubic", scale)(to_tensor(comp.lr)))
    h, w = cmp.output_shape(comp)
    region = cmp.snap_region(21, 13, 22, h, w, scale)
    assert (region.x, region.y, region.size) == (20, 12, 20)  # aligned to the LR grid
    hr_crop, lr_crop, out_crop = (img for img, _ in cmp.crops(comp, region, display=100))
    zoom = 100 // 20
    x, y, n = region.x, region.y, region.size
    assert np.array_equal(out_crop, cmp.enlarge(direct[y : y + n, x : x + n], zoom))
    assert np.array_equal(hr_crop, cmp.enlarge(comp.hr[y : y + n, x : x + n], zoom))
    assert np.array_equal(lr_crop, cmp.enlarge(comp.lr[3:8, 5:10], zoom * scale))
    assert hr_crop.shape == lr_crop.shape == out_crop.shape == (100, 100, 3)


def test_region_is_clamped_inside_the_image():
    region = cmp.snap_region(1000, -5, 999, 40, 60, 3)
    assert region.size == 39 and region.y == 0 and region.x + region.size <= 60 and region.x % 3 == 0


def test_enlarge_keeps_pixels_as_blocks():
    small = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    big = cmp.enlarge(small, 3)
    assert big.shape == (6, 6, 3) and np.array_equal(big[3:6, 0:3], np.broadcast_to(small[1, 0], (3, 3, 3)))


def test_too_large_is_rejected_or_downscaled():
    img = synthetic(40, 40)
    with pytest.raises(ImageTooLargeError, match="too large for this demo.*limit of 64"):
        cmp.compare(img, ["bicubic"], cmp.MODE_LR, scale=2, max_lr_pixels=64, fit=False)
    comp = cmp.compare(img, ["bicubic"], cmp.MODE_LR, scale=2, max_lr_pixels=200, fit=True)
    assert comp.lr.shape[0] * comp.lr.shape[1] <= 200
    assert any("downscaled from 40x40" in n for n in comp.notices)


def test_method_and_mode_errors():
    img = synthetic(32, 32)
    with pytest.raises(ValueError, match="at least one method"):
        cmp.compare(img, [], cmp.MODE_LR, 2)
    with pytest.raises(ValueError, match="unknown method"):
        cmp.compare(img, ["nope"], cmp.MODE_LR, 2)
    with pytest.raises(ValueError, match="too small"):
        cmp.compare(synthetic(12, 12), ["bicubic"], cmp.MODE_HR, 4)


# ---------------------------------------------------------------------------------------------
# Handler: what users upload
# ---------------------------------------------------------------------------------------------


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_handler_outputs(tmp_path):
    path = _write(tmp_path, "in.png", png_bytes(Image.fromarray(synthetic(40, 40))))
    out = handler(path, methods=("bicubic",))
    gallery, table, xs, ys, size, picker, crops, left, right, pair, files, status, comp, region = out
    assert len(gallery) == 1 and gallery[0][1].startswith("Bicubic")
    assert np.array_equal(np.asarray(Image.open(gallery[0][0])), comp.results[0].image)
    assert all(Path(f).suffix == ".png" for f in files) and len(files) == 3  # HR, bicubic, LR input
    assert len(crops) == 3 and table[0][0] == "Bicubic"
    assert status == "ok"  # bicubic needs no weights, 40x40 needs no crop at x2
    start = cmp.default_region(comp)
    assert region == (start.x, start.y, start.size) and size == start.size
    # every image goes out as a PNG file this call wrote (see app.outputs), pixel for pixel
    assert np.array_equal(np.asarray(Image.open(picker)), cmp.outline(comp.results[0].image, start))
    for (path, caption), (crop, expected_caption) in zip(crops, cmp.crops(comp, start), strict=True):
        assert caption == expected_caption and np.array_equal(np.asarray(Image.open(path)), crop)
    images = cmp.named_images(comp)
    pair = ui.pick_pair(comp, left.value, right.value)
    assert all(np.array_equal(np.asarray(Image.open(p)), images[name]) for p, name in zip(pair, (left.value, right.value)))


@pytest.mark.parametrize(
    "name,make",
    [
        ("gray", lambda a: Image.fromarray(a[..., 0])),
        ("rgba", lambda a: Image.fromarray(np.dstack([a, np.full(a.shape[:2], 200, np.uint8)]))),
        ("sixteen", lambda a: Image.fromarray(a[..., 0].astype(np.uint16) * 257)),
        ("palette", lambda a: Image.fromarray(a).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)),
    ],
)
def test_handler_accepts_image_modes(tmp_path, name, make):
    img = make(synthetic(32, 32))
    path = _write(tmp_path, f"{name}.png", png_bytes(img))
    gallery = handler(path)[0]
    channels = 4 if name == "rgba" else 3  # transparency comes back in the files
    assert np.asarray(Image.open(gallery[0][0])).shape == (32, 32, channels)


def test_handler_rejects_bad_files(tmp_path):
    text = _write(tmp_path, "notes.png", b"this is not an image\n")
    with pytest.raises(gr.Error, match="not an image"):
        handler(text)
    data = png_bytes(Image.fromarray(synthetic(64, 64)))
    truncated = _write(tmp_path, "cut.png", data[: len(data) // 2])
    with pytest.raises(gr.Error, match="truncated"):
        handler(truncated)
    huge = _write(tmp_path, "huge.png", png_bytes(Image.new("L", (5000, 4000)), optimize=False))
    with pytest.raises(gr.Error, match="above the limit"):
        handler(huge)
    with pytest.raises(gr.Error, match="upload an image"):
        ui.run_compare(None, cmp.MODE_HR, 2, ["bicubic"], [], [], "torch", True, None, progress=no_progress)
    with pytest.raises(gr.Error, match="at least one method"):
        handler(_write(tmp_path, "ok.png", data), methods=())


def test_large_lr_runs_tiled_and_matches_untiled():
    img = synthetic(10, cmp.TILE + 30, seed=4)  # wider than one tile
    comp = cmp.compare(img, ["bicubic"], cmp.MODE_LR, scale=2)
    with torch.no_grad():
        direct = to_uint8(create_model("bicubic", 2)(to_tensor(img)))
    assert np.abs(comp.results[0].image.astype(int) - direct).max() <= 1


def test_a_model_without_usable_weights_is_left_out_and_named(tmp_path, monkeypatch):
    from app import catalog
    from frb import weights as W
    from frb import hub

    monkeypatch.setattr(hub, "ASSETS_DIR", tmp_path)  # no weights at all
    monkeypatch.setattr(W, "_cache", {})
    img = synthetic(64, 64)
    comp = cmp.compare(img, ["bicubic", "frbc"], cmp.MODE_HR, scale=2)
    assert [r.name for r in comp.results] == ["bicubic"]
    assert any(n.startswith("not run: frbc x2 is unavailable") for n in comp.notices)
    with pytest.raises(ValueError, match="frbc x2 is unavailable"):
        cmp.compare(img, ["frbc"], cmp.MODE_HR, scale=2)
    row = next(r for r in catalog.model_rows(2) if r[0] == "frbc")
    assert row[4].startswith("unavailable: ") and row[6] == "—"  # no stale score from the manifest
    points = catalog.model_points(2)
    assert points[points.source.str.startswith("measured")].empty  # nor a stale point in the plots


@pytest.mark.parametrize("scale", [2, 4])
def test_the_plot_points_match_the_table(scale):
    from app import catalog

    points = catalog.model_points(scale)
    assert list(points.columns) == catalog.POINT_COLUMNS and not points.isna().any().any()
    rows = {r[0]: r for r in catalog.model_rows(scale)}
    for p in points.itertuples(index=False):
        measured, published = rows[p.model][6], rows[p.model][7]
        assert f"{p[4]:.2f}" == (measured if p.source.startswith("measured") else published).split(" / ")[0]
        assert p[2] == rows[p.model][3] and abs(p[3] - 4 * rows[p.model][2]) <= 0.25  # the table rounds params
    assert {"frbc", "reactnet", "srresnet"} <= set(points[points.source.str.startswith("measured")].model)
    if scale == 4:
        assert points[(points.model == "srresnet") & (points.source == "published")].iloc[0, 4] == 32.16


def test_user_errors_name_the_file_never_the_servers_path_and_stay_for_the_status_box(tmp_path):
    from types import SimpleNamespace

    upload = _write(tmp_path, "notes.png", b"this is not an image\n")
    session = SimpleNamespace(session_hash="session-1")
    with pytest.raises(gr.Error) as info:
        ui.run_compare(str(upload), cmp.MODE_HR, 2, ["bicubic"], [], [], "torch", True, None,
                       progress=no_progress, request=session)
    assert "notes.png" in info.value.message and str(tmp_path) not in info.value.message
    assert info.value.print_exception is False  # one log line, no traceback, for a user's mistake
    assert ui.show_error(session) == "error: " + info.value.message  # what the Status box then shows
    assert ui.show_error(session) == "error: the run failed"  # shown once, then forgotten


def test_an_identical_output_scores_inf_and_says_so():
    comp = cmp.compare(synthetic(32, 32), ["bicubic"], cmp.MODE_HR, scale=2)
    comp.results[0].psnr = float("inf")
    assert cmp.metrics_table(comp)[0][1] == "inf"


def test_kept_transparency_and_dropped_frames_are_announced(tmp_path):
    rgba = np.dstack([synthetic(48, 48), np.full((48, 48), 255, np.uint8)])
    rgba[:10, :10, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    frames = [Image.fromarray(synthetic(48, 48, seed=s)) for s in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    Image.fromarray(synthetic(48, 48)).save(tmp_path / "plain.png")
    status = {name: handler(tmp_path / name)[11] for name in ("alpha.png", "anim.gif", "plain.png")}
    assert "the image has transparency: the output files keep it" in status["alpha.png"]
    assert "only the first of its 3 frames" in status["anim.gif"]
    assert status["plain.png"] == "ok"


@pytest.mark.parametrize("mode", cmp.MODES)
def test_transparency_is_kept_for_the_files(mode):
    rgb = synthetic(48, 64)
    alpha = np.full((48, 64), 255, np.uint8)
    alpha[:16, :16] = 0
    comp = cmp.compare(np.dstack([rgb, alpha]), ["bicubic"], mode, scale=2)
    h, w = cmp.output_shape(comp)
    assert comp.results[0].image.shape == (h, w, 3) and comp.lr.shape[2] == 3  # the models see colour only
    assert comp.alpha.shape == (h, w) and comp.alpha[:8, :8].max() == 0 and comp.alpha[-8:, -8:].min() == 255
    files = cmp.named_images(comp, with_alpha=True)
    assert all(img.shape[2] == 4 for img in files.values())
    assert all(img.shape[2] == 3 for img in cmp.named_images(comp).values())
    assert any("transparency: the output files keep it" in n for n in comp.notices)
    if mode == cmp.MODE_HR:
        assert np.array_equal(files[cmp.HR_LABEL][:, :, 3], alpha[: comp.hr.shape[0], : comp.hr.shape[1]])


def test_speedups_are_measured_for_the_binarized_models_only():
    from frb.bench import model_speedups, random_model

    models = {name: random_model(name, 2, 0) for name in ("srresnet", "reactnet", "frbc")}
    speedups = model_speedups(models, 2, size=16, repeats=1)
    assert set(speedups) == {"reactnet", "frbc"} and all(v > 0 for v in speedups.values())
    from app import catalog

    row = next(r for r in catalog.model_rows(2, speedups) if r[0] == "frbc")
    assert row[catalog.MODEL_HEADERS.index("bitwise speed-up")] == f"{speedups['frbc']:.2f}x"


def test_the_models_tab_shows_the_bundled_ablation(tmp_path, monkeypatch):
    import json

    from app import catalog
    from frb import hub

    monkeypatch.setattr(hub, "ASSETS_DIR", tmp_path)
    assert "No ablation stage has finished yet" in catalog.ablation_markdown()
    (tmp_path / "ablation").mkdir()
    entry = {"stage": "ablation_srb_x4", "name": "frbc", "scale": 4, "srb": True, "dbt_weight": 0.0,
             "file": "ablation_srb_x4.safetensors", "sha256": "0" * 64, "steps": 3000,
             "metrics": {"Set5": {"psnr": 30.123, "ssim": 0.8512, "images": 5}}}
    (tmp_path / "ablation" / hub.MANIFEST_NAME).write_text(json.dumps({"ablation": [entry]}))
    assert "| +SRB | yes | no | x4 | 3,000 | 30.12 / 0.8512 |" in catalog.ablation_markdown()
    assert ("Not finished yet at x4 (section 6 of `train/plan.toml`): vanilla (first order, no DBT), +DBT, "
            "SRB + DBT (FRB)." in catalog.ablation_markdown())
