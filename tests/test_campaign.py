"""train.campaign: the plan, warm starts from shipped files, ship-only-if-better, ledgers that add up."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from frb import hub
from frb.ablation import ablation_dir
from frb.bitwise.export import read_packed
from frb.imaging import load_image
from frb.layers import binary_layers
from frb.models import MODELS, create_model
import train.campaign
from train.campaign import Campaign, latent_from_shipped, load_plan, shipped_ledger
from frb.ledger import ledger_total
from train.release import ship

pytestmark = pytest.mark.usefixtures("one_thread")

BUNDLED = hub.read_manifest()
BINARY = [name for name, spec in MODELS.items() if spec.binary]


def test_the_repository_plan_parses_and_every_stage_makes_a_valid_run(tmp_path):
    plan = load_plan()
    campaign = Campaign(plan, tmp_path / "runs", tmp_path / "assets", data=[str(tmp_path)])
    seen = set()
    for stage in plan.stages:
        cfg = campaign.config(stage, 10.0, [])
        assert (cfg.model, cfg.scale, cfg.steps) == (stage.model, stage.scale, stage.steps)
        assert cfg.batch == plan.settings["batch"] and 0 < cfg.checkpoint_minutes <= 10  # a kill loses <= 10 min
        if stage.teacher and stage.ship:  # a shipped student's teacher is planned before it at its scale
            assert (stage.teacher, stage.scale) in seen, stage.name
        seen.add((stage.model, stage.scale))
    names = [s.name for s in plan.stages]
    assert len(set(names)) == len(names)
    trainable = {(n, s) for n, spec in MODELS.items() if spec.arch != "bicubic" for s in (2, 4)}
    assert trainable <= {(s.model, s.scale) for s in plan.stages if s.ship}  # every shipped model gets compute


def test_a_plan_with_an_unknown_flag_is_refused(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text('[[stage]]\nname = "a"\nmodel = "frbc"\nscale = 4\nsteps = 10\nlearning_rate = 1e-3\n')
    with pytest.raises(ValueError, match=r"unknown flags \['learning_rate'\]"):
        load_plan(plan)
    plan.write_text('[[stage]]\nname = "a"\nmodel = "frbc"\nscale = 4\nsteps = 10\nstart = "scratch"\n')
    with pytest.raises(ValueError, match="start must be one of"):
        load_plan(plan)


@pytest.mark.parametrize("entry", BUNDLED, ids=lambda e: f"{e['name']}_x{e['scale']}")
def test_every_shipped_ledger_adds_up(entry):
    ledger = entry["ledger"]
    assert ledger["runs"], "a shipped model without any recorded compute"
    assert ledger["total"] == ledger_total(ledger["runs"])
    for segment in ledger["runs"]:
        assert segment["samples"] == (segment["steps_to"] - segment["steps_from"]) * segment["batch"]
        assert segment["seconds"] > 0 and segment["cpu_seconds"] > 0


@pytest.mark.parametrize("name", BINARY)
def test_latent_weights_rebuilt_from_a_shipped_file_ship_the_same_binary_weights(name, tmp_path):
    shipped = hub.ASSETS_DIR / f"{name}_x2.safetensors"
    if not shipped.is_file():
        pytest.skip(f"{shipped.name} not bundled")
    latent = latent_from_shipped(shipped, name, 2, hub.ASSETS_DIR / f"{MODELS[name].teacher}_x2.safetensors")
    save_file({k: v.contiguous() for k, v in latent.items()}, str(tmp_path / "latent.safetensors"))
    again = ship(name, 2, tmp_path / "latent.safetensors", tmp_path)
    old, new = read_packed(shipped)[0], read_packed(again)[0]
    assert old.keys() == new.keys()
    for key in old:
        if not key.endswith(("weight_bits", "weight_scales")):
            assert np.array_equal(old[key], new[key]), key
    before, after = (binary_layers(create_model(name, 2, pretrained=path)) for path in (shipped, again))
    for layer_name, layer in before.items():
        stored, rebuilt = layer.weight_quantizer, after[layer_name].weight_quantizer
        if stored.num_bases == 1:  # W_b = alpha_c B comes back (a learned alpha_c < 0 as -alpha_c times -B)
            torch.testing.assert_close(rebuilt.value(), stored.value(), rtol=1e-5, atol=0, msg=layer_name)
        else:  # W_b = sum_i alpha_i B_i gives back every base's signs; its scales are estimated again
            assert np.array_equal(stored.bits, rebuilt.bits), layer_name

UNSCALED = [name for name in BINARY
            if not all(layer.weight_quantizer.scaled for layer in binary_layers(create_model(name, 2)).values())]


@pytest.mark.parametrize("name", UNSCALED)
def test_unscaled_binary_weights_get_their_teachers_magnitude_back(name):
    """sign(W) stores no magnitude: latent weights of +/-1 would never flip, so each channel gets the
    mean |W| of the teacher's same layer, with the shipped signs."""
    shipped = hub.ASSETS_DIR / f"{name}_x2.safetensors"
    teacher = hub.ASSETS_DIR / f"{MODELS[name].teacher}_x2.safetensors"
    if not (shipped.is_file() and teacher.is_file()):
        pytest.skip("not bundled")
    with pytest.raises(ValueError, match="needs its teacher's weights"):
        latent_from_shipped(shipped, name, 2)
    latent = latent_from_shipped(shipped, name, 2, teacher)
    signs = create_model(name, 2, pretrained=shipped).state_dict()
    reference = load_file(str(teacher))
    layers = binary_layers(create_model(name, 2))
    assert layers
    for layer_name in layers:
        key = f"{layer_name}.weight"
        magnitude = reference[key].float().abs().mean(dim=tuple(range(1, latent[key].dim())), keepdim=True)
        assert torch.equal(torch.sign(latent[key]), torch.sign(signs[key].float()))
        assert torch.allclose(latent[key].abs(), magnitude.expand_as(latent[key]))
        assert latent[key].abs().max() < 0.5  # not the +/-1 the file stores


