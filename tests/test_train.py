"""Training: loss goes down, DBT, exact resume, DDP, NaN stop, data loading, flags and schedule."""
from __future__ import annotations

import functools
import math
import os
import shutil
import socket
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from PIL import Image
from safetensors.torch import load_file, save_file

from train.checkpoint import load_checkpoint
from train.data import CropSampler
from train.distill import FeatureRecorder, attention_map, dbt_loss
from frb.models import create_model
from train.loop import REWARM_STEPS, TrainingDiverged, build_models, init_matching, lr_factor, train
from train.presets import TrainConfig, config_from_args


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(tmp_path: Path, data: Path, **overrides) -> TrainConfig:
    """A run of a few steps on small patches on the CPU, no validation, fp32 unless asked."""
    values = dict(
        device="cpu", model="srresnet", scale=2, num_block=1, lr_patch=8, batch=4, steps=4, ema=0.0, bf16=False,
        channels_last=False, data=[str(data)], val_data="", out_dir=str(tmp_path / "run"),
        save_every=1000, log_every=1000,
    )
    values.update(overrides)
    return TrainConfig(**values)


def write_teacher(path: Path, scale: int, num_block: int) -> str:
    torch.manual_seed(1)
    teacher = create_model("srresnet", scale, depth=num_block)
    save_file({k: v.contiguous() for k, v in teacher.state_dict().items()}, str(path))
    return str(path)


def held_out_l1(model: torch.nn.Module, hr: np.ndarray, scale: int) -> float:
    """L1 of the model's SR against a fixed HR crop."""
    from frb.imaging import make_lr, to_tensor

    hr, lr = make_lr(hr, scale)
    with torch.no_grad():
        return (model.float().eval()(to_tensor(lr)) - to_tensor(hr)).abs().mean().item()


def test_tiny_run_on_real_images_lowers_the_loss(tmp_path, data_root):
    # SRResNet starts as (almost) its bilinear skip; 60 steps on one real 64x64 crop must beat that
    # start on the same crop (measured: L1 0.0526 -> 0.0509 on AVX-512, a 1.5 % gain on AVX2).
    # Judged on the whole crop before and after, not on the noisy per-batch training loss, and
    # without a margin: how far 60 steps get depends on the CPU's float summation order.
    from frb.imaging import load_image

    crop = load_image(data_root / "benchmark" / "Set5" / "HR" / "butterfly.png")[64:128, 64:128]
    (tmp_path / "one").mkdir()
    Image.fromarray(crop).save(tmp_path / "one" / "crop.png")
    cfg = tiny_config(tmp_path, tmp_path / "one", scale=4, num_block=1, batch=8, steps=60, lr=2e-3, seed=1)
    torch.manual_seed(cfg.seed)
    before = held_out_l1(build_models(cfg)[0], crop, 4)
    result = train(cfg)
    assert result.finished and len(result.losses) == 60
    after = held_out_l1(result.model, crop, 4)
    assert after < before, (before, after)
    assert (Path(cfg.out_dir) / "srresnet_x4.safetensors").is_file()
    assert (Path(cfg.out_dir) / "summary.json").is_file()


def test_dbt_loss_is_zero_for_identical_features_and_positive_otherwise():
    torch.manual_seed(0)
    conv = [torch.randn(2, 8, 5, 6) for _ in range(3)]
    tokens = [torch.randn(2, 30, 8) for _ in range(3)]
    for feats in (conv, tokens):
        assert dbt_loss(feats, [f.clone() for f in feats]).item() == pytest.approx(0.0, abs=1e-7)
        assert dbt_loss(feats, [f + torch.randn_like(f) for f in feats]).item() > 0.01
    a = attention_map(conv[0])
    assert a.shape == (2, 30) and torch.allclose(a.norm(dim=1), torch.ones(2))
    # Scale invariance: the normalised map ignores the feature magnitude.
    assert torch.allclose(attention_map(3.0 * conv[0]), a, atol=1e-6)


def test_dbt_gradient_reaches_the_student(tmp_path, data_root):
    teacher_path = write_teacher(tmp_path / "t.safetensors", scale=2, num_block=2)
    cfg = tiny_config(tmp_path, data_root, model="frbc", num_block=2, dbt=True, teacher=teacher_path)
    student, teacher = build_models(cfg)
    rec_s, rec_t = FeatureRecorder(student), FeatureRecorder(teacher)
    x = torch.rand(2, 3, 12, 12)
    student(x)
    with torch.no_grad():
        teacher(x)
    loss = dbt_loss(rec_s.take(), rec_t.take())
    assert loss.item() > 0
    loss.backward()
    for name in ("conv_first.weight", "body.0.conv1.weight", "body.1.conv2.weight", "body.0.conv1.input_quantizer.threshold"):
        grad = student.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert student.get_parameter("conv_last.weight").grad is None  # after the last block
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())


