"""Turn trained runs into shipped weights: ``python -m train.release --scale 4 srresnet frbc``.

For every model, the run's export ``<runs>/<name>_x<scale>/<name>_x<scale>.safetensors`` (latent
float weights) becomes a shipped file in ``assets/weights``:

* full-precision models: a float16 safetensors state dict;
* binarized models: the packed format of ``frb.bitwise.export`` (sign bits, per-channel scales,
  float16 head/tail; no latent weights).

The shipped file is then evaluated *as shipped* (Y-PSNR/SSIM on the benchmark folders, border crop
= scale) and recorded in ``manifest.json`` with its sha256, size, the run's training summary and the
measured scores. Entries of other models are kept. The campaign's finished ablation runs are
bundled the same way under ``assets/weights/ablation`` (``keep_ablation``; see ``frb.ablation``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from frb import hub
from frb.ablation import ablation_dir, read_ablation
from frb.bitwise.export import save_packed
from frb.evaluate import default_data_dirs, evaluate_model
from frb.ledger import ledger_total, segment_from_summary
from frb.models import SCALES, create_model, get_spec
from frb.models.pretrained import weights_metadata
from train.checkpoint import copy_file, write_json


def ship(name: str, scale: int, trained: Path, assets: Path, **method_options: object) -> Path:
    """Write the shipped file of one model from its trained (latent) weights; returns its path.

    ``method_options`` build the variant that was trained (``second_order=False``: FRB without SRB).
    """
    model = create_model(name, scale, pretrained=trained, **method_options)
    target = assets / f"{name}_x{scale}.safetensors"
    if get_spec(name).binary:
        save_packed(model, target)
    else:
        state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(target), metadata={"model": name, "scale": str(scale), "dtype": "float16"})
    return target


def manifest_ledger(name: str, scale: int, summary: dict) -> dict:
    """``{"runs": segments, "total": sums}``: the run's ledger, or one segment made from an older summary."""
    runs = summary.get("ledger") or ([segment_from_summary(summary, f"{name}_x{scale}")] if summary.get("steps") else [])
    return {"runs": runs, "total": ledger_total(runs)}


def manifest_entry(name: str, scale: int, shipped: Path, summary: dict, metrics: dict) -> dict:
    spec = get_spec(name)
    return {
        "name": name,
        "scale": scale,
        "arch": spec.arch,
        "method": spec.method,
        "file": shipped.name,
        "format": "frb-packed" if spec.binary else "float16-state-dict",
        "bytes": shipped.stat().st_size,
        "sha256": hub.sha256_file(shipped),
        "metrics": metrics,
        "training": {
            k: summary.get(k)
            for k in ("steps", "wall_time_s", "session_steps_per_s", "hardware", "final_val_psnr", "config")
        },
        "ledger": manifest_ledger(name, scale, summary),
    }


def release(name: str, scale: int, trained: Path, summary: dict, assets: Path, benchmarks: list[Path],
            device: torch.device = torch.device("cpu")) -> dict:
    """Ship ``trained``, score the shipped file on ``benchmarks``; returns its manifest entry (not yet written)."""
    shipped = ship(name, scale, trained, assets)
    model = create_model(name, scale, pretrained=shipped)
    metrics = evaluate_model(model, benchmarks, scale, device)
    return manifest_entry(name, scale, shipped, summary, metrics)


def write_manifest(assets: Path, entries: list[dict]) -> None:
    """Add or replace ``entries`` in the manifest, written atomically (a kill never leaves half a file)."""
    path = assets / hub.MANIFEST_NAME
    data = json.loads(path.read_text()) if path.is_file() else {}
    keys = {(e["name"], e["scale"]) for e in entries}
    merged = [e for e in data.get("models", []) if (e["name"], e["scale"]) not in keys] + entries
    merged.sort(key=lambda e: (e["scale"], e["name"]))
    write_json(path, {**data, "models": merged})  # a Hub pin stays, and goes stale if a file changed


def keep_ablation(stage: str, packed: Path, summary: dict, metrics: dict, validation: dict, assets: Path) -> dict:
    """Bundle a finished ablation run: its packed file becomes ``<assets>/ablation/<stage>.safetensors``
    and its entry (variant, sha256, scores, ledger; see ``frb.ablation``) replaces that stage's entry in
    the ablation manifest, both written atomically. Returns the entry."""
    folder = ablation_dir(assets)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{stage}.safetensors"
    copy_file(packed, target)
    config = summary["config"]
    options = json.loads(weights_metadata(target).get("method_options", "{}"))
    entry = {
        "stage": stage, "name": config["model"], "scale": config["scale"],
        "srb": bool(options.get("second_order", True)),
        "dbt_weight": float(config["dbt_weight"]) if config["dbt"] and config["teacher"] else 0.0,
        "file": target.name, "bytes": target.stat().st_size, "sha256": hub.sha256_file(target),
        "steps": summary["steps"], "metrics": metrics, "validation": validation,
        "ledger": manifest_ledger(config["model"], config["scale"], summary),
    }
    others = [e for e in read_ablation(assets) if e["stage"] != stage]
    write_json(folder / hub.MANIFEST_NAME, {"ablation": sorted(others + [entry], key=lambda e: e["stage"])})
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.release", description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="public model names with a finished run")
    parser.add_argument("--scale", type=int, choices=SCALES, default=4)
    parser.add_argument("--runs", default="runs", help="folder holding <name>_x<scale>/ runs")
    parser.add_argument("--data", action="append", help="benchmark HR folder (repeatable); default Set5, Set14, B100")
    parser.add_argument("--assets", default=str(hub.ASSETS_DIR), help="where shipped weights and the manifest go")
    args = parser.parse_args(argv)
    assets = Path(args.assets)
    assets.mkdir(parents=True, exist_ok=True)
    folders = [Path(d) for d in args.data] if args.data else default_data_dirs()
    entries = []
    for name in args.models:
        run = Path(args.runs) / f"{name}_x{args.scale}"
        trained = run / f"{name}_x{args.scale}.safetensors"
        if not trained.is_file():
            print(f"error: {trained} not found (train it first: python -m train --model {name})", file=sys.stderr)
            return 2
        summary_path = run / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        entries.append(release(name, args.scale, trained, summary, assets, folders))
        e = entries[-1]
        print(f"{name} x{args.scale}: {assets / e['file']} ({e['bytes']:,} bytes) {json.dumps(e['metrics'])}")
    write_manifest(assets, entries)
    return 0


if __name__ == "__main__":
    sys.exit(main())