def small_benchmark(tmp_path: Path, set5_dir: Path) -> Path:
    folder = tmp_path / "bench" / "Set5"
    folder.mkdir(parents=True)
    Image.fromarray(load_image(set5_dir / "baby.png")[:64, :48]).save(folder / "baby.png")
    return folder


def campaign_with(tmp_path: Path, data_root: Path, plan_text: str, shipped: tuple[str, ...],
                  scales: tuple[int, ...] = (2,)) -> Campaign:
    """A campaign over a copy of some shipped files, training on Set14 (half held out), scoring on a Set5 crop."""
    assets = tmp_path / "assets"
    assets.mkdir()
    entries = [e for e in BUNDLED if (e["name"], e["scale"]) in {(n, s) for n in shipped for s in scales}]
    for e in entries:
        shutil.copyfile(hub.ASSETS_DIR / e["file"], assets / e["file"])
    (assets / hub.MANIFEST_NAME).write_text(json.dumps({"models": entries}))
    (tmp_path / "plan.toml").write_text(plan_text)
    return Campaign(load_plan(tmp_path / "plan.toml"), tmp_path / "runs", assets,
                    data=[str(data_root / "benchmark" / "Set14" / "HR")],
                    benchmarks=[small_benchmark(tmp_path, data_root / "benchmark" / "Set5" / "HR")])


PLAN = """
[settings]
batch = 4
lr_patch = 16
chunk_minutes = 1
checkpoint_minutes = 0.5
holdout_every = 2

[[stage]]
name = "srresnet_x2.a"
model = "srresnet"
scale = 2
steps = 3
lr = 1e-6

[[stage]]
name = "frbc_x2.a"
model = "frbc"
scale = 2
steps = 2
lr = 1e-6
dbt_weight = 0.05
"""


def test_a_chunk_warm_starts_from_the_shipped_file_and_records_its_ledger(tmp_path, data_root):
    campaign = campaign_with(tmp_path, data_root, PLAN, ("srresnet",))
    assert campaign.next_stage().name == "srresnet_x2.a"  # frbc waits for nothing here, but comes second
    stage = campaign.next_stage()
    before = hub.manifest_entry("srresnet", 2, campaign.assets)
    record = campaign.run_chunk(stage, 1.0, log=lambda _: None)
    assert record["finished"] and record["chunks"][-1]["step"] == 3
    assert 20 < record["chunks"][-1]["Set5_psnr"] < 60  # the learning-curve point
    # Warm start: the run began from the shipped weights (float16 -> float32), not from scratch.
    init = load_file(str(campaign.folder(stage) / "init.safetensors"))
    shipped = load_file(str(hub.ASSETS_DIR / "srresnet_x2.safetensors"))
    assert all(torch.equal(init[k], shipped[k].float()) for k in shipped)
    summary = json.loads((campaign.folder(stage) / "summary.json").read_text())
    old_runs = before["ledger"]["runs"]
    assert summary["ledger"][: len(old_runs)] == old_runs  # the lineage is kept
    assert summary["ledger"][-1]["steps_to"] - summary["ledger"][-1]["steps_from"] == 3
    after = hub.manifest_entry("srresnet", 2, campaign.assets)
    if record["chunks"][-1]["shipped"]:
        assert after["ledger"]["runs"] == summary["ledger"] and after["validation"]["images"] == len(campaign.validation_pairs(2)) == 4
        assert after["sha256"] == hub.sha256_file(campaign.assets / after["file"])
    else:
        assert after == before
    assert campaign.next_stage().name == "frbc_x2.a"  # srresnet finished


def test_only_a_better_candidate_replaces_the_shipped_file(tmp_path, data_root, monkeypatch):
    campaign = campaign_with(tmp_path, data_root, PLAN, ("srresnet",))
    stage = campaign.plan.stages[0]
    good = {k: v.float() for k, v in load_file(str(hub.ASSETS_DIR / "srresnet_x2.safetensors")).items()}
    torch.manual_seed(0)
    worse = {k: v + 0.2 * torch.randn_like(v) * v.std() for k, v in good.items()}  # clearly worse, whatever the weights
    summary = {"steps": 5, "finished": True, "ledger": [], "wall_time_s": 1.0}
    campaign.folder(stage).mkdir(parents=True)
    shipped = campaign.assets / "srresnet_x2.safetensors"

    save_file(worse, str(campaign.export(stage)))
    sha = hub.sha256_file(shipped)
    outcome = campaign.consider(stage, summary)
    assert not outcome["shipped"] and outcome["held_out_psnr"] < outcome["shipped_held_out_psnr"]
    assert hub.sha256_file(shipped) == sha  # untouched

    # Now the shipped file is the worse one and the run's export the good one.
    ship("srresnet", 2, campaign.export(stage), campaign.assets)
    save_file(good, str(campaign.export(stage)))
    worse_sha, manifest = hub.sha256_file(shipped), (campaign.assets / hub.MANIFEST_NAME).read_bytes()

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt  # the session ends while the better candidate's benchmarks are scored

    with monkeypatch.context() as patch:
        patch.setattr(train.campaign, "evaluate_model", stopped)
        with pytest.raises(KeyboardInterrupt):
            campaign.consider(stage, summary)
    assert hub.sha256_file(shipped) == worse_sha  # the shipped file and its manifest entry still agree
    assert (campaign.assets / hub.MANIFEST_NAME).read_bytes() == manifest
    outcome = campaign.consider(stage, summary)
    assert outcome["shipped"] and outcome["held_out_psnr"] > outcome["shipped_held_out_psnr"]
    entry = hub.manifest_entry("srresnet", 2, campaign.assets)
    assert entry["sha256"] == hub.sha256_file(shipped) and set(entry["metrics"]) == {"Set5"}


