"""``python -m frb eval``: Y-PSNR / SSIM of one model, of every model with weights, or of the bundled
ablation (``--ablation``), on benchmark folders.

The protocol and the published-table comparison are ``frb.evaluate``'s, the ablation's files and
table ``frb.ablation``'s; this module picks the weights (``--weights``, ``--weights-dir`` folders,
else the bundled ones), runs, and writes the tables.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import torch
from torch import nn

from frb import hub
from frb.ablation import ablation_table, load_variant, read_ablation, variant
from frb.bitwise.runner import BACKENDS
from frb.evaluate import (
    BENCHMARK_ROOT, bundled_weights, comparison_rows, default_data_dirs, evaluate_model, locate_weights,
    markdown_table, weights_in,
)
from frb.models import MODELS, SCALES, create_model, get_spec


def _trained_model(name: str, scale: int, weights: str | Path | None) -> nn.Module:
    """``create_model(name, scale, pretrained=weights)``; bicubic needs no file, any other model one."""
    if not get_spec(name).needs_weights:
        return create_model(name, scale, pretrained=True)
    if weights is None:
        why = "; ".join(hub.resolve(name, scale).notices) or "no weights found"
        raise ValueError(f"model {name!r} x{scale} has no usable weights ({why}); restore assets/weights "
                         "(git checkout assets/weights), pass --weights FILE, or add --online to fetch from the Hub")
    return create_model(name, scale, pretrained=weights)


def _measure(model: nn.Module, folders: list[Path], scale: int, device: torch.device, tile: int,
             backend: str) -> dict[str, dict[str, float]]:
    """``evaluate_model``, with a missing folder, a folder without images or an unreadable image
    ending the command with the error's message rather than a traceback."""
    try:
        return evaluate_model(model, folders, scale, device, tile, backend)
    except (ValueError, FileNotFoundError) as exc:
        raise SystemExit(f"error: {exc}") from exc


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="Y-PSNR / SSIM of a model on benchmark folders of HR images")
    p.add_argument("--model", choices=list(MODELS), help="model name (not with --all)")
    p.add_argument("--scale", type=int, choices=SCALES, default=4)
    p.add_argument("--data", action="append", help="folder of HR images (repeatable); default Set5, Set14, B100")
    p.add_argument("--weights", help="safetensors weights file of --model (default: the bundled weights)")
    p.add_argument("--all", action="store_true", help="every model with weights (bundled, or in --weights-dir), plus bicubic")
    p.add_argument("--ablation", action="store_true",
                   help="measure the bundled ablation of FRB (vanilla / +SRB / +DBT / both, assets/weights/ablation)")
    p.add_argument("--weights-dir", action="append", help="folder of <name>_x<scale>.safetensors (repeatable) instead of the bundled weights")
    p.add_argument("--out", default="runs/eval", help="where --all writes results_x<scale>.md / .csv")
    p.add_argument("--device", default="", help="cpu, cuda, ... (default: cuda when available)")
    p.add_argument("--tile", type=int, default=0, help="LR tile size for bounded memory (0 = whole image)")
    p.add_argument("--backend", choices=BACKENDS, default="bitwise",
                   help="bitwise: binarized models on the packed CPU engine users run (default); torch: fake-quantised")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    folders = [Path(d) for d in args.data] if args.data else default_data_dirs()
    if not folders:
        raise SystemExit(f"no benchmark folders under {BENCHMARK_ROOT}; pass --data DIR")
    if args.ablation and (args.all or args.model or args.weights or args.weights_dir):
        raise SystemExit("--ablation measures the bundled ablation files; give it without --model, --all or --weights")
    if not args.ablation and args.all == (args.model is not None):
        raise SystemExit("give either --model NAME, --all or --ablation")
    backend = args.backend
    if backend == "bitwise" and device.type != "cpu":
        print(f"note: the bitwise engine runs on the CPU only; evaluating on {device} with torch", file=sys.stderr)
        backend = "torch"
    if args.ablation:
        return _run_ablation(args, device, backend, folders)

    if args.all:
        resolvers = [weights_in(d) for d in args.weights_dir] if args.weights_dir else [bundled_weights]
        weights = {n: locate_weights(n, args.scale, resolvers) for n in MODELS}
        names = [n for n in MODELS if not get_spec(n).needs_weights or weights[n] is not None]
        for n in MODELS:
            entry = hub.manifest_entry(n, args.scale) if not args.weights_dir else None
            if n not in names and entry is not None:  # shipped, but its file is missing or damaged
                print(f"note: {n} x{args.scale} skipped: " + "; ".join(hub.resolve(n, args.scale).notices), file=sys.stderr)
    else:
        names = [args.model]
        weights = {args.model: Path(args.weights) if args.weights else bundled_weights(args.model, args.scale)}

    results = {}
    for name in names:
        try:
            model = _trained_model(name, args.scale, weights[name])
        except (ValueError, FileNotFoundError) as exc:
            raise SystemExit(f"error: {exc}") from exc
        results[name] = _measure(model, folders, args.scale, device, args.tile, backend)
    rows = comparison_rows(results, args.scale, {n: str(weights[n]) if weights[n] else None for n in names})

    if args.all:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"results_x{args.scale}.md").write_text(markdown_table(rows, args.scale))
        with open(out / f"results_x{args.scale}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    if args.json:
        print(json.dumps({"scale": args.scale, "device": str(device), "results": rows}, indent=2))
    else:
        print(markdown_table(rows, args.scale), end="")
        if args.all:
            print(f"written: {Path(args.out) / f'results_x{args.scale}.md'} and .csv")
    return 0


def _run_ablation(args: argparse.Namespace, device: torch.device, backend: str, folders: list[Path]) -> int:
    """Every bundled ablation file, verified and measured again; the table of ``frb.ablation`` with
    the scores measured now (the manifest's are printed beside them where they differ)."""
    try:
        entries = read_ablation()
    except hub.WeightsError as exc:
        raise SystemExit(f"error: {exc}") from exc
    if not entries:
        raise SystemExit("error: no ablation weights are bundled yet: the campaign's ablation stages "
                         "(train/plan.toml) have not finished")
    measured = []
    for entry in entries:
        try:
            model = load_variant(entry)
        except hub.WeightsError as exc:
            raise SystemExit(f"error: {exc}") from exc
        metrics = _measure(model, folders, int(entry["scale"]), device, args.tile, backend)
        for bench, now in metrics.items():
            before = entry["metrics"].get(bench)
            if before is not None and abs(before["psnr"] - now["psnr"]) >= 0.005:
                print(f"note: {variant(entry)} {bench}: {now['psnr']:.3f} dB now, {before['psnr']:.3f} in the manifest",
                      file=sys.stderr)
        measured.append({**entry, "metrics": metrics})
    if args.json:
        print(json.dumps({"device": str(device), "backend": backend, "ablation": [
            {"variant": variant(e), **{k: e[k] for k in ("stage", "srb", "dbt_weight", "scale", "steps", "metrics")}}
            for e in measured]}, indent=2))
    else:
        print(ablation_table(measured), end="")
    return 0
