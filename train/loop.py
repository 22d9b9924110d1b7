"""The training loop: one function, read top to bottom.

Per step: set IR-Net's EDE progress and the learning rate, draw a batch of HR crops and make
their LR twins, forward (bf16 autocast), loss = L1(SR, HR) [+ lambda * DBT against the frozen
teacher, which runs only as far as its last distilled block], average the loss over ranks and
stop on NaN/inf *before* updating, backward, Adam step, EMA update; then log, validate,
checkpoint (every ``save_every`` steps and every ``checkpoint_minutes``). Under torchrun the
model is wrapped in DistributedDataParallel; rank 0 logs, validates and writes files.

Every run keeps a *ledger* of the compute its weights received: one segment per session
(steps, samples, seconds, hardware), carried in the checkpoint and the summary, and started from
the ledger of the weights the run was initialised from (``train(cfg, ledger=...)``).
"""
from __future__ import annotations

import csv
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from safetensors.torch import load_file
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from frb.evaluate import evaluate_pairs, load_pairs, set_name, weights_file_name
from frb.layers import binary_layers, load_full_precision, set_progress
from frb.ledger import ActiveClock, close_segment, new_segment
from frb.models import create_model, get_spec
from train.checkpoint import export_weights, hardware, load_checkpoint, rng_state, save_checkpoint, set_rng_state, write_json
from train.data import CropSampler, make_pair
from train.distill import FeatureRecorder, dbt_loss
from train.ema import EMA
from train.presets import TrainConfig

ADAM_BETAS = (0.9, 0.99)  # BasicSR's choice for SR
REWARM_STEPS = 100  # a run taken up at --start-step: lr ramp while Adam's new moments settle
STEADY_AFTER = 3  # steps left out of steady_steps_per_s (first-step allocation, torch.compile)
RUN_DEFINING_FIELDS = ("model", "scale", "num_block", "srb", "batch")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the step was not applied and nothing was saved."""


@dataclass
class TrainResult:
    model: nn.Module  # the trained student (not the EMA copy)
    losses: list[float]  # loss of every step of this session, averaged over ranks
    step: int
    finished: bool  # reached cfg.steps rather than stopped early (the weights are exported either way)
    summary: dict[str, Any] | None


def resolve_device(name: str) -> torch.device:
    """``name``, or cuda:LOCAL_RANK when CUDA is available, else cpu."""
    if name:
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def build_models(cfg: TrainConfig) -> tuple[nn.Module, nn.Module | None]:
    """(student, DBT teacher or None). A given teacher's weights initialise the student, then ``cfg.init`` overrides them."""
    spec = get_spec(cfg.model)
    options = {"second_order": cfg.srb} if spec.method == "frb" else {}
    student = create_model(cfg.model, cfg.scale, depth=cfg.num_block, **options)
    if not cfg.teacher:
        if cfg.init:
            init_matching(student, cfg.init)
        return student, None
    if not Path(cfg.teacher).is_file():
        raise FileNotFoundError(
            f"teacher weights {cfg.teacher} not found: train the full-precision model first "
            f"(python -m train --model {spec.teacher} --scale {cfg.scale}), "
            "or pass --teacher FILE (or --teacher '' for a random start without DBT)"
        )
    teacher = create_model(spec.teacher, cfg.scale, pretrained=cfg.teacher, depth=cfg.num_block)
    load_full_precision(student, teacher.state_dict())
    if cfg.init:
        init_matching(student, cfg.init)
    return student, teacher.eval().requires_grad_(False) if cfg.dbt else None