def test_a_candidate_the_packed_engine_scores_otherwise_is_not_shipped(tmp_path, data_root, monkeypatch):
    campaign = campaign_with(tmp_path, data_root, PLAN, ("srresnet",))
    stage = campaign.plan.stages[1]  # frbc x2, no shipped file yet: any candidate would ship
    campaign.folder(stage).mkdir(parents=True)
    latent = latent_from_shipped(hub.ASSETS_DIR / "frbc_x2.safetensors", "frbc", 2)
    save_file({k: v.contiguous() for k, v in latent.items()}, str(campaign.export(stage)))
    summary = {"steps": 5, "finished": False, "ledger": [], "wall_time_s": 1.0}
    scored = train.campaign.evaluate_pairs

    def engine_off_by(db):
        def evaluate(*args, backend="torch", **kwargs):
            result = scored(*args, backend=backend, **kwargs)
            return {**result, "psnr": result["psnr"] + (db if backend == "bitwise" else 0.0)}
        return evaluate

    with monkeypatch.context() as patch:
        patch.setattr(train.campaign, "evaluate_pairs", engine_off_by(0.05))
        outcome = campaign.consider(stage, summary)
    assert not outcome["shipped"] and outcome["refused"].startswith("the packed engine scores")
    assert f"the torch backend {outcome['Set5_psnr']:.3f}" in outcome["refused"]
    assert not (campaign.assets / "frbc_x2.safetensors").exists() and hub.manifest_entry("frbc", 2, campaign.assets) is None
    with monkeypatch.context() as patch:  # within the tolerance: shipped
        patch.setattr(train.campaign, "evaluate_pairs", engine_off_by(0.005))
        assert campaign.consider(stage, summary)["shipped"]
    assert hub.manifest_entry("frbc", 2, campaign.assets)["sha256"] == hub.sha256_file(campaign.assets / "frbc_x2.safetensors")


def test_a_finished_or_teacherless_stage_is_skipped(tmp_path, data_root):
    campaign = campaign_with(tmp_path, data_root, PLAN, ())  # no shipped srresnet x2: frbc has no teacher
    first, second = campaign.plan.stages
    assert campaign.next_stage() == first
    campaign.save_record(first, {"finished": True, "chunks": []})
    assert campaign.next_stage() is None  # frbc x2 waits for its teacher


def test_a_new_stage_starts_from_the_better_of_an_earlier_export_and_the_shipped_file(tmp_path, data_root):
    plan = PLAN + '\n[[stage]]\nname = "srresnet_x2.b"\nmodel = "srresnet"\nscale = 2\nsteps = 2\n'
    campaign = campaign_with(tmp_path, data_root, plan, ("srresnet",))
    first, later = campaign.plan.stages[0], campaign.plan.stages[2]
    shipped = latent_from_shipped(campaign.assets / "srresnet_x2.safetensors", "srresnet", 2)
    export = {k: v * 0.5 for k, v in shipped.items()}
    campaign.folder(first).mkdir(parents=True)
    save_file(export, str(campaign.export(first)))
    best = campaign.shipped_score("srresnet", 2)
    for score, expected in ((best - 1.0, shipped), (best + 1.0, export)):
        campaign.save_record(first, {"finished": True, "chunks": [{"held_out_psnr": score, "step": 3, "shipped": False}]})
        tensors, _ = campaign.best_latent("srresnet", 2, later)
        assert all(torch.equal(tensors[k], expected[k]) for k in expected)


X4_BODY_PLAN = PLAN.split("[[stage]]")[0] + """
[[stage]]
name = "srresnet_x2.a"
model = "srresnet"
scale = 2
start = "x4-body"
steps = 2

[[stage]]
name = "swinir_s_x2.a"
model = "swinir_s"
scale = 2
start = "x4-body"
steps = 2

[[stage]]
name = "frbc_x2.a"
model = "frbc"
scale = 2
start = "x4-body"
steps = 2
"""


