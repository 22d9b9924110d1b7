"""``python -m frb eval``: the bicubic reference, weights, resolvers and the --all table."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from frb.__main__ import main
from frb.evaluate import locate_weights, published_results, published_row, set_name, weights_in
from frb.models import create_model

REPO = Path(__file__).resolve().parents[1]


def test_bicubic_on_set5_x4_matches_the_literature(set5_dir):
    out = subprocess.run(
        [sys.executable, "-m", "frb", "eval", "--model", "bicubic", "--scale", "4", "--data", str(set5_dir), "--json"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )
    (row,) = json.loads(out.stdout)["results"]
    assert row["set"] == "Set5" and row["images"] == 5
    assert row["psnr"] == pytest.approx(28.42, abs=0.05)
    assert row["published_psnr"] == "28.42" and row["published_source"] == "RCAN Table 3"


def test_published_rows_map_model_names_to_the_table():
    rows = published_results()
    assert published_row("bicubic", 4, rows)["Set5_psnr"] == "28.42"
    assert published_row("srresnet", 4, rows)["Set5_psnr"] == "32.16"
    assert published_row("reactnet", 2, rows)["source"] == "BBCU Table 1"
    assert published_row("swinir_s", 3, rows)["Set14_psnr"] == "30.54"
    assert published_row("frbc", 4, rows) is None and published_row("dorefa", 4, rows) is None


def test_weights_resolvers_and_strict_loading(tmp_path):
    model = create_model("srresnet", 2)
    flat = tmp_path / "flat" / "srresnet_x2.safetensors"
    nested = tmp_path / "runs" / "frbc_x2" / "frbc_x2.safetensors"
    for path in (flat, nested, tmp_path / "runs" / "frbc_x2_nodbt" / "frbc_x2.safetensors"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    resolvers = [weights_in(tmp_path / "runs"), weights_in(tmp_path / "flat")]
    assert locate_weights("srresnet", 2, resolvers) == flat
    assert locate_weights("frbc", 2, resolvers) == nested
    assert locate_weights("frbc", 4, resolvers) is None

    save_file(model.state_dict(), str(flat))
    fresh = create_model("srresnet", 2, pretrained=flat)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))
    with pytest.raises(ValueError, match="does not fit frbc x2"):
        create_model("frbc", 2, pretrained=flat)


def test_all_writes_markdown_and_csv_beside_the_published_numbers(tmp_path, set5_dir, capsys):
    # Two small crops in a folder named Set5 (so the published Set5 numbers apply), scale 4.
    data = tmp_path / "Set5" / "HR"
    data.mkdir(parents=True)
    for name in ("baby.png", "bird.png"):
        img = np.asarray(Image.open(set5_dir / name).convert("RGB"))[:96, :100]
        Image.fromarray(img).save(data / name)
    assert set_name(data) == "Set5"
    weights = tmp_path / "weights"
    weights.mkdir()
    torch.manual_seed(0)
    save_file(create_model("srresnet", 4).state_dict(), str(weights / "srresnet_x4.safetensors"))

    out = tmp_path / "eval"
    assert main(["eval", "--all", "--scale", "4", "--data", str(data), "--weights-dir", str(weights), "--out", str(out)]) == 0
    with open(out / "results_x4.csv") as f:
        rows = {r["model"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"bicubic", "srresnet"}
    assert rows["bicubic"]["published_psnr"] == "28.42" and rows["srresnet"]["published_psnr"] == "32.16"
    assert rows["srresnet"]["weights"].endswith("srresnet_x4.safetensors")
    assert 15 < float(rows["srresnet"]["psnr"]) < 40 and int(rows["bicubic"]["images"]) == 2
    table = (out / "results_x4.md").read_text()
    assert "| srresnet |" in table and "32.16 / 0.8951" in table and "bbcu_l (published only)" in table
    assert "BBCU Table 1" in table and "RCAN Table 3" in table
    assert "results_x4.md" in capsys.readouterr().out


def test_a_model_without_weights_is_refused(set5_dir, tmp_path, monkeypatch):
    from frb import hub

    monkeypatch.setattr(hub, "ASSETS_DIR", tmp_path)  # nothing bundled
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SystemExit, match=r"frbc' x4 has no usable weights \(no trained weights bundled for frbc x4\); .*pass --weights FILE"):
        main(["eval", "--model", "frbc", "--scale", "4", "--data", str(set5_dir)])


def test_a_missing_or_empty_image_folder_is_an_error_message_not_a_traceback(tmp_path):
    with pytest.raises(SystemExit, match=r"^error: image folder not found: .*nowhere$"):
        main(["eval", "--model", "bicubic", "--data", str(tmp_path / "nowhere")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match=r"^error: no images \(.*\) in .*empty$"):
        main(["eval", "--model", "bicubic", "--data", str(tmp_path / "empty")])


def test_the_ablation_option_says_what_is_missing_or_wrong(set5_dir, tmp_path, monkeypatch):
    from frb import hub

    monkeypatch.setattr(hub, "ASSETS_DIR", tmp_path)
    with pytest.raises(SystemExit, match="no ablation weights are bundled yet"):
        main(["eval", "--ablation", "--data", str(set5_dir)])
    with pytest.raises(SystemExit, match="without --model, --all or --weights"):
        main(["eval", "--ablation", "--model", "frbc", "--data", str(set5_dir)])
    (tmp_path / "ablation").mkdir()
    (tmp_path / "ablation" / hub.MANIFEST_NAME).write_text(json.dumps({"ablation": [{"stage": "ablation_srb_x4"}]}))
    with pytest.raises(SystemExit, match=r"entry 'ablation_srb_x4' lacks \['dbt_weight', 'file'"):
        main(["eval", "--ablation", "--data", str(set5_dir)])
