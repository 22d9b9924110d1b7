"""frb.hub: bundled -> Hugging Face cache -> Hub, sha256 checks, offline behaviour, publishing."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from frb import hub
from frb.models import create_model

REPO = "frb-sr/test-weights"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
ROOT = Path(__file__).resolve().parents[1]


def trained_file(path: Path) -> str:
    torch.manual_seed(0)
    model = create_model("srresnet", 2)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest(folder: Path, sha: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    entry = {"name": "srresnet", "scale": 2, "file": "srresnet_x2.safetensors", "sha256": sha}
    (folder / hub.MANIFEST_NAME).write_text(json.dumps({"models": [entry]}))


def fill_hf_cache(cache: Path, src: Path) -> Path:
    """The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<commit>/file}."""
    repo_dir = cache / ("models--" + REPO.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(COMMIT)
    target = snapshot / src.name
    target.write_bytes(src.read_bytes())
    return target


def resolve_offline(assets: Path, cache: Path) -> dict:
    """Run the resolver in a fresh process with HF_HUB_OFFLINE=1 set before any import."""
    script = textwrap.dedent(
        f"""
        import json
        from pathlib import Path
        from frb import hub
        from frb.models import create_model
        found = hub.resolve("srresnet", 2, assets=Path({str(assets)!r}))
        ok = None
        if found.path is not None:
            ok = create_model("srresnet", 2, pretrained=found.path).conv_first.weight.sum().item()
        print(json.dumps({{"source": found.source, "notices": list(found.notices), "checksum": ok}}))
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), hub.REPO_ID_ENV: REPO, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_bundled_file_wins_and_is_verified(tmp_path):
    assets = tmp_path / "assets"
    manifest(assets, trained_file(assets.parent / "x.safetensors"))
    (tmp_path / "x.safetensors").rename(assets / "srresnet_x2.safetensors")
    found = hub.resolve("srresnet", 2, assets=assets)
    assert found.source == "bundled" and found.notices == ()
    model = create_model("srresnet", 2, pretrained=found.path)
    torch.manual_seed(0)
    assert torch.equal(model.conv_first.weight, create_model("srresnet", 2).conv_first.weight)


def test_offline_hub_cache_is_used_when_nothing_is_bundled(tmp_path):
    src = tmp_path / "srresnet_x2.safetensors"
    sha = trained_file(src)
    manifest(tmp_path / "assets", sha)
    fill_hf_cache(tmp_path / "cache", src)
    result = resolve_offline(tmp_path / "assets", tmp_path / "cache")
    assert result["source"] == "hub-cache" and result["checksum"] is not None


def test_tampered_files_are_refused(tmp_path):
    src = tmp_path / "srresnet_x2.safetensors"
    sha = trained_file(src)
    assets = tmp_path / "assets"
    manifest(assets, sha)
    bundled = assets / src.name
    bundled.write_bytes(src.read_bytes()[:-1] + b"\0")  # tampered bundled copy
    cached = fill_hf_cache(tmp_path / "cache", src)
    result = resolve_offline(assets, tmp_path / "cache")
    assert result["source"] == "hub-cache"
    assert "bundled copy of srresnet_x2.safetensors fails its sha256 check" in result["notices"][0]
    cached.write_bytes(b"not the weights")
    result = resolve_offline(assets, tmp_path / "cache")
    assert result["source"] == "none" and result["checksum"] is None
    assert any("Hub copy" in n and "sha256" in n for n in result["notices"])
    assert any("offline mode" in n for n in result["notices"])


def test_missing_weights_raise_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "ASSETS_DIR", tmp_path)
    with pytest.raises(hub.WeightsError, match="no trained weights bundled for frbc x4"):
        create_model("frbc", 4, pretrained=True)
    (tmp_path / hub.MANIFEST_NAME).write_text("{not json")
    with pytest.raises(hub.WeightsError, match="not a valid weights manifest"):
        hub.read_manifest(tmp_path)


def test_weights_of_another_model_or_no_safetensors_are_refused(tmp_path):
    path = tmp_path / "w.safetensors"
    trained_file(path)
    with pytest.raises(hub.WeightsError, match="does not fit srresnet x4"):
        create_model("srresnet", 4, pretrained=path)
    path.write_bytes(b"garbage")
    with pytest.raises(hub.WeightsError, match="is not a readable safetensors file"):
        create_model("srresnet", 2, pretrained=path)