def test_an_x2_stage_starts_from_what_fits_of_its_x4_twin(tmp_path, data_root):
    campaign = campaign_with(tmp_path, data_root, X4_BODY_PLAN, ("srresnet", "swinir_s", "frbc"), scales=(2, 4))
    for stage in campaign.plan.stages:
        x4 = latent_from_shipped(campaign.assets / f"{stage.model}_x4.safetensors", stage.model, 4)
        own = latent_from_shipped(campaign.assets / f"{stage.model}_x2.safetensors", stage.model, 2)
        x2 = create_model(stage.model, 2).state_dict()
        flags, ledger = campaign.prepare(stage)
        init = load_file(str(campaign.folder(stage) / "init.safetensors"))
        x4_ledger = shipped_ledger(hub.manifest_entry(stage.model, 4, campaign.assets))
        if not MODELS[stage.model].binary:  # every x4 tensor that fits at x2, over the model's own x2 weights
            fits = {k for k in x4 if k in x2 and x2[k].shape == x4[k].shape}
            assert set(init) == set(x2) and fits
            if stage.model == "swinir_s":  # one upsampling conv, whose shape depends on the scale: x2's own
                assert set(x2) - fits and all(k.startswith("upsample.") for k in set(x2) - fits)
            assert all(torch.equal(init[k], x4[k] if k in fits else own[k]) for k in init)
            x2_ledger = shipped_ledger(hub.manifest_entry(stage.model, 2, campaign.assets))
            assert ledger == x4_ledger + [seg for seg in x2_ledger if seg not in x4_ledger]  # both lineages
            assert "--teacher" not in flags
        else:  # a binary student: its binary body only, over the x2 teacher's head and tail
            assert all(torch.equal(init[k], x4[k]) for k in init) and ledger == x4_ledger
            body = tuple(f"{n}." for n in binary_layers(create_model(stage.model, 2)))
            assert set(init) == {k for k in x4 if k.startswith(body)}
            assert "--teacher" in flags


def test_learning_curves_come_from_the_chunks_and_are_drawn(tmp_path, data_root):
    from train.report import curve_points, plot_curves

    campaign = campaign_with(tmp_path, data_root, PLAN, ())
    first, second = campaign.plan.stages
    campaign.save_record(first, {"finished": False, "chunks": [
        {"step": 3, "held_out_psnr": 30.0, "shipped": True, "cpu_hours": 0.5, "metrics": {"Set5": 36.1}},
        {"step": 6, "held_out_psnr": 30.2, "shipped": False, "cpu_hours": 1.0, "Set5_psnr": 36.4}]})
    campaign.save_record(second, {"finished": False, "chunks": [{"step": 2, "held_out_psnr": 20.0, "shipped": False}]})
    assert curve_points(campaign) == {"srresnet x2": [(0.5, 36.1), (1.0, 36.4)]}
    plot_curves(curve_points(campaign), tmp_path / "curves.png")
    image = np.asarray(Image.open(tmp_path / "curves.png").convert("RGB"))
    assert image.shape == (320, 900, 3) and (image != 255).any()
    plot_curves({"frbc x4": [(1.0, 30.5)], **curve_points(campaign)}, tmp_path / "two.png")  # one panel per scale
    two = np.asarray(Image.open(tmp_path / "two.png").convert("RGB"))
    assert two.shape == (640, 900, 3) and (two[:320] != 255).any() and (two[320:] != 255).any()
    with pytest.raises(ValueError, match="no chunk"):
        plot_curves({}, tmp_path / "none.png")


def test_every_trained_model_has_its_own_curve_colour_at_both_scales(tmp_path):
    from train.report import curve_colour, plot_curves

    trained = [name for name, spec in MODELS.items() if spec.needs_weights]
    assert len({curve_colour(name) for name in trained}) == len(trained)
    drawn = {}
    for scale in ("x4", "x2"):
        plot_curves({f"frbc {scale}": [(1.0, 30.5), (2.0, 31.0)]}, tmp_path / f"{scale}.png")
        pixels = np.asarray(Image.open(tmp_path / f"{scale}.png").convert("RGB")).reshape(-1, 3)
        drawn[scale] = {tuple(p) for p in pixels} & {curve_colour(name) for name in trained}
    assert drawn["x4"] == drawn["x2"] == {curve_colour("frbc")}


def test_the_bicubic_bar_is_drawn_inside_the_range_of_its_panel(tmp_path):
    from train.report import plot_curves

    grey = (90, 90, 90)
    for bicubic, path in (({}, tmp_path / "without.png"), ({"x4": 28.43}, tmp_path / "with.png")):
        plot_curves({"frbc x4": [(1.0, 30.5), (2.0, 31.0)]}, path, bicubic)
    dashed_rows = lambda path: np.flatnonzero(  # rows with a grey dash across the panel, not text's grey edges
        (np.asarray(Image.open(path).convert("RGB")) == grey).all(axis=2).sum(axis=1) > 100)
    rows = dashed_rows(tmp_path / "with.png")
    assert len(dashed_rows(tmp_path / "without.png")) == 0 and len(rows) == 1
    assert 30 < rows[0] < 320 - 50  # inside the plot area, not clipped: the range stretches to 28.43


def test_readme_blocks_are_replaced_between_their_markers_only():
    from train.report import replace_blocks

    text = "intro\n<!-- a:begin -->\nold\n<!-- a:end -->\nrest\n"
    assert replace_blocks(text, {"a": "new\n"}) == "intro\n<!-- a:begin -->\nnew\n<!-- a:end -->\nrest\n"
    with pytest.raises(ValueError, match="expected one <!-- b:begin -->"):
        replace_blocks(text, {"b": "x\n"})


