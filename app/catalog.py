"""The Models tab's facts: cost in BBCU's convention, weights source and size, measured vs published PSNR,
and the paper's ablation as bundled."""
from __future__ import annotations

from functools import lru_cache

import pandas as pd

from frb.ablation import ablation_table, read_ablation
from frb.cost import model_cost
from frb.evaluate import published_results, published_row
from frb.hub import Resolved, compute_used, resolve
from frb.models import MODELS

BENCHMARK = "Set5"

MODEL_HEADERS = [
    "model", "group", "params K", "ops G", "weights", "bytes", f"{BENCHMARK} measured",
    f"{BENCHMARK} published", "published in", "bitwise speed-up", "compute (ledger)",
]


@lru_cache(maxsize=None)
def published(scale: int) -> dict[str, tuple[float, float, str]]:
    """``{name: (psnr, ssim, source)}`` on the benchmark at ``scale``: ``frb.evaluate.published_row``'s
    match for each model (bicubic takes the RCAN figures, which the standard protocol reproduces)."""
    rows = published_results()
    out = {}
    for name in MODELS:
        row = published_row(name, scale, rows)
        if row and row.get(f"{BENCHMARK}_psnr"):
            out[name] = (float(row[f"{BENCHMARK}_psnr"]), float(row[f"{BENCHMARK}_ssim"]), row["source"])
    return out


def _measured(entry: dict) -> str:
    score = entry.get("metrics", {}).get(BENCHMARK, {})
    if "psnr" not in score:
        return "—"
    return f"{float(score['psnr']):.2f} / {float(score.get('ssim', float('nan'))):.4f}"


def weights_infos(scale: int) -> dict[str, Resolved]:
    """Every model's verified weights at ``scale`` (hashes the files: compute once per view)."""
    return {name: resolve(name, scale) for name in MODELS}


def model_rows(
    scale: int, speedups: dict[str, float] | None = None, infos: dict[str, Resolved] | None = None
) -> list[list]:
    """One row per public model at ``scale``, in MODEL_HEADERS order; ``speedups`` are the bitwise
    speed-ups measured on this machine (``frb.bench.model_speedups``), when they have been."""
    rows = []
    speedups = speedups or {}
    infos = infos or weights_infos(scale)
    for name, spec in MODELS.items():
        c = model_cost(name, scale)
        info = infos[name]
        pub = published(scale).get(name)
        speedup = speedups.get(name)
        usable = not spec.needs_weights or info.path is not None
        if not spec.needs_weights:
            source = "not needed"
        else:
            source = info.label if usable else "unavailable: " + ("; ".join(info.notices) or "no weights")
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
            f"{speedup:.2f}x" if speedup else "—",
            compute_used(info.entry) if usable and spec.needs_weights else "—",
        ])
    return rows


POINT_COLUMNS = ["model", "source", "ops G", "size KB", f"{BENCHMARK} PSNR (dB)"]


def model_points(scale: int, infos: dict[str, Resolved] | None = None) -> pd.DataFrame:
    """The PSNR vs cost plot's points at ``scale``: each model's measured score (shipped weights only)
    and its published one where a paper gives it, with operations and size in BBCU's convention
    (size = params K x 4 bytes: 32 bits per real-valued weight, 1 per binary one)."""
    points = []
    infos = infos or weights_infos(scale)
    for name, spec in MODELS.items():
        c = model_cost(name, scale)
        info = infos[name]
        score = info.entry.get("metrics", {}).get(BENCHMARK, {}).get("psnr")
        usable = not spec.needs_weights or info.path is not None
        for source, psnr in (("measured (shipped weights)", score if usable else None),
                             ("published", published(scale).get(name, (None,))[0])):
            if psnr is not None:
                points.append([name, source, round(c.ops_G, 2), round(4 * c.params_K, 1), round(float(psnr), 2)])
    return pd.DataFrame(points, columns=POINT_COLUMNS)


def ablation_markdown() -> str:
    """The ablation's heading, what it is, and ``frb.ablation``'s table of the bundled files."""
    return ("### The paper's ablation (FRBC x4)\n\nThe same teacher, the same steps for each row: first-order "
            "weights without distillation (vanilla), then with SRB (second weight base), with DBT (block-wise "
            "distillation), and with both (FRB). Scores measured on the bundled files "
            "(`python -m frb eval --ablation` measures them again).\n\n" + ablation_table(read_ablation()))
