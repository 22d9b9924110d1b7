"""Train a whole scale's set of models under one time budget: ``python -m train.suite --scale 4 --minutes 10``.

The budget is split over the models by fixed shares (the teachers and the SwinIR models get
more). For each model, in order (teachers first, so students can start from them):

1. measure its steady step rate with a short throw-away run (once per kind of model: the
   SRResNet binaries all run at about the same rate);
2. plan ``steps = rate * its share of the budget`` (cosine schedule over those steps; binary
   students warm up over the first eighth), and train it (``train.loop.train``, with
   ``--max-minutes`` as a safety net);
3. ship it like ``train.release`` (float16 or packed), evaluate the shipped file on Set5, Set14
   and B100, and write ``<runs>/<name>_x<scale>/result.json``: the hardware, steps, wall time and
   the scores; the manifest in ``--assets`` gets the entry.

On a GPU it uses batch 32, LR patch 48 and torch.compile; on a CPU batch 16 and LR patch 32 (bf16
autocast and channels-last on both). Full-precision models can start from another scale's weights
(``--init-scale 4``: head and body carry over). Models whose run already has a result are skipped
unless ``--retrain``; ``--archive FILE`` packs the shipped files, manifest and results into one
tar.gz (a GPU machine brings back few files).
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tarfile
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from frb import hub
from frb.evaluate import default_data_dirs, weights_file_name
from frb.models import SCALES, get_spec
from train.checkpoint import write_json
from train.loop import TrainingDiverged, resolve_device, train
from train.presets import TrainConfig, config_from_args
from train.release import release, write_manifest

# Budget shares, in training order: teachers first, then their students.
SHARES = {
    "srresnet": 2.0, "swinir_s": 3.0,
    "bnn": 1.0, "dorefa": 1.0, "bireal": 1.0, "irnet": 1.0, "bam": 1.0, "btm": 1.0, "reactnet": 1.2,
    "frbc": 1.2, "frbt": 2.0,
}
PROBE_STEPS = 12  # steps of the rate probe (the first loop.STEADY_AFTER are not timed)


def base_flags(name: str, scale: int, on_gpu: bool, runs: Path) -> list[str]:
    """The suite's recipe for one model, as ``python -m train`` flags on top of its preset."""
    spec = get_spec(name)
    flags = ["--model", name, "--scale", str(scale), "--out-dir", str(runs / f"{name}_x{scale}"),
             "--schedule", "cosine", "--ema", "0", "--val-every", "0"]
    flags += ["--batch", "32", "--lr-patch", "48", "--compile"] if on_gpu else ["--batch", "16", "--lr-patch", "32"]
    if spec.binary:
        flags += ["--teacher", str(runs / f"{spec.teacher}_x{scale}" / weights_file_name(spec.teacher, scale)), "--lr", "2e-4"]
        if spec.method == "frb":
            flags += ["--dbt-weight", "0.05"]
    else:
        flags += ["--lr", str(spec.backbone.suite_lr)]
    return flags