def test_the_report_rewrites_only_its_readme_blocks_and_draws_the_curves(tmp_path, data_root, capsys):
    from train.report import main

    campaign = campaign_with(tmp_path, data_root, PLAN, ("srresnet",))
    names = ("results-x4", "results-x2", "campaign-chunks", "recipe-sweeps", "ablation", "table1")
    readme = tmp_path / "README.md"
    readme.write_text("intro\n" + "".join(f"<!-- {n}:begin -->\nold\n<!-- {n}:end -->\ntext {n}\n" for n in names))
    where = ["--plan", str(tmp_path / "plan.toml"), "--runs", str(campaign.runs), "--assets", str(campaign.assets),
             "--benchmarks", *map(str, campaign.benchmarks), "--readme", str(readme)]
    unmarked = tmp_path / "plain.md"
    unmarked.write_text("no blocks here\n")
    assert main([*where[:-1], str(unmarked)]) == 1  # a clear error, and the file is left as it was
    assert "cannot rewrite" in capsys.readouterr().err and unmarked.read_text() == "no blocks here\n"
    assert main([*where, "--plot", str(tmp_path / "curves.png")]) == 1
    assert "has a Set5 score yet" in capsys.readouterr().err and not (tmp_path / "curves.png").exists()
    text = readme.read_text()
    assert "old" not in text and all(f"text {n}\n" in text for n in names) and text.startswith("intro\n")
    x2 = text.split("<!-- results-x2:begin -->")[1].split("<!-- results-x2:end -->")[0]
    assert "| bicubic |" in x2 and "| srresnet |" in x2 and "| frbc |" not in x2  # only what is shipped
    assert "No srresnet x4 weights are shipped yet" in text  # Table 1 needs FRBC x4's teacher
    first = campaign.plan.stages[0]
    campaign.save_record(first, {"finished": False, "chunks": [
        {"step": 3, "held_out_psnr": 30.0, "shipped": True, "cpu_hours": 0.5, "Set5_psnr": 36.1}]})
    assert main([*where, "--plot", str(tmp_path / "curves.png")]) == 0
    assert "| srresnet_x2.a | 3 | 0.50 | 30.000 |" in readme.read_text() and (tmp_path / "curves.png").is_file()


def test_the_readmes_table1_is_the_kernel_views_for_the_shipped_teacher(tmp_path):
    from frb.kernel_view import kernel_view
    from train.report import table1_block

    campaign = Campaign(load_plan(), tmp_path / "runs", hub.ASSETS_DIR, data=[str(tmp_path)])
    if campaign.shipped_path("srresnet", 4) is None:
        pytest.skip("no bundled SRResNet x4 weights")
    table = table1_block(campaign)
    for channel, vanilla, frb, improvement in kernel_view("frbc", "body.0.conv1", 4).rows[:12]:
        assert f"| {channel} | {vanilla:.4f} | {frb:.4f} | {improvement:.1f} |" in table
    assert "| range, FRB supplement Table 1 | 0.5942-0.6679 | 0.3321-0.5153 | 22.32-44.10 |" in table


SWEEP_PLAN = PLAN + """
[[stage]]
name = "recipe_x2"
sweep = ["frbc", "reactnet"]
scale = 2
steps = 2
lr = [1e-6, 2e-6]
warmup_steps = 1

[[stage]]
name = "frbc_x2.b"
model = "frbc"
scale = 2
recipe = "recipe_x2"
steps = 2
lr = 5e-6
"""


def test_a_sweep_expands_into_one_unshipped_trial_per_model_and_grid_point(tmp_path):
    (tmp_path / "plan.toml").write_text(SWEEP_PLAN)
    plan = load_plan(tmp_path / "plan.toml")
    trials = [s for s in plan.stages if s.sweep]
    assert [t.name for t in trials] == ["recipe_x2.frbc.lr=1e-06", "recipe_x2.frbc.lr=2e-06",
                                        "recipe_x2.reactnet.lr=1e-06", "recipe_x2.reactnet.lr=2e-06"]
    assert all(not t.ship and t.start == "best" and t.steps == 2 and t.flags["warmup_steps"] == 1 for t in trials)
    assert [t.flags["lr"] for t in trials] == [t.grid["lr"] for t in trials] == [1e-6, 2e-6, 1e-6, 2e-6]
    assert plan.stages[-1].recipe == "recipe_x2"
    for text, message in ((SWEEP_PLAN.replace('recipe = "recipe_x2"', 'recipe = "nope"'), "no earlier sweep 'nope'"),
                          (SWEEP_PLAN.replace("lr = [1e-6, 2e-6]", "lr = 1e-6"), "at least one flag with a list")):
        (tmp_path / "plan.toml").write_text(text)
        with pytest.raises(ValueError, match=message):
            load_plan(tmp_path / "plan.toml")