def init_matching(model: nn.Module, path: str | Path) -> list[str]:
    """Copy the tensors of ``path`` whose name and shape match ``model``'s; returns the names kept as they were.

    This starts x2 from x4 (or the reverse): head and body carry over, the upsampler (whose
    shapes depend on the scale) keeps its initialisation. A binary layer whose latent weight was
    given but not its weight quantizer's state re-initialises that state from the new weight.
    No tensor in common is an error.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"--init weights {path} not found")
    own = model.state_dict()
    given = {k: v for k, v in load_file(str(path)).items() if k in own and own[k].shape == v.shape}
    if not given:
        raise ValueError(f"--init weights {path} share no tensor (name and shape) with {type(model).__name__}")
    model.load_state_dict(given, strict=False)
    for name, layer in binary_layers(model).items():
        if f"{name}.weight" in given and not any(k.startswith(f"{name}.weight_quantizer.") for k in given):
            layer.reset_method_parameters()
    return sorted(set(own) - set(given))


def lr_factor(cfg: TrainConfig, step: int) -> float:
    """Multiplier of the peak lr at ``step`` (0-based); a pure function of the step.

    A run taken up at ``start_step`` s > 0 (fresh Adam moments) multiplies this by
    min(1, (step - s + 1) / REWARM_STEPS).

    warm-up (step < w): (step + 1) / w;  cosine: m + (1 - m) (1 + cos(pi t)) / 2 with
    t = (step - w) / (steps - w) and m = min_lr / lr;  multistep: gamma ** (milestones passed),
    milestone k at step milestones[k] * steps.
    """
    w = cfg.warmup_steps
    rewarm = min(1.0, (step - cfg.start_step + 1) / REWARM_STEPS) if cfg.start_step else 1.0
    if step < w:
        return rewarm * (step + 1) / w
    if cfg.schedule == "multistep":
        return rewarm * cfg.gamma ** sum(step >= m * cfg.steps for m in cfg.milestones)
    t = (step - w) / max(1, cfg.steps - w)
    m = cfg.min_lr / cfg.lr
    return rewarm * (m + (1.0 - m) * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0))))


def param_groups(model: nn.Module, latent_lr_scale: float) -> list[dict[str, Any]]:
    """Two Adam groups: binary layers' latent weights (lr * latent_lr_scale) and everything else."""
    latent = {id(layer.weight) for layer in binary_layers(model).values()}
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if id(p) not in latent], "lr_scale": 1.0},
        {"params": [p for p in params if id(p) in latent], "lr_scale": latent_lr_scale},
    ]
    return [g for g in groups if g["params"]]


