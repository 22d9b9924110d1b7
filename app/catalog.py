"""The Models tab's facts: cost in BBCU's convention, weights source and size, measured vs published PSNR."""
from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

import torch

from frb.weights import find_weights
from frb.cost import Cost, count_cost
from frb.hub import compute_used
from frb.models import MODELS, create_model

PUBLISHED_CSV = Path(__file__).resolve().parents[1] / "frb" / "data" / "published_results.csv"
BENCHMARK = "Set5"

MODEL_HEADERS = [
    "model", "group", "params K", "ops G", "weights", "bytes", f"{BENCHMARK} measured",
    f"{BENCHMARK} published", "published in", "bitwise speed-up", "compute (ledger)",
]


@lru_cache(maxsize=None)
def cost(name: str, scale: int) -> Cost:
    """Parameters and operations of a model in BBCU's convention (counted on the meta device)."""
    with torch.device("meta"):
        model = create_model(name, scale)
    return count_cost(model)


def _published_key(name: str) -> tuple[str, str] | None:
    """(model, method) columns of the published table for a public model name; None if not published."""
    spec = MODELS[name]
    if spec.arch == "bicubic":
        return "bicubic", "none"
    if spec.method is None:
        return name, "fp"
    if spec.arch == "srresnet" and spec.method != "frb":
        return "srresnet", spec.method
    return None


@lru_cache(maxsize=None)
def published(scale: int) -> dict[str, tuple[float, float, str]]:
    """``{name: (psnr, ssim, source)}`` on the benchmark at ``scale``, from frb/data/published_results.csv.

    Bicubic takes the RCAN figures, which the standard protocol reproduces (BBCU prints higher ones).
    """
    if not PUBLISHED_CSV.is_file():
        return {}
    with PUBLISHED_CSV.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if int(r["scale"]) == scale and r[f"{BENCHMARK}_psnr"]]
    out = {}
    for name in MODELS:
        key = _published_key(name)
        matches = [r for r in rows if key and (r["model"], r["method"]) == key]
        matches.sort(key=lambda r: r["source"] != "RCAN Table 3")
        if matches:
            r = matches[0]
            out[name] = (float(r[f"{BENCHMARK}_psnr"]), float(r[f"{BENCHMARK}_ssim"]), r["source"])
    return out


def _measured(entry: dict) -> str:
    score = entry.get("metrics", {}).get(BENCHMARK, {})
    if "psnr" not in score:
        return "—"
    return f"{float(score['psnr']):.2f} / {float(score.get('ssim', float('nan'))):.4f}"


def model_rows(scale: int) -> list[list]:
    """One row per public model at ``scale``, in MODEL_HEADERS order."""
    rows = []
    for name, spec in MODELS.items():
        c = cost(name, scale)
        info = find_weights(name, scale)
        pub = published(scale).get(name)
        speedup = info.entry.get("bitwise_speedup")
        usable = spec.arch == "bicubic" or info.path is not None
        if spec.arch == "bicubic":
            source = "not needed"
        else:
            source = info.source if usable else "unavailable: " + ("; ".join(info.notices) or "no weights")
        rows.append([
            name,
            spec.group,
            round(c.params_K, 1),
            round(c.ops_G, 2),
            source,
            info.size_bytes if info.size_bytes is not None else "—",
            _measured(info.entry) if usable else "—",  # never the score of a file that is not there
            f"{pub[0]:.2f} / {pub[1]:.4f}" if pub else "—",
            pub[2] if pub else "—",
            f"{float(speedup):.1f}x" if speedup else "—",
            compute_used(info.entry) if usable and spec.arch != "bicubic" else "—",
        ])
    return rows