def test_a_stage_takes_its_models_best_trial_once_when_it_starts(tmp_path, data_root):
    from train.report import history_table, sweep_table

    campaign = campaign_with(tmp_path, data_root, SWEEP_PLAN, ("srresnet", "frbc"))
    for stage in campaign.plan.stages[:2]:
        campaign.save_record(stage, {"finished": True, "chunks": []})
    frbc_trials = [t for t in campaign.plan.stages if t.sweep and t.model == "frbc"]
    stage = campaign.plan.stages[-1]
    assert campaign.trials(stage) == frbc_trials
    assert campaign.next_stage() == frbc_trials[0]  # the trials come first
    campaign.save_record(frbc_trials[0], {"finished": True, "chunks": [{"step": 2, "held_out_psnr": 30.0, "shipped": False}]})
    campaign.save_record(frbc_trials[1], {"finished": True, "chunks": [{"step": 2, "held_out_psnr": 30.5, "shipped": False}]})
    for trial in campaign.plan.stages:
        if trial.sweep and trial.model == "reactnet":  # another model's trials do not hold frbc back
            campaign.save_record(trial, {"finished": True, "chunks": [{"step": 2, "held_out_psnr": 40.0, "shipped": False}]})
    assert campaign.next_stage() == stage
    assert campaign.config(stage, 1.0, []).lr == 5e-6  # not started: its own flags
    campaign.prepare(stage)
    assert campaign.config(stage, 1.0, []).lr == 2e-6  # the better frbc trial
    campaign.save_record(frbc_trials[0], {"finished": True, "chunks": [{"step": 2, "held_out_psnr": 31.0, "shipped": False}]})
    campaign.prepare(stage)
    assert campaign.config(stage, 1.0, []).lr == 2e-6  # chosen once: a later record changes nothing
    table = sweep_table(campaign)
    assert "| recipe_x2 | frbc x2 | lr 2e-06 | 2/2 | 0.00 | 30.500 | frbc_x2.b |" in table
    assert "recipe_x2" not in history_table(campaign)  # trials are not chunks of the models' lineage
    # A new machine (run folder gone) reads the trials and the choice from the journal beside the weights.
    elsewhere = Campaign(campaign.plan, tmp_path / "new_machine", campaign.assets, data=campaign.data)
    assert elsewhere.next_stage() == stage and elsewhere.config(stage, 1.0, []).lr == 2e-6
    assert sweep_table(elsewhere) == table


def test_a_new_machine_takes_a_stage_up_at_the_step_its_shipped_weights_reached(tmp_path, data_root):
    campaign = campaign_with(tmp_path, data_root, PLAN, ("srresnet",))
    first = campaign.plan.stages[0]
    # What the lost machine left: a chunk of srresnet_x2.a that shipped its step-2 weights.
    manifest = json.loads((campaign.assets / hub.MANIFEST_NAME).read_text())
    lineage = manifest["models"][0]["ledger"]["runs"]
    lineage.append({**lineage[-1], "run": first.name, "steps_from": 0, "steps_to": 2, "samples": 8})
    (campaign.assets / hub.MANIFEST_NAME).write_text(json.dumps(manifest))
    old_chunk = {"step": 2, "held_out_psnr": 30.0, "shipped": True}
    campaign.save_record(first, {"finished": False, "chunks": [old_chunk]})
    shutil.rmtree(campaign.runs)

    new = Campaign(campaign.plan, tmp_path / "new_machine", campaign.assets, data=campaign.data, benchmarks=campaign.benchmarks)
    assert new.next_stage() == first and new.taken_up_at(first) == 2
    assert new.taken_up_at(campaign.plan.stages[1]) == 0  # not started: starts at step 0
    record = new.run_chunk(first, 1.0, log=lambda _: None)
    assert record["finished"] and record["chunks"][0] == old_chunk and record["chunks"][1]["step"] == 3
    init = load_file(str(new.folder(first) / "init.safetensors"))
    shipped = load_file(str(campaign.assets / "srresnet_x2.safetensors"))
    assert all(torch.equal(init[k], shipped[k].float()) for k in shipped)  # the weights of step 2
    summary = json.loads((new.folder(first) / "summary.json").read_text())
    assert summary["ledger"][:-1] == lineage  # the compute of steps 0-2 is kept once
    assert (summary["ledger"][-1]["steps_from"], summary["ledger"][-1]["steps_to"]) == (2, 3)
    assert new.taken_up_at(first) == 0  # it has its own run state now
    assert Campaign(campaign.plan, tmp_path / "third_machine", campaign.assets).record(first) == record


def test_a_stage_whose_last_step_shipped_unrecorded_is_taken_up_at_its_last_step(tmp_path, data_root):
    campaign = campaign_with(tmp_path, data_root, PLAN, ("srresnet",))
    first = campaign.plan.stages[0]
    manifest = json.loads((campaign.assets / hub.MANIFEST_NAME).read_text())
    lineage = manifest["models"][0]["ledger"]["runs"]
    lineage.append({**lineage[-1], "run": first.name, "steps_from": 0, "steps_to": first.steps})
    (campaign.assets / hub.MANIFEST_NAME).write_text(json.dumps(manifest))
    campaign.save_record(first, {"finished": False, "chunks": [{"step": 2, "held_out_psnr": 30.0, "shipped": True}]})
    new = Campaign(campaign.plan, tmp_path / "new_machine", campaign.assets, data=campaign.data)
    assert new.taken_up_at(first) == first.steps - 1  # one step to close the stage, a valid --start-step
    assert new.config(first, 1.0, ["--init", "w.safetensors"]).start_step == first.steps - 1