def train(cfg: TrainConfig, ledger: list[dict[str, Any]] | None = None) -> TrainResult:
    """Train (or resume) the run described by ``cfg``; see the module docstring.

    ``ledger``: the compute already in the starting weights (a fresh run only; a resumed run
    continues the ledger of its checkpoint).
    """
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    if cfg.batch % world:
        raise ValueError(f"batch {cfg.batch} does not split over {world} ranks")
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    out = Path(cfg.out_dir)
    ckpt_path = out / "last.pt"
    if ckpt_path.exists() and not cfg.resume:
        raise FileExistsError(f"{ckpt_path} exists: pass --resume to continue that run, or another --out-dir")

    def log(message: str) -> None:
        if rank == 0:
            tqdm.write(message)

    # Model, teacher, EMA, optimizer (the same seed on every rank: identical initial weights).
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed + rank)
    np.random.seed(cfg.seed + rank)
    model, teacher = build_models(cfg)
    model.to(device)
    if teacher is not None:
        teacher.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
        if teacher is not None:
            teacher.to(memory_format=torch.channels_last)
    ema = EMA(model, cfg.ema) if cfg.ema > 0 else None
    optimizer = torch.optim.Adam(param_groups(model, cfg.latent_lr_scale), lr=cfg.lr, betas=ADAM_BETAS)

    # Data: every rank draws its own crops (seed, rank); rank 0 holds the validation images.
    sampler = CropSampler(cfg.data, cfg.lr_patch * cfg.scale, seed=(cfg.seed, rank), holdout_every=cfg.holdout_every)
    log(sampler.report.describe(cfg.lr_patch * cfg.scale))
    val_pairs = load_pairs(cfg.val_data, cfg.scale) if cfg.val_data and rank == 0 else []

    step, elapsed_before, val_history, last_saved = (0 if cfg.resume else cfg.start_step), 0.0, [], None
    past_ledger = list(ledger or [])
    if cfg.resume:
        if not ckpt_path.is_file():
            raise FileNotFoundError(f"nothing to resume: {ckpt_path} does not exist")
        ckpt = load_checkpoint(ckpt_path)
        changed = [k for k in RUN_DEFINING_FIELDS if ckpt["config"][k] != getattr(cfg, k)]
        if changed or ckpt["world_size"] != world:
            raise ValueError(f"{ckpt_path} is a different run (differs in {changed or ['world size']})")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if ema is not None:
            ema.load_state_dict(ckpt["ema"])
        set_rng_state(ckpt["rng"][rank])
        sampler.load_state_dict(ckpt["sampler"][rank])
        step, elapsed_before, val_history, last_saved = ckpt["step"], ckpt["elapsed_s"], ckpt["val_history"], ckpt["step"]
        past_ledger = ckpt.get("ledger", [])
        log(f"resumed {ckpt_path} at step {step}")
    segment = new_segment(Path(cfg.out_dir).name, step, cfg.batch, hardware(device, world))

    # Hooks for DBT (after the EMA copy, so it has none), then compile and DDP wrappers.
    recorders = (FeatureRecorder(model), FeatureRecorder(teacher)) if teacher is not None else None
    forward = model
    teacher_forward = teacher.forward_distilled if teacher is not None else None
    if cfg.compile:
        # A fresh compile cache: dynamo would otherwise reuse a graph that this process compiled for
        # an earlier model of the same code (a campaign runs stage after stage in one process), and a
        # graph traced without forward hooks never calls DBT's recorders (found 2026-12-03: the
        # first-order DBT ablation row after the first-order row without DBT recorded 0 blocks).
        torch.compiler.reset()
        forward = torch.compile(model)
        teacher_forward = torch.compile(teacher_forward) if teacher is not None else None
    if world > 1:
        forward = DistributedDataParallel(forward, device_ids=[device.index] if device.type == "cuda" else None)

    def current_ledger(step: int) -> list[dict[str, Any]]:
        return past_ledger + [close_segment(segment, step, clock.tick(), time.process_time() - cpu0)]

    def save(step: int) -> None:
        """Write last.pt (rank 0), with every rank's RNG and sampler states (a collective)."""
        local = {"rng": rng_state(), "sampler": sampler.state_dict()}
        gathered = [local]
        if world > 1:
            gathered = [None] * world
            dist.all_gather_object(gathered, local)
        if rank == 0:
            save_checkpoint(ckpt_path, {
                "config": asdict(cfg), "step": step, "world_size": world,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "ema": ema.state_dict() if ema is not None else None,
                "rng": [g["rng"] for g in gathered], "sampler": [g["sampler"] for g in gathered],
                "elapsed_s": elapsed_before + time.time() - t0, "val_history": val_history,
                "ledger": current_ledger(step),
            })

    def validate() -> float:
        net = ema.module if ema is not None else model
        net.eval()
        psnr = evaluate_pairs(net, val_pairs, cfg.scale, device, ssim=False)["psnr"]
        model.train()
        if recorders is not None:
            recorders[0].take()
        return psnr

    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", asdict(cfg))
        log(f"training {cfg.model} x{cfg.scale} on {device} ({world} process(es)) -> {out}")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16)
    stop_step = min(cfg.stop_at or cfg.steps, cfg.steps)
    local_batch = cfg.batch // world
    losses: list[float] = []
    log_rows: list[list[float]] = []
    t0 = last_save_time = time.time()
    cpu0 = time.process_time()
    clock = ActiveClock(cpu_bound=device.type == "cpu")
    start_step = step
    t_steady = None  # time after the first STEADY_AFTER steps of this session (allocation, compilation)
    bar = tqdm(total=cfg.steps, initial=step, unit="step", disable=rank != 0, dynamic_ncols=True)
    model.train()
    while step < stop_step:
        clock.tick()  # per step, so that a pause (kill -STOP) is left out of the ledger's wall time
        set_progress(model, step / cfg.steps)
        lr = cfg.lr * lr_factor(cfg, step)
        for group in optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]

        lr_img, hr_img = make_pair(sampler.sample(local_batch), cfg.scale, device)
        if cfg.channels_last:
            lr_img = lr_img.contiguous(memory_format=torch.channels_last)
        with autocast:
            sr = forward(lr_img)
            if teacher_forward is not None:
                with torch.no_grad():
                    teacher_forward(lr_img)
        l1 = F.l1_loss(sr.float(), hr_img)
        dbt = dbt_loss(recorders[0].take(), recorders[1].take()) if recorders else torch.zeros((), device=device)
        loss = l1 + cfg.dbt_weight * dbt

        # One all-reduce: mean losses over ranks, whether any rank ran out of time or is due a checkpoint.
        now = time.time()
        out_of_time = cfg.max_minutes > 0 and now - t0 > 60 * cfg.max_minutes
        save_due = cfg.checkpoint_minutes > 0 and now - last_save_time > 60 * cfg.checkpoint_minutes
        flags = torch.tensor([float(out_of_time), float(save_due)], device=device)
        stats = torch.cat([torch.stack([loss.detach(), l1.detach(), dbt.detach()]).float(), flags])
        if world > 1:
            dist.all_reduce(stats)
        loss_v, l1_v, dbt_v, late, due = stats.tolist()
        loss_v, l1_v, dbt_v = loss_v / world, l1_v / world, dbt_v / world
        if not math.isfinite(loss_v):
            bar.close()
            kept = f"the last good checkpoint is {ckpt_path} (step {last_saved})" if last_saved is not None else "no checkpoint was saved yet"
            raise TrainingDiverged(f"loss is {loss_v} at step {step + 1}; training stopped before applying it; {kept}")

        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if ema is not None:
            ema.update(model)
        step += 1
        if step - start_step == STEADY_AFTER:
            t_steady = time.time()

        losses.append(loss_v)
        log_rows.append([loss_v, l1_v, dbt_v])
        bar.update(1)
        bar.set_postfix(loss=f"{loss_v:.4f}", **({"dbt": f"{dbt_v:.4f}"} if recorders else {}), lr=f"{lr:.2e}", refresh=False)
        if rank == 0 and step % cfg.log_every == 0:
            _append_log(out / "log.csv", step, np.mean(log_rows, axis=0).tolist(), lr, elapsed_before + time.time() - t0)
            log_rows = []
        if val_pairs and (step == cfg.steps or (cfg.val_every and step % cfg.val_every == 0)):
            val_history.append((step, validate()))
            log(f"step {step}: {set_name(cfg.val_data)} Y-PSNR {val_history[-1][1]:.3f} dB")
        if step % cfg.save_every == 0 or step == stop_step or late or due:
            save(step)
            last_saved, last_save_time = step, time.time()
        if late:
            log(f"stopped after {cfg.max_minutes} min at step {step}; continue with --resume")
            break
    bar.close()
    t_end = time.time()
    session_s = t_end - t0

    # Export also when a time budget or --stop-at ended the session early: the weights of a
    # budgeted run are its result (the summary says it did not reach cfg.steps).
    finished = step >= cfg.steps
    final = ema.module if ema is not None else model
    summary = None
    if rank == 0:
        weights = out / weights_file_name(cfg.model, cfg.scale)
        export_weights(final, weights, {"model": cfg.model, "scale": str(cfg.scale), "num_block": str(cfg.num_block)})
        summary = {
            "model": cfg.model, "scale": cfg.scale, "weights": str(weights), "ema": ema is not None,
            "steps": step, "finished": finished, "wall_time_s": round(elapsed_before + session_s, 1),
            "session_steps_per_s": round((step - start_step) / session_s, 3) if step > start_step else None,
            "steady_steps_per_s": round((step - start_step - STEADY_AFTER) / (t_end - t_steady), 3) if t_steady and t_end > t_steady else None,
            "hardware": hardware(device, world),
            "final_val_psnr": val_history[-1][1] if val_history else None, "val_data": cfg.val_data,
            "val_history": val_history, "config": asdict(cfg), "ledger": current_ledger(step),
        }
        write_json(out / "summary.json", summary)
        log(f"exported {weights}")
    return TrainResult(model, losses, step, finished, summary)


def _append_log(path: Path, step: int, means: list[float], lr: float, elapsed: float) -> None:
    """One row of log.csv: step, mean loss / l1 / dbt since the previous row, lr, elapsed seconds."""
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["step", "loss", "l1", "dbt", "lr", "elapsed_s"])
        writer.writerow([step, *(f"{v:.6f}" for v in means), f"{lr:.3e}", f"{elapsed:.1f}"])
