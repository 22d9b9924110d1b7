"""train.release: trained runs become verified, evaluated, bundled weights with a manifest."""
from __future__ import annotations

import json

import torch
from PIL import Image
from safetensors.torch import save_file

from frb import hub
from frb.imaging import load_image
from frb.models import create_model
from train.release import main


def fake_run(runs, name: str, scale: int) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(name, scale)
    folder = runs / f"{name}_x{scale}"
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / f"{name}_x{scale}.safetensors"))
    (folder / "summary.json").write_text(json.dumps({"steps": 7, "wall_time_s": 1.5, "hardware": {"device": "cpu"}}))
    return model.eval()


def test_release_ships_packed_binary_and_fp16_models(tmp_path, set5_dir):
    bench = tmp_path / "Set5"
    bench.mkdir()
    Image.fromarray(load_image(set5_dir / "baby.png")[:48, :40]).save(bench / "baby.png")
    runs, assets = tmp_path / "runs", tmp_path / "assets"
    trained = {name: fake_run(runs, name, 2) for name in ("srresnet", "bnn")}
    assert main(["srresnet", "bnn", "--scale", "2", "--runs", str(runs), "--assets", str(assets), "--data", str(bench)]) == 0
    entries = {e["name"]: e for e in json.loads((assets / hub.MANIFEST_NAME).read_text())["models"]}
    assert entries["bnn"]["format"] == "frb-packed" and entries["srresnet"]["format"] == "float16-state-dict"
    for name, entry in entries.items():
        found = hub.resolve(name, 2, assets=assets)
        assert found.source == "bundled" and found.path.stat().st_size == entry["bytes"]
        assert entry["training"]["steps"] == 7 and 0 < entry["metrics"]["Set5"]["psnr"] < 100
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        for name, model in trained.items():
            shipped = create_model(name, 2, pretrained=assets / f"{name}_x2.safetensors")
            assert (shipped(x) - model(x)).abs().max() < 0.02  # float16 head/tail, exact binary bits
    assert main(["frbc", "--scale", "2", "--runs", str(runs), "--assets", str(assets)]) == 2
