"""frb.weights.shared_model and create_model(pretrained=True): verified weights, and the notice when they are missing."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch
from safetensors.torch import save_file

from frb import weights as W
from frb import hub
from frb.models import create_model
from frb.models.pretrained import seeded_random


def write_manifest(folder, entries):
    (folder / hub.MANIFEST_NAME).write_text(json.dumps({"models": entries}))


def test_bundled_weights_are_found_verified_and_loaded(tmp_path, monkeypatch):
    trained = create_model("srresnet", 2)
    with torch.no_grad():
        trained.conv_first.weight.fill_(0.5)
    file = tmp_path / "srresnet_x2.safetensors"
    save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, str(file))
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    write_manifest(tmp_path, [{"name": "srresnet", "scale": 2, "file": file.name, "sha256": digest, "bitwise_speedup": 3.0}])
    info = hub.resolve("srresnet", 2, assets=tmp_path)
    assert info.label == "bundled" and info.size_bytes == file.stat().st_size and info.entry["bitwise_speedup"] == 3.0
    monkeypatch.setattr(hub, "ASSETS_DIR", tmp_path)
    monkeypatch.setattr(W, "_cache", {})
    model, notice = W.shared_model("srresnet", 2)
    assert notice == "" and model.weights_origin.source == "bundled" and not model.training
    assert torch.equal(model.conv_first.weight, trained.conv_first.weight)


def test_bad_checksum_and_missing_weights_give_notices(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    file = tmp_path / "bnn_x3.safetensors"
    save_file({k: v.contiguous() for k, v in create_model("bnn", 3).state_dict().items()}, str(file))
    write_manifest(tmp_path, [{"name": "bnn", "scale": 3, "file": file.name, "sha256": "0" * 64}])
    info = hub.resolve("bnn", 3, assets=tmp_path)
    assert info.source == "none" and "fails its sha256 check" in info.notices[0]
    monkeypatch.setattr(hub, "ASSETS_DIR", tmp_path)
    monkeypatch.setattr(W, "_cache", {})
    model, notice = W.shared_model("bnn", 3)
    assert model is None and "fails its sha256 check" in notice and "bnn x3 is unavailable" in notice
    model, notice = W.shared_model("bnn", 3, allow_random=True)
    assert model is not None and "fails its sha256 check" in notice and "randomly initialised" in notice
    assert model.weights_origin.source == "random" and model.weights_origin.notices == (notice,)
    assert hub.resolve("frbc", 4, assets=tmp_path).source == "none"


def test_without_weights_a_model_is_unavailable_unless_random_is_asked_for(tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "ASSETS_DIR", tmp_path)  # an empty folder: no weights anywhere
    monkeypatch.setattr(W, "_cache", {})
    missing, why = W.shared_model("frbc", 4)
    assert missing is None and why.startswith("frbc x4 is unavailable: no trained weights bundled for frbc x4")
    assert "git checkout assets/weights" in why
    model, notice = W.shared_model("frbc", 4, allow_random=True)
    assert W.shared_model("frbc", 4, allow_random=True)[0] is model and not model.training
    assert notice == ("no trained weights bundled for frbc x4 (nor at any scale): "
                      "showing a randomly initialised frbc x4 (--allow-random)")
    again = seeded_random("frbc", 4)  # the random fallback is the same in every process
    assert torch.equal(again.conv_first.weight, model.conv_first.weight)
    assert W.shared_model("bicubic", 4)[1] == ""
    missing, message = W.shared_model("nope", 4)
    assert missing is None and "unknown model 'nope'" in message


def test_a_scale_without_weights_is_refused_naming_the_scales_that_have_them(monkeypatch):
    monkeypatch.setattr(W, "_cache", {})
    missing, why = W.shared_model("frbc", 3)
    assert missing is None and "no trained weights bundled for frbc x3 (frbc has trained weights at x2, x4)" in why
    assert hub.shipped_scales() == (2, 4) and hub.shipped_scales("frbc") == (2, 4)


def test_the_app_offers_exactly_the_scales_that_have_weights():
    pytest.importorskip("gradio")
    from app import ui

    assert ui.offered_scales() == list(hub.shipped_scales()) == [2, 4]


def test_local_files_only_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    write_manifest(tmp_path, [{"name": "srresnet", "scale": 2, "file": "srresnet_x2.safetensors", "sha256": "0" * 64}])
    monkeypatch.setattr(hub, "ASSETS_DIR", tmp_path)  # listed, but neither bundled nor cached
    asked = []

    def hub_file(entry, repo, rev, local_only):
        asked.append(local_only)
        raise FileNotFoundError("not in the cache")

    monkeypatch.setattr(hub, "_hub_file", hub_file)
    with pytest.raises(hub.WeightsError, match="neither bundled nor in the Hugging Face cache"):
        create_model("srresnet", 2, pretrained=True, local_files_only=True)
    assert asked == [True]
    with pytest.raises(hub.WeightsError, match="could not download"):
        create_model("srresnet", 2, pretrained=True)
    assert asked == [True, True, False]
