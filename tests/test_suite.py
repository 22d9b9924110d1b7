"""train.suite: a whole set trained under one budget, shipped, scored, summarised and archived."""
from __future__ import annotations

import json
import tarfile

import pytest
from PIL import Image

from frb import hub
from frb.imaging import load_image
from train.suite import SHARES, main, plan
from train.presets import config_from_args

pytestmark = pytest.mark.usefixtures("one_thread")


def test_plan_sizes_steps_to_the_budget_and_warms_binary_students_up():
    student = plan(config_from_args(["--model", "frbc"]), rate=2.0, seconds=100)
    assert (student.steps, student.warmup_steps) == (200, 25)
    assert student.max_minutes > 100 / 60
    teacher = plan(config_from_args(["--model", "srresnet"]), rate=20.0, seconds=100)
    assert (teacher.steps, teacher.warmup_steps) == (2000, 50)
    assert list(SHARES)[:2] == ["srresnet", "swinir_s"]  # teachers train before their students


def test_suite_trains_ships_scores_and_archives_a_teacher_and_its_student(tmp_path, set5_dir, capsys):
    bench = tmp_path / "bench"
    bench.mkdir()
    Image.fromarray(load_image(set5_dir / "bird.png")[:48, :40]).save(bench / "bird.png")
    runs, assets, archive = tmp_path / "runs", tmp_path / "assets", tmp_path / "set.tar.gz"
    args = ["--scale", "2", "--minutes", "0.05", "--models", "bnn", "srresnet", "--runs", str(runs),
            "--assets", str(assets), "--benchmarks", str(bench), "--data", str(set5_dir), "--device", "cpu",
            "--train-flags", "--batch 2 --lr-patch 8 --val-data ''"]
    assert main(args + ["--archive", str(archive)]) == 0
    for name in ("srresnet", "bnn"):
        result = json.loads((runs / f"{name}_x2" / "result.json").read_text())
        assert result["training"]["steps"] >= 10 and result["training"]["hardware"]["device"] == "cpu"
        assert 0 < result["metrics"]["bench"]["psnr"] < 100 and result["steady_steps_per_s"] > 0
        assert hub.resolve(name, 2, assets=assets).path == assets / f"{name}_x2.safetensors"
    config = json.loads((runs / "bnn_x2" / "config.json").read_text())
    assert config["teacher"] == str(runs / "srresnet_x2" / "srresnet_x2.safetensors")
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == sorted([
            "weights/manifest.json", "weights/srresnet_x2.safetensors", "weights/bnn_x2.safetensors",
            "results/srresnet_x2.json", "results/bnn_x2.json"])
    capsys.readouterr()
    assert main(args) == 0  # a second call finds both results and trains nothing
    assert capsys.readouterr().out.count("skipped") == 2


def test_a_student_without_its_teacher_stops_with_a_one_line_error(tmp_path, capsys):
    assert main(["--scale", "2", "--minutes", "0.05", "--models", "bnn", "--runs", str(tmp_path / "runs"),
                 "--assets", str(tmp_path / "assets"), "--device", "cpu"]) == 1
    assert "teacher weights" in capsys.readouterr().err and not (tmp_path / "assets" / "bnn_x2.safetensors").exists()