def test_a_compiled_dbt_run_records_its_blocks_after_a_compiled_run_without_dbt_in_one_process(
        tmp_path, set5_dir, monkeypatch):
    # The campaign runs its stages in one process: the first-order DBT ablation row follows the
    # first-order row without DBT, whose compiled graph (the same code, no hooks) dynamo would reuse.
    compile_eagerly = functools.partial(torch.compile, backend="eager")  # dynamo's caching, not inductor's code
    monkeypatch.setattr(torch, "compile", compile_eagerly)
    teacher = write_teacher(tmp_path / "t.safetensors", scale=2, num_block=1)
    common = dict(model="frbc", num_block=1, srb=False, teacher=teacher, steps=2, warmup_steps=1, compile=True)
    train(tiny_config(tmp_path / "plain", set5_dir, dbt=False, **common))
    result = train(tiny_config(tmp_path / "dbt", set5_dir, dbt=True, **common))
    assert result.finished and result.step == 2


def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(tmp_path, set5_dir):
    teacher = write_teacher(tmp_path / "t.safetensors", scale=2, num_block=1)
    common = dict(model="frbc", num_block=1, dbt=True, teacher=teacher, ema=0.9, steps=6, warmup_steps=2, save_every=2)
    train(tiny_config(tmp_path / "a", set5_dir, **common))
    first = train(tiny_config(tmp_path / "b", set5_dir, stop_at=3, **common))
    assert not first.finished and first.step == 3
    assert load_checkpoint(tmp_path / "b" / "run" / "last.pt")["step"] == 3
    resumed = train(tiny_config(tmp_path / "b", set5_dir, resume=True, **common))
    assert resumed.finished and resumed.step == 6 and len(resumed.losses) == 3

    a, b = load_checkpoint(tmp_path / "a/run/last.pt"), load_checkpoint(tmp_path / "b/run/last.pt")
    for part in ("model", "ema"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    wa, wb = load_file(str(tmp_path / "a/run/frbc_x2.safetensors")), load_file(str(tmp_path / "b/run/frbc_x2.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def _ddp_worker(rank: int, world: int, port: int, cfg: TrainConfig, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        result = train(cfg)
        torch.save({k: v.clone() for k, v in result.model.state_dict().items()}, f"{out}/rank{rank}.pt")
        torch.save(result.losses, f"{out}/losses{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_process_ddp_run_keeps_identical_weights(tmp_path, set5_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tiny_config(tmp_path, set5_dir, steps=3, batch=4, save_every=2)
    mp.spawn(_ddp_worker, args=(2, port, cfg, str(tmp_path)), nprocs=2, join=True)
    w0, w1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    assert torch.load(tmp_path / "losses0.pt") == torch.load(tmp_path / "losses1.pt")  # rank-averaged
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["world_size"] == 2 and len(ckpt["sampler"]) == 2
    assert ckpt["sampler"][0] != ckpt["sampler"][1]  # each rank draws its own crops
    assert all(torch.equal(ckpt["model"][k], w0[k]) for k in w0)


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path, set5_dir):
    # Adam moves every weight by about lr: with lr = 1e30 the second step overflows.
    cfg = tiny_config(tmp_path, set5_dir, num_block=2, lr=1e30, steps=10, save_every=1)
    with pytest.raises(TrainingDiverged, match=r"loss is (nan|inf) at step (\d+); .*last good checkpoint") as info:
        train(cfg)
    failed_step = int(str(info.value).split("at step ")[1].split(";")[0])
    ckpt = load_checkpoint(Path(cfg.out_dir) / "last.pt")
    assert ckpt["step"] == failed_step - 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    assert not (Path(cfg.out_dir) / "srresnet_x2.safetensors").exists()


def test_unreadable_and_small_training_files_are_skipped_and_reported(tmp_path, set5_dir):
    folder = tmp_path / "images" / "nested"
    folder.mkdir(parents=True)
    for name in ("baby.png", "bird.png"):
        shutil.copy(set5_dir / name, folder / name)
    (folder / "broken.png").write_bytes(b"not a png at all")
    Image.new("RGB", (10, 10)).save(folder / "tiny.bmp")
    (folder / "notes.txt").write_text("ignored")
    sampler = CropSampler([tmp_path / "images"], crop=32, seed=0)
    assert sampler.report.images == 2
    assert [Path(p).name for p, _ in sampler.report.unreadable] == ["broken.png"]
    assert [Path(p).name for p in sampler.report.too_small] == ["tiny.bmp"]
    text = sampler.report.describe(32)
    assert "broken.png" in text and "1 unreadable" in text and "1 image(s) smaller" in text
    batch = sampler.sample(5)
    assert batch.shape == (5, 32, 32, 3) and batch.dtype == np.uint8


def test_flags_override_the_model_preset():
    cfg = config_from_args(["--model", "frbc", "--no-dbt", "--no-srb", "--dbt-weight", "0.5", "--data", "a", "b",
                            "--milestones", "0.3", "0.6", "--max-minutes", "2.5"])
    assert (cfg.model, cfg.dbt, cfg.srb, cfg.dbt_weight) == ("frbc", False, False, 0.5)
    assert cfg.data == ["a", "b"] and cfg.milestones == [0.3, 0.6] and cfg.max_minutes == 2.5
    assert cfg.warmup_steps == 2000 and cfg.latent_lr_scale == 0.5  # binary preset kept
    assert cfg.teacher == "runs/srresnet_x4/srresnet_x4.safetensors"
    assert cfg.out_dir == "runs/frbc_x4_nosrb_nodbt"
    assert config_from_args(["--model", "swinir_s", "--scale", "2"]).batch == 64
    with pytest.raises(SystemExit):
        config_from_args(["--model", "bnn", "--no-srb"])


def test_learning_rate_schedule():
    cfg = TrainConfig(steps=100, warmup_steps=10, lr=1e-3, min_lr=1e-5)
    assert lr_factor(cfg, 0) == pytest.approx(0.1) and lr_factor(cfg, 9) == pytest.approx(1.0)
    assert lr_factor(cfg, 10) == pytest.approx(1.0)
    assert lr_factor(cfg, 55) == pytest.approx(0.01 + 0.99 * 0.5)
    assert lr_factor(cfg, 100) == pytest.approx(0.01)
    steps = TrainConfig(steps=100, schedule="multistep", milestones=[0.5, 0.8], gamma=0.5)
    assert [lr_factor(steps, s) for s in (0, 49, 50, 79, 80, 99)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    assert all(math.isfinite(lr_factor(cfg, s)) for s in range(0, 200, 7))


def test_a_schedule_taken_up_midway_goes_on_from_its_step_and_rewarms_adam():
    whole = TrainConfig(steps=1000, warmup_steps=10, lr=1e-3, min_lr=1e-5)
    taken_up = TrainConfig(steps=1000, warmup_steps=10, lr=1e-3, min_lr=1e-5, start_step=600, init="w.safetensors")
    ramp = [lr_factor(taken_up, s) / lr_factor(whole, s) for s in (600, 649, 699, 700, 999)]
    assert ramp == pytest.approx([1 / REWARM_STEPS, 50 / REWARM_STEPS, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="give them with --init"):
        TrainConfig(steps=1000, start_step=600)
    with pytest.raises(ValueError, match=r"--start-step 1000 must lie in \[0, --steps 1000\)"):
        TrainConfig(steps=1000, start_step=1000, init="w.safetensors")


def test_init_carries_head_and_body_over_from_another_scale(tmp_path):
    torch.manual_seed(0)
    x2 = create_model("srresnet", 2, depth=2)
    save_file({k: v.contiguous() for k, v in x2.state_dict().items()}, str(tmp_path / "x2.safetensors"))
    torch.manual_seed(1)
    x4 = create_model("srresnet", 4, depth=2)
    fresh = {k: v.clone() for k, v in x4.state_dict().items()}
    kept = init_matching(x4, tmp_path / "x2.safetensors")
    assert kept == ["upconv2.bias", "upconv2.weight"]  # the x4-only second upsampling stage
    for k, v in x4.state_dict().items():
        assert torch.equal(v, fresh[k] if k in kept else x2.state_dict()[k]), k
    save_file({"other": torch.zeros(3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="share no tensor"):
        init_matching(x4, tmp_path / "other.safetensors")
    with pytest.raises(FileNotFoundError, match="not found"):
        init_matching(x4, tmp_path / "missing.safetensors")


def test_init_of_a_binary_student_overrides_its_teacher_and_rescales_from_the_new_weights(tmp_path):
    teacher = write_teacher(tmp_path / "t.safetensors", scale=2, num_block=1)
    torch.manual_seed(3)
    body = {k: v * 3.0 for k, v in create_model("srresnet", 2, depth=1).state_dict().items() if k.startswith("body.")}
    save_file({k: v.contiguous() for k, v in body.items()}, str(tmp_path / "body.safetensors"))
    cfg = TrainConfig(model="bam", scale=2, num_block=1, teacher=teacher, init=str(tmp_path / "body.safetensors"))
    student, _ = build_models(cfg)
    teacher_state = load_file(teacher)
    assert torch.equal(student.conv_first.weight, teacher_state["conv_first.weight"])  # head from the teacher
    conv = student.body[0].conv1
    assert torch.equal(conv.weight, body["body.0.conv1.weight"])  # body from --init
    # BAM's learned scale was re-initialised from the new latent weight: mean |W_c|.
    assert torch.allclose(conv.weight_quantizer.scale, conv.weight.abs().flatten(1).mean(1))


def test_a_run_killed_with_sigkill_resumes_from_its_timed_checkpoint_exactly(tmp_path, set5_dir):
    # A real process, checkpointing by time (every step here), killed with SIGKILL mid-run; the
    # resumed run must end exactly where an uninterrupted one does, and its ledger must add up.
    import subprocess
    import sys
    import time

    common = dict(model="srresnet", num_block=1, steps=40, warmup_steps=2, lr=1e-3, save_every=10**9)
    killed = tiny_config(tmp_path / "b", set5_dir, checkpoint_minutes=1e-6, **common)
    flags = ["--model", "srresnet", "--scale", "2", "--num-block", "1", "--steps", "40", "--warmup-steps", "2",
             "--lr", "1e-3", "--save-every", str(10**9), "--checkpoint-minutes", "1e-6", "--device", "cpu",
             "--lr-patch", "8", "--batch", "4", "--ema", "0", "--no-bf16", "--no-channels-last",
             "--data", str(set5_dir), "--val-data", "", "--out-dir", killed.out_dir, "--log-every", "1000"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "train", *flags], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = Path(killed.out_dir) / "last.pt"
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            if ckpt.is_file() and load_checkpoint(ckpt)["step"] >= 3:
                break
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    step = load_checkpoint(ckpt)["step"]
    assert 3 <= step < 40, step  # killed in the middle, after timed checkpoints
    resumed = train(replace(killed, resume=True, checkpoint_minutes=0.0))
    assert resumed.finished and resumed.step == 40
    whole = train(tiny_config(tmp_path / "a", set5_dir, **common))
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    ledger = resumed.summary["ledger"]
    assert [(s["steps_from"], s["steps_to"]) for s in ledger] == [(0, step), (step, 40)]
    assert sum(s["samples"] for s in ledger) == 40 * 4


def test_held_out_images_are_chosen_by_name_and_never_sampled(tmp_path, set5_dir):
    from train.data import held_out

    files = sorted(set5_dir.glob("*.png"))
    kept = held_out(files, 2)
    assert 0 < len(kept) < len(files) and set(kept) == set(held_out(files[::-1], 2))  # by name, not position
    assert held_out(files, 0) == [] and held_out(files, 1) == files
    sampler = CropSampler([set5_dir], 16, seed=0, holdout_every=2)
    assert sampler.report.held_out == len(kept) and sampler.report.images == len(files) - len(kept)
    held = [np.asarray(Image.open(p).convert("RGB")) for p in kept]
    assert not any(any(img.shape == h.shape and np.array_equal(img, h) for h in held) for img in sampler.images)


def test_compiled_irnet_does_not_recompile_as_its_progress_changes():
    from frb.layers import binarize, set_progress
    from frb.models.srresnet import SRResNet

    torch._dynamo.reset()
    model = binarize(SRResNet(scale=2, num_block=1), "irnet")
    compiled = torch.compile(model, backend="eager")
    x = torch.rand(1, 3, 8, 8)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for progress in (0.0, 0.37, 1.0):
            set_progress(model, progress)
            compiled(x).sum().backward()
    assert model.body[0].conv1.input_quantizer.progress.item() == 1.0