def test_redo_forgets_stale_stages_so_they_train_again_and_refuses_what_shipped(tmp_path, data_root, capsys):
    from train.campaign import main

    campaign = campaign_with(tmp_path, data_root, SWEEP_PLAN, ("srresnet", "frbc"))
    stages = {s.name: s for s in campaign.plan.stages}
    frbc_trials = [name for name in stages if name.startswith("recipe_x2.frbc.")]
    campaign.save_record(stages["srresnet_x2.a"], {"finished": True, "chunks": [{"step": 3, "held_out_psnr": 30.0, "shipped": True}]})
    campaign.save_record(stages["frbc_x2.a"], {"finished": True, "chunks": []})
    for name, stage in stages.items():
        if stage.sweep:
            campaign.save_record(stage, {"finished": True, "chunks": [{"step": 2, "held_out_psnr": 30.0, "shipped": False}]})
    (campaign.folder(stages[frbc_trials[0]]) / "last.pt").write_bytes(b"state")
    assert campaign.next_stage() == stages["frbc_x2.b"]

    with pytest.raises(ValueError, match="srresnet_x2.a shipped weights and cannot be redone"):
        campaign.redo(["srresnet_x2.a"])
    bundle = ablation_dir(campaign.assets) / "recipe_x2.reactnet.lr=1e-06.safetensors"
    bundle.parent.mkdir()
    bundle.write_bytes(b"a bundled ablation result")
    with pytest.raises(ValueError, match="recipe_x2.reactnet.lr=1e-06 is bundled in"):
        campaign.redo(["recipe_x2.reactnet"])
    args = ["--plan", str(tmp_path / "plan.toml"), "--runs", str(campaign.runs), "--assets", str(campaign.assets)]
    for unknown in ("recipe_x3", "recipe_x2.frbc.lr=1e-0"):  # names, not prefixes: lr=1e-06 stays
        assert main(args + ["--redo", unknown]) == 1
        assert f"no stage, sweep or <sweep>.<model> of the plan is named {unknown}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(args + ["--status", "--redo", "recipe_x2"])
    assert main(args + ["--redo", "recipe_x2.frbc"]) == 0
    assert capsys.readouterr().out.strip() == f"forgotten, to be trained again: {', '.join(frbc_trials)}"
    assert not campaign.folder(stages[frbc_trials[0]]).exists()
    assert set(campaign.journal()["stages"]) == set(stages) - set(frbc_trials) - {"frbc_x2.b"}
    assert campaign.next_stage() == stages[frbc_trials[0]]  # trained again, before the stage that uses them

    for name in frbc_trials:
        campaign.save_record(stages[name], {"finished": True, "chunks": [{"step": 2, "held_out_psnr": 31.0, "shipped": False}]})
    campaign.choose_recipe(stages["frbc_x2.b"])
    with pytest.raises(ValueError, match="frbc_x2.b already took its recipe from recipe_x2.frbc.lr=1e-06"):
        campaign.redo(["recipe_x2.frbc"])
    assert campaign.redo(["recipe_x2.frbc", "frbc_x2.b"]) == frbc_trials + ["frbc_x2.b"]
    assert campaign.recipe_choice(stages["frbc_x2.b"]) is None and "frbc_x2.b" not in campaign.journal()["recipes"]


def test_a_trial_chunk_is_scored_on_held_out_images_and_never_shipped(tmp_path, data_root):
    campaign = campaign_with(tmp_path, data_root, SWEEP_PLAN, ("srresnet", "frbc"))
    trial = next(t for t in campaign.plan.stages if t.sweep)
    shipped = campaign.assets / "frbc_x2.safetensors"
    sha, manifest = hub.sha256_file(shipped), (campaign.assets / hub.MANIFEST_NAME).read_text()
    record = campaign.run_chunk(trial, 1.0, log=lambda _: None)
    assert record["finished"] and set(record["chunks"][-1]) == {"step", "held_out_psnr", "shipped", "time", "cpu_hours"}
    assert not record["chunks"][-1]["shipped"] and 10 < record["chunks"][-1]["held_out_psnr"] < 60
    assert hub.sha256_file(shipped) == sha and (campaign.assets / hub.MANIFEST_NAME).read_text() == manifest


ABLATION_PLAN = PLAN.split("[[stage]]")[0] + """
[[stage]]
name = "ablation_vanilla_x2"
model = "frbc"
scale = 2
ship = false
start = "teacher"
srb = false
dbt = false
steps = 2
lr = 1e-6

[[stage]]
name = "dbt_x2"
sweep = ["frbc"]
scale = 2
start = "teacher"
steps = 2
lr = 1e-6
dbt_weight = [0.05, 0.5]

[[stage]]
name = "ablation_srb_dbt_x2"
model = "frbc"
scale = 2
recipe = "dbt_x2"
ship = false
start = "teacher"
steps = 2
lr = 1e-6
dbt_weight = 0.05
"""