def test_repo_id_and_revision_come_from_argument_env_or_default(monkeypatch):
    monkeypatch.delenv(hub.REPO_ID_ENV, raising=False)
    assert hub.repo_id() == hub.DEFAULT_REPO_ID
    monkeypatch.setenv(hub.REPO_ID_ENV, "me/mine")
    monkeypatch.setenv(hub.REVISION_ENV, COMMIT)
    assert hub.repo_id() == "me/mine" and hub.repo_id("x/y") == "x/y" and hub.revision() == COMMIT


def test_push_uploads_the_verified_folder_with_a_model_card(tmp_path, monkeypatch):
    assets = tmp_path / "assets"
    assets.mkdir()
    sha = trained_file(assets / "srresnet_x2.safetensors")
    manifest(assets, sha)
    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, repo_type, exist_ok):
            calls["repo"] = (repo_id, repo_type, exist_ok)

        def upload_folder(self, repo_id, folder_path, commit_message):
            calls["upload"] = (repo_id, folder_path)
            return type("Info", (), {"oid": COMMIT})()

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    assert hub.push("me/weights", assets=assets, token="t") == COMMIT
    assert calls["repo"] == ("me/weights", "model", True) and calls["upload"] == ("me/weights", str(assets))
    card = (assets / "README.md").read_text()
    assert "| srresnet | x2 | srresnet_x2.safetensors |" in card
    monkeypatch.delenv(hub.REVISION_ENV, raising=False)
    assert hub.read_pin(assets)["revision"] == COMMIT and hub.read_pin(assets)["repo_id"] == "me/weights"
    assert hub.revision(repo="me/weights", assets=assets) == COMMIT  # this checkout downloads the pushed commit
    assert hub.revision(repo="someone/else", assets=assets) == hub.DEFAULT_REVISION
    from train.release import write_manifest

    entry = json.loads((assets / hub.MANIFEST_NAME).read_text())["models"][0]
    write_manifest(assets, [{**entry, "sha256": "1" * 64}])  # a newer file ships: the pushed commit lacks it
    assert hub.read_pin(assets) is not None and hub.pinned_revision("me/weights", assets) is None
    assert hub.revision(repo="me/weights", assets=assets) == hub.DEFAULT_REVISION
    write_manifest(assets, [entry])
    (assets / "srresnet_x2.safetensors").write_bytes(b"changed")
    with pytest.raises(hub.WeightsError, match="does not match its manifest sha256"):
        hub.push("me/weights", assets=assets)


def test_model_card_states_scores_and_the_compute_each_model_got():
    from frb.ledger import ledger_total

    def segment(run, steps, seconds, device, cpu_seconds=0.0):
        return {"run": run, "steps_from": 0, "steps_to": steps, "batch": 16, "samples": 16 * steps,
                "seconds": seconds, "cpu_seconds": cpu_seconds, "device": device}

    cpu = [segment("a", 800, 1800.0, "cpu", 3600.0), segment("b", 400, 1800.0, "cpu", 3240.0)]
    entry = {"name": "frbc", "scale": 4, "file": "frbc_x4.safetensors", "sha256": "0" * 64,
             "metrics": {"Set5": {"psnr": 29.494, "ssim": 0.83981}},
             "ledger": {"runs": cpu, "total": ledger_total(cpu)}}
    gpu = {**entry, "scale": 2, "ledger": {"runs": [segment("g", 9000, 120.0, "cuda")]}}
    card = hub.model_card([entry, gpu, {**entry, "ledger": {"runs": []}}])
    assert "| frbc | x4 | frbc_x4.safetensors | 29.49 / 0.8398 | - | - | 1,200 steps (19,200 samples), 1.0 h on CPU (1.9 CPU-h), 2 runs |" in card
    assert "9,000 steps (144,000 samples), 2 GPU-min, 1 run |" in card and card.rstrip().endswith("| - | - | - |")


def test_model_card_metadata_carries_every_score_for_the_hub():
    from huggingface_hub import ModelCard

    entry = {"name": "frbc", "scale": 4, "file": "frbc_x4.safetensors", "sha256": "0" * 64,
             "metrics": {"Set5": {"psnr": 29.494, "ssim": 0.83981}, "B100": {"psnr": 26.1, "ssim": 0.7}}}
    card = ModelCard(hub.model_card([entry, {**entry, "scale": 2, "metrics": {}}]))
    results = card.data.eval_results
    assert card.data.license == "mit" and len(results) == 4  # 2 benchmarks x (PSNR, SSIM); none for x2
    set5 = {r.metric_type: r for r in results if r.dataset_name == "Set5"}
    assert set5["psnr"].metric_value == 29.49 and set5["ssim"].metric_value == 0.8398
    assert set5["psnr"].metric_name == "frbc x4 PSNR (Y, border 4)"