def steady_rate(cfg: TrainConfig) -> float:
    """Steps per second of ``cfg`` once warmed up, from a short run in a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp:
        probe = replace(cfg, steps=10**6, stop_at=PROBE_STEPS, out_dir=tmp, val_data="", max_minutes=0,
                        save_every=10**9, log_every=10**9, resume=False)
        return train(probe).summary["steady_steps_per_s"]


def plan(cfg: TrainConfig, rate: float, seconds: float) -> TrainConfig:
    """``cfg`` with its steps sized to ``seconds`` at ``rate`` (binary students warm up over an eighth)."""
    steps = max(10, int(rate * seconds))
    warmup = steps // 8 if get_spec(cfg.model).binary else min(50, steps // 10)
    return replace(cfg, steps=steps, warmup_steps=warmup, max_minutes=1.25 * seconds / 60 + 1)


def run_model(cfg: TrainConfig, assets: Path, benchmarks: list[Path], device: torch.device) -> dict:
    """Train, ship, evaluate as shipped; returns the result written to ``<run>/result.json``."""
    summary = train(cfg).summary
    entry = release(cfg.model, cfg.scale, Path(summary["weights"]), summary, assets, benchmarks, device)
    write_manifest(assets, [entry])
    result = {**entry, "finished": summary["finished"], "steady_steps_per_s": summary["steady_steps_per_s"]}
    write_json(Path(cfg.out_dir) / "result.json", result)
    return result


def main(argv: list[str] | None = None) -> int:
    """Train the set; exit status 1 with a one-line error when a run cannot start or diverges."""
    try:
        return train_set(argv)
    except (FileNotFoundError, FileExistsError, TrainingDiverged) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def train_set(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.suite", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, choices=SCALES, default=4)
    parser.add_argument("--minutes", type=float, required=True, help="training budget of the whole set (evaluation not included)")
    parser.add_argument("--models", nargs="+", default=list(SHARES), choices=list(SHARES), help="subset, trained in the suite's order")
    parser.add_argument("--runs", default="runs", help="folder of the runs (<name>_x<scale>/)")
    parser.add_argument("--assets", default=str(hub.ASSETS_DIR), help="where shipped weights and the manifest go")
    parser.add_argument("--init-scale", type=int, choices=SCALES, help="full-precision models start from their run at this scale")
    parser.add_argument("--data", nargs="+", help="folders of HR training images (default: the preset's)")
    parser.add_argument("--device", default="", help="cpu, cuda, ...; default cuda when available")
    parser.add_argument("--retrain", action="store_true", help="train models whose run already has result.json (the old run is moved aside)")
    parser.add_argument("--benchmarks", nargs="+", help="HR folders to score the shipped files on (default Set5, Set14, B100)")
    parser.add_argument("--train-flags", default="", help="extra `python -m train` flags for every model, e.g. '--batch 8'")
    parser.add_argument("--archive", help="also write the shipped files, manifest and results into this tar.gz")
    args = parser.parse_args(argv)

    runs, assets = Path(args.runs), Path(args.assets)
    assets.mkdir(parents=True, exist_ok=True)
    device = resolve_device(args.device)
    benchmarks = [Path(b) for b in args.benchmarks] if args.benchmarks else default_data_dirs()
    results, todo = [], []
    for name in (m for m in SHARES if m in args.models):
        done = runs / f"{name}_x{args.scale}" / "result.json"
        if done.is_file() and not args.retrain:
            print(f"{name} x{args.scale}: {done} exists, skipped (--retrain to train again)")
            results.append(json.loads(done.read_text()))
        else:
            todo.append(name)
    total_share = sum(SHARES[m] for m in todo)
    rates: dict[tuple, float] = {}
    for name in todo:
        run = runs / f"{name}_x{args.scale}"
        if run.exists():
            aside = run.with_name(run.name + ".old")
            shutil.rmtree(aside, ignore_errors=True)
            run.rename(aside)
        flags = base_flags(name, args.scale, device.type == "cuda", runs) + shlex.split(args.train_flags)
        if args.device:
            flags += ["--device", args.device]
        if args.data:
            flags += ["--data", *args.data]
        spec = get_spec(name)
        if args.init_scale and not spec.binary:
            flags += ["--init", str(runs / f"{name}_x{args.init_scale}" / weights_file_name(name, args.init_scale))]
        cfg = config_from_args(flags)
        kind = (spec.arch, spec.binary, cfg.dbt)
        if kind not in rates:
            rates[kind] = steady_rate(cfg)
        seconds = 60 * args.minutes * SHARES[name] / total_share
        cfg = plan(cfg, rates[kind], seconds)
        print(f"{name} x{args.scale}: {cfg.steps} steps planned for {seconds:.0f} s at {rates[kind]:.2f} steps/s", flush=True)
        results.append(run_model(cfg, assets, benchmarks, device))
        scores = results[-1]["metrics"]
        print(f"{name} x{args.scale}: " + ", ".join(f"{k} {v['psnr']:.2f}/{v['ssim']:.4f}" for k, v in scores.items()), flush=True)

    if args.archive:
        with tarfile.open(args.archive, "w:gz") as tar:
            tar.add(assets / hub.MANIFEST_NAME, arcname=f"weights/{hub.MANIFEST_NAME}")
            for result in results:
                tar.add(assets / result["file"], arcname=f"weights/{result['file']}")
                tar.add(runs / f"{result['name']}_x{args.scale}" / "result.json",
                        arcname=f"results/{result['name']}_x{args.scale}.json")
        print(f"wrote {args.archive}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