def test_finished_ablation_stages_are_bundled_with_their_variant_and_measured_again_by_eval(
        tmp_path, data_root, monkeypatch, capsys):
    from frb.__main__ import main
    from frb.ablation import ablation_table, read_ablation

    campaign = campaign_with(tmp_path, data_root, ABLATION_PLAN, ("srresnet", "frbc"))
    shipped = campaign.assets / "frbc_x2.safetensors"
    sha, manifest = hub.sha256_file(shipped), (campaign.assets / hub.MANIFEST_NAME).read_text()
    stages = campaign.plan.stages
    records = [campaign.run_chunk(stage, 1.0, log=lambda _: None) for stage in stages]
    assert all(r["finished"] for r in records) and campaign.next_stage() is None
    assert hub.sha256_file(shipped) == sha and (campaign.assets / hub.MANIFEST_NAME).read_text() == manifest

    trials = [(stage, record) for stage, record in zip(stages, records) if stage.sweep]
    assert [stage.grid for stage, _ in trials] == [{"dbt_weight": 0.05}, {"dbt_weight": 0.5}]
    for stage, record in trials:  # the DBT sweep starts where the ablation does: the teacher alone
        assert stage.start == "teacher" and not (campaign.folder(stage) / "init.safetensors").exists()
        assert record["ledger"]["steps"] == 2 and record["ledger"]["runs"] == 1
    best = max(trials, key=lambda item: item[1]["chunks"][-1]["held_out_psnr"])[0]
    assert campaign.recipe_choice(stages[-1])["trial"] == best.name

    vanilla, both = read_ablation(campaign.assets)  # the paper's order, not the plan's
    assert (vanilla["stage"], vanilla["srb"], vanilla["dbt_weight"]) == ("ablation_vanilla_x2", False, 0.0)
    assert (both["stage"], both["srb"], both["dbt_weight"]) == ("ablation_srb_dbt_x2", True, best.grid["dbt_weight"])
    for entry, record in ((vanilla, records[0]), (both, records[-1])):
        path = campaign.assets / "ablation" / entry["file"]
        assert entry["sha256"] == hub.sha256_file(path) and entry["bytes"] == path.stat().st_size
        assert entry["metrics"] == record["chunks"][-1]["metrics"] and entry["steps"] == 2
        assert entry["validation"]["held_out_psnr"] == record["chunks"][-1]["held_out_psnr"]
        assert entry["ledger"]["total"]["steps"] == 2 and entry["ledger"]["total"]["runs"] == 1  # from the teacher alone
    options = [json.loads(read_packed(campaign.assets / "ablation" / e["file"])[1]["method_options"]) for e in (vanilla, both)]
    assert options[0] == {"second_order": False} and options[1].get("second_order", True) is True
    table = ablation_table([vanilla, both])
    assert "| vanilla (first order, no DBT) | no | no | x2 | 2 |" in table
    assert f"| SRB + DBT (FRB) | yes | yes ({best.grid['dbt_weight']}) | x2 | 2 |" in table
    assert "Not finished yet at x2 (section 6 of `train/plan.toml`): +SRB, +DBT." in table
    assert "Not finished yet" not in ablation_table([vanilla, {**vanilla, "srb": True}, {**both, "srb": False}, both])

    monkeypatch.setattr(hub, "ASSETS_DIR", campaign.assets)
    bench = str(campaign.benchmarks[0])
    capsys.readouterr()  # the training runs' output
    assert main(["eval", "--ablation", "--data", bench, "--backend", "torch", "--json"]) == 0
    measured = json.loads(capsys.readouterr().out)["ablation"]
    assert [m["variant"] for m in measured] == ["vanilla (first order, no DBT)", "SRB + DBT (FRB)"]
    for now, entry in zip(measured, (vanilla, both)):  # the bundled file measured again, as the campaign did
        assert now["metrics"]["Set5"]["psnr"] == pytest.approx(entry["metrics"]["Set5"]["psnr"], abs=1e-4)
    assert main(["eval", "--ablation", "--data", bench, "--json"]) == 0
    for now, entry in zip(json.loads(capsys.readouterr().out)["ablation"], (vanilla, both)):
        # The packed engine users run: on this one 64x48 crop a rounding level in a few pixels moves
        # the PSNR by hundredths (full Set5 agreement, 0.01 dB, is tested on the shipped files).
        assert abs(now["metrics"]["Set5"]["psnr"] - entry["metrics"]["Set5"]["psnr"]) < 0.05

    with pytest.raises(SystemExit, match=r"^error: image folder not found: .*nowhere$"):
        main(["eval", "--ablation", "--data", str(tmp_path / "nowhere")])

    damaged = campaign.assets / "ablation" / vanilla["file"]
    data = bytearray(damaged.read_bytes())
    data[-1] ^= 1
    damaged.write_bytes(bytes(data))
    with pytest.raises(SystemExit, match="ablation_vanilla_x2.safetensors do not match the manifest"):
        main(["eval", "--ablation", "--data", bench])


def test_status_gives_the_time_left_at_each_models_measured_rate(tmp_path, data_root):
    plan = PLAN + '\n[[stage]]\nname = "srresnet_x2.b"\nmodel = "srresnet"\nscale = 2\nsteps = 720\n'
    campaign = campaign_with(tmp_path, data_root, plan, ())
    first = campaign.plan.stages[0]
    campaign.folder(first).mkdir(parents=True)
    segments = [  # the shipped file's lineage (another run) does not count; pauses are not in "seconds"
        {"run": "srresnet_x2", "steps_from": 0, "steps_to": 900, "seconds": 100.0},
        {"run": first.name, "steps_from": 0, "steps_to": 1, "seconds": 1.0},
        {"run": first.name, "steps_from": 1, "steps_to": 2, "seconds": 1.0}]
    (campaign.folder(first) / "summary.json").write_text(json.dumps({"ledger": segments}))
    campaign.save_record(first, {"finished": False, "chunks": [{"step": 2, "held_out_psnr": 30.0, "shipped": False}]})
    assert campaign.step_rate(first) == 1.0 and campaign.step_rate(campaign.plan.stages[2]) == 1.0
    assert campaign.step_rate(campaign.plan.stages[1]) is None  # frbc x2 has not trained here
    lines = campaign.status()
    assert lines[0].endswith("started, step 2/3, held-out 30.000 dB, ~0.0 h left at 1.00 steps/s")
    assert lines[2].endswith("waiting, ~0.2 h left at 1.00 steps/s")  # 720 steps at srresnet x2's rate
    assert lines[-1] == "left: ~0.2 h of training for the stages with a measured step rate; 1 stage(s) not measured yet"
