"""The shipped weights themselves: complete, intact, loadable offline, and scoring what the manifest says."""
from __future__ import annotations

import pytest
import torch

from frb import hub
from frb.ablation import load_variant, read_ablation, variant
from frb.evaluate import BACKEND_AGREEMENT_DB, evaluate_model
from frb.layers import binary_layers
from frb.models import MODELS, create_model
from frb.models.pretrained import weights_metadata

ENTRIES = hub.read_manifest()
ABLATION = read_ablation()  # empty until the campaign's ablation stages finish
TRAINABLE = [name for name, spec in MODELS.items() if spec.arch != "bicubic"]


@pytest.mark.parametrize("scale", [2, 4])
def test_every_trainable_model_ships_weights_at_x2_and_x4(scale):
    shipped = {e["name"] for e in ENTRIES if int(e["scale"]) == scale}
    assert sorted(set(TRAINABLE) - shipped) == []


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: f"{e['name']}_x{e['scale']}")
def test_shipped_file_is_intact_and_scores_its_manifest_set5_psnr(entry, set5_dir):
    found = hub.resolve(entry["name"], int(entry["scale"]))
    assert found.source == "bundled" and not found.notices
    assert found.path.stat().st_size == entry["bytes"]
    assert weights_metadata(found.path).get("format", "") == ("frb-packed" if entry["format"] == "frb-packed" else "")
    model = create_model(entry["name"], int(entry["scale"]), pretrained=found.path)
    assert model.weights_origin.source == "file"
    scores = set5_scores(model, int(entry["scale"]), set5_dir, backend="torch")
    assert scores["psnr"] == pytest.approx(entry["metrics"]["Set5"]["psnr"], abs=0.01)
    assert scores["ssim"] == pytest.approx(entry["metrics"]["Set5"]["ssim"], abs=1e-4)


@pytest.mark.engine  # the second CI pass runs it with the kernels compiled for AVX2
@pytest.mark.parametrize("entry", [e for e in ENTRIES if MODELS[e["name"]].binary], ids=lambda e: f"{e['name']}_x{e['scale']}")
def test_the_packed_engine_users_run_scores_the_manifests_set5_psnr(entry, set5_dir):
    model = create_model(entry["name"], int(entry["scale"]), pretrained=hub.resolve(entry["name"], int(entry["scale"])).path)
    assert set5_scores(model, int(entry["scale"]), set5_dir, backend="bitwise")["psnr"] == pytest.approx(entry["metrics"]["Set5"]["psnr"], abs=BACKEND_AGREEMENT_DB)


def set5_scores(model: torch.nn.Module, scale: int, set5_dir, backend: str) -> dict[str, float]:
    """Set5 Y-PSNR / SSIM of ``model`` on one thread (as the manifest's were measured)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return evaluate_model(model, [set5_dir], scale, torch.device("cpu"), backend=backend)["Set5"]
    finally:
        torch.set_num_threads(threads)


@pytest.mark.engine
@pytest.mark.parametrize("entry", ABLATION, ids=lambda e: e["stage"])
def test_bundled_ablation_file_is_intact_and_scores_its_manifest_set5_psnr(entry, set5_dir):
    model = load_variant(entry)  # checks the sha256
    bases = {layer.weight_quantizer.num_bases for layer in binary_layers(model).values()}
    assert model.spec.method == "frb" and bases == {2 if entry["srb"] else 1}, variant(entry)
    assert set5_scores(model, int(entry["scale"]), set5_dir, backend="bitwise")["psnr"] == pytest.approx(entry["metrics"]["Set5"]["psnr"], abs=BACKEND_AGREEMENT_DB)
