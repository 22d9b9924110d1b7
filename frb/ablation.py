"""The paper's ablation at x4, as bundled weights: FRBC with SRB and DBT each on or off.

FRB (Zhang, Qin et al., ICML 2024) adds two parts to a first-order binarized SRResNet, the
"vanilla" baseline (weights alpha * sign(W), activations sign(x), trained with L1 alone):

* SRB, second-order residual binarization of the weights:
  W ~ a1 sign(W) + a2 sign(W - a1 sign(W)), both bases run as XNOR / popcount;
* DBT, distillation-guided binarization training: every block's features are matched to the
  full-precision teacher's through normalized attention maps.

The campaign's ablation stages (``train/plan.toml``: ``ship = false``, all four from the same
teacher at the same steps) keep their finished weights in ``assets/weights/ablation/<stage>.safetensors``,
packed as users run them, each with one entry in that folder's ``manifest.json``: the variant
(``srb``, ``dbt_weight``), sha256, the scores measured on the file, the run's held-out score and its
compute ledger. ``python -m frb eval --ablation`` measures the files again;
``python -m train.report`` prints the README's table from the manifest.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from frb import hub
from frb.evaluate import BENCHMARK_SETS
from frb.ledger import describe, ledger_total

FOLDER_NAME = "ablation"
VARIANTS = ("vanilla (first order, no DBT)", "+SRB", "+DBT", "SRB + DBT (FRB)")  # the paper's order
ENTRY_KEYS = {"stage", "name", "scale", "srb", "dbt_weight", "file", "sha256", "steps", "metrics"}


def ablation_dir(assets: Path | None = None) -> Path:
    """``<weights folder>/ablation`` (default: the bundled ``assets/weights``)."""
    return (Path(assets) if assets is not None else hub.ASSETS_DIR) / FOLDER_NAME


def read_ablation(assets: Path | None = None) -> list[dict[str, Any]]:
    """The ablation manifest's entries, in the paper's order (vanilla, +SRB, +DBT, both); [] when none.

    A manifest that cannot be read, or an entry missing one of ``ENTRY_KEYS``, is a ``WeightsError``.
    """
    path = ablation_dir(assets) / hub.MANIFEST_NAME
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["ablation"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise hub.WeightsError(f"{path} is not a valid ablation manifest ({exc})") from None
    for entry in entries:
        missing = ENTRY_KEYS - set(entry)
        if missing:
            raise hub.WeightsError(f"{path}: entry {entry.get('stage', '?')!r} lacks {sorted(missing)}")
    return sorted(entries, key=lambda e: (e["scale"], _paper_order(e), e["stage"]))


def _paper_order(entry: dict[str, Any]) -> int:
    srb, dbt = bool(entry["srb"]), entry["dbt_weight"] > 0
    return {(False, False): 0, (True, False): 1, (False, True): 2, (True, True): 3}[(srb, dbt)]


def variant(entry: dict[str, Any]) -> str:
    """The row's name: 'vanilla (first order, no DBT)', '+SRB', '+DBT' or 'SRB + DBT (FRB)'."""
    return VARIANTS[_paper_order(entry)]


def load_variant(entry: dict[str, Any], assets: Path | None = None) -> nn.Module:
    """The model of one ablation entry from its bundled file, after checking the file's sha256.

    A missing file or a checksum that differs from the manifest's is a ``WeightsError`` that names
    the file: a damaged ablation file is never measured as if it were the trained one.
    """
    from frb.models import create_model

    path = ablation_dir(assets) / entry["file"]
    if not path.is_file():
        raise hub.WeightsError(f"ablation weights {path} are missing; restore them with git checkout {path}")
    actual = hub.sha256_file(path)
    if actual != entry["sha256"]:
        raise hub.WeightsError(f"ablation weights {path} do not match the manifest (sha256 {actual[:12]}... "
                               f"instead of {entry['sha256'][:12]}...); restore them with git checkout {path}")
    return create_model(entry["name"], int(entry["scale"]), pretrained=path)


def ablation_table(entries: list[dict[str, Any]]) -> str:
    """Markdown: one row per variant with its steps, Y-PSNR / SSIM per benchmark, the held-out score
    it was trained against, and its compute, then a line naming the variants of each scale not yet
    finished; a sentence instead while no ablation stage has finished."""
    if not entries:
        return ("No ablation stage has finished yet (section 6 of `train/plan.toml`, after SwinIR-S x2 "
                "and before the teacher's second cycle); the table appears here when they have.\n")
    sets = [s for s in BENCHMARK_SETS if any(s in e["metrics"] for e in entries)]
    lines = ["| variant | SRB | DBT | scale | steps | " + " | ".join(sets) + " | held-out Y-PSNR | compute (ledger) |",
             "|---|---|---|---|---|" + "---|" * (len(sets) + 2)]
    for e in entries:
        scores = [f"{e['metrics'][s]['psnr']:.2f} / {e['metrics'][s]['ssim']:.4f}" if s in e["metrics"] else "" for s in sets]
        held_out = (e.get("validation") or {}).get("held_out_psnr")
        runs = (e.get("ledger") or {}).get("runs") or []
        dbt = f"yes ({e['dbt_weight']:g})" if e["dbt_weight"] > 0 else "no"
        cells = [variant(e), "yes" if e["srb"] else "no", dbt, f"x{e['scale']}", f"{e['steps']:,}", *scores,
                 "" if held_out is None else f"{held_out:.3f}", describe(ledger_total(runs)) if runs else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    for scale in sorted({e["scale"] for e in entries}):
        done = {_paper_order(e) for e in entries if e["scale"] == scale}
        missing = [VARIANTS[i] for i in range(len(VARIANTS)) if i not in done]
        if missing:
            lines.append(f"\nNot finished yet at x{scale} (section 6 of `train/plan.toml`): {', '.join(missing)}.")
    return "\n".join(lines) + "\n"
