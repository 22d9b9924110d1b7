"""Y-PSNR / SSIM of a model on folders of HR images, and the comparison with published numbers.

Protocol (that of the SR literature): each HR image is cropped to a multiple of the scale
(``modcrop``), its LR twin is MATLAB-bicubic downscaled and rounded to uint8 (``make_lr``), the
model's output is rounded to uint8, and PSNR / SSIM are computed on the BT.601 luma with a border
of ``scale`` pixels removed (``frb.metrics``). Per-set numbers are plain averages over images.

Weights are found by *resolvers*, functions ``(model name, scale) -> path or None`` tried in
order (``locate_weights``); ``weights_in(folder)`` is the one for folders of trained weights, and a
resolver for bundled or Hub weights can be added to the list without touching the rest.

``--backend bitwise`` (the command's default) scores binarized models on the packed XNOR/popcount
engine that ``frb upscale`` and the app run (``frb.bitwise``), ``--backend torch`` on the
fake-quantised torch model; both give the same PSNR to ``BACKEND_AGREEMENT_DB`` on Set5 (tested for
every shipped binarized model; the campaign ships none that does not). Full-precision models always
run in torch.
"""
from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from frb import hub
from frb.bitwise.runner import make_runner
from frb.imaging import ImageError, load_image, make_lr, to_tensor, to_uint8
from frb.metrics import psnr_y, ssim_y
from frb.models import get_spec
from frb.tiling import tiled_forward, tiling_context

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
BENCHMARK_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "benchmark"
BENCHMARK_SETS = ("Set5", "Set14", "B100")
PUBLISHED_CSV = Path(__file__).resolve().parent / "data" / "published_results.csv"
PUBLISHED_SETS = ("Set5", "Set14", "B100", "Urban100", "Manga109")

BACKEND_AGREEMENT_DB = 0.01
"""How far a binarized model's Set5 Y-PSNR on the torch backend and on the packed engine may lie
apart. Both take the same exact binary dot products; they round the float parts (scales, bias,
shortcuts) in different orders, which moves a score by far less than this unless the model's output
hangs on that rounding: a sign taken of a value within rounding of zero, whose flip then spreads
through the body (seen in a trained BNN x2, whose unscaled body carries values near 900: 0.076 dB)."""

WeightsResolver = Callable[[str, int], "Path | None"]


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


def image_files(folders: Iterable[str | Path]) -> list[Path]:
    """Every png / jpg / jpeg / bmp file under the folders (recursive, case-insensitive), sorted."""
    files: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"image folder not found: {folder}")
        files += sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return files


def set_name(folder: str | Path) -> str:
    """Benchmark name of a folder: ``.../Set5/HR`` -> ``Set5``, ``.../photos`` -> ``photos``."""
    folder = Path(folder).resolve()
    return folder.parent.name if folder.name.upper() == "HR" else folder.name


def default_data_dirs() -> list[Path]:
    """The Set5 / Set14 / B100 HR folders under ``../shared/data/benchmark`` that exist."""
    return [BENCHMARK_ROOT / s / "HR" for s in BENCHMARK_SETS if (BENCHMARK_ROOT / s / "HR").is_dir()]


@dataclass
class Pair:
    """An evaluation image: ``hr`` cropped to a multiple of the scale, ``lr`` = imresize(hr, 1/scale)."""

    name: str
    hr: np.ndarray
    lr: np.ndarray


def load_pairs(folder: str | Path, scale: int) -> list[Pair]:
    """HR/LR pairs of every image of a folder; unreadable files raise ``ImageError`` naming the file."""
    pairs = []
    for path in image_files([folder]):
        try:
            hr, lr = make_lr(load_image(path), scale)
        except ImageError as exc:
            raise ImageError(f"{path}: {exc}") from exc
        pairs.append(Pair(path.name, hr, lr))
    if not pairs:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return pairs


# --------------------------------------------------------------------------------------------
# Models and weights
# --------------------------------------------------------------------------------------------


def weights_file_name(name: str, scale: int) -> str:
    """``<name>_x<scale>.safetensors``, the name training exports."""
    return f"{name}_x{scale}.safetensors"


def weights_in(folder: str | Path) -> WeightsResolver:
    """A resolver looking for ``folder/<stem>.safetensors`` or ``folder/<stem>/<stem>.safetensors``.

    ``<stem>`` is ``<name>_x<scale>``; the second form is training's default output layout
    (``runs/frbc_x4/frbc_x4.safetensors``). Ablation runs (``runs/frbc_x4_nodbt/...``) do not match.
    """
    root = Path(folder)

    def resolve(name: str, scale: int) -> Path | None:
        file = weights_file_name(name, scale)
        for candidate in (root / file, root / Path(file).stem / file):
            if candidate.is_file():
                return candidate
        return None

    return resolve


def locate_weights(name: str, scale: int, resolvers: Sequence[WeightsResolver]) -> Path | None:
    """The first path a resolver returns for (name, scale), or None."""
    for resolve in resolvers:
        path = resolve(name, scale)
        if path is not None:
            return Path(path)
    return None


def bundled_weights(name: str, scale: int) -> Path | None:
    """The resolver of the shipped weights: bundled assets, then the Hugging Face cache (``frb.hub``)."""
    return hub.resolve(name, scale).path


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


@torch.inference_mode()
def super_resolve(
    model: nn.Module, lr: np.ndarray, device: torch.device, tile: int = 0, forward: Callable | None = None
) -> np.ndarray:
    """SR of one uint8 ``HxWx3`` image in float32, rounded back to uint8; ``forward`` runs ``model``
    (default: the torch model itself; e.g. a ``frb.bitwise`` runner of it).

    ``tile > 0`` runs the model on ``tile x tile`` LR tiles (bounded memory) with the context the model
    declares (``frb.tiling.tiling_context``: exact for the SRResNet family).
    """
    x = to_tensor(lr).to(device)
    return to_uint8(tiled_forward(forward or model, x, model.scale, tile, tiling_context(model).pad))


def evaluate_pairs(
    model: nn.Module,
    pairs: Sequence[Pair],
    scale: int,
    device: torch.device,
    ssim: bool = True,
    tile: int = 0,
    desc: str | None = None,
    backend: str = "torch",
) -> dict[str, float]:
    """Average Y-PSNR (and Y-SSIM) over the pairs, border crop = scale: ``{"psnr", "ssim", "images"}``.

    ``backend="bitwise"`` runs a binarized model on the packed CPU engine (packed once, here)."""
    if backend == "bitwise" and device.type != "cpu":
        raise ValueError(f"the bitwise backend runs on the CPU only, not on {device}; use backend 'torch'")
    forward = make_runner(model, backend) if backend == "bitwise" else None
    psnrs, ssims = [], []
    for pair in tqdm(pairs, desc=desc, leave=False, disable=desc is None):
        sr = super_resolve(model, pair.lr, device, tile, forward)
        psnrs.append(psnr_y(sr, pair.hr, scale))
        if ssim:
            ssims.append(ssim_y(sr, pair.hr, scale))
    result = {"psnr": float(np.mean(psnrs)), "images": len(pairs)}
    if ssim:
        result["ssim"] = float(np.mean(ssims))
    return result


def evaluate_model(
    model: nn.Module, folders: Sequence[str | Path], scale: int, device: torch.device, tile: int = 0,
    backend: str = "torch",
) -> dict[str, dict[str, float]]:
    """``{set name: {"psnr", "ssim", "images"}}`` over benchmark folders, with a progress bar per set."""
    model = model.to(device)
    name = getattr(getattr(model, "spec", None), "name", type(model).__name__)
    return {
        set_name(f): evaluate_pairs(model, load_pairs(f, scale), scale, device, tile=tile, desc=f"{name} {set_name(f)}",
                                    backend=backend)
        for f in folders
    }


# --------------------------------------------------------------------------------------------
# Published numbers and the comparison table
# --------------------------------------------------------------------------------------------


def published_results() -> list[dict[str, str]]:
    """Rows of ``frb/data/published_results.csv`` (see ``frb/data/README.md`` for the sources)."""
    with open(PUBLISHED_CSV, newline="") as f:
        return list(csv.DictReader(f))


def published_row(name: str, scale: int, rows: Sequence[dict[str, str]]) -> dict[str, str] | None:
    """The published row of a model name: backbone + method; bicubic prefers "RCAN Table 3".

    Our bicubic reproduces the RCAN figures (28.42 dB Set5 x4), not BBCU's (28.63 dB).
    """
    spec = get_spec(name)
    key = (spec.arch, "none") if not spec.needs_weights else (name, "fp") if not spec.binary else (spec.arch, spec.method)
    matches = [r for r in rows if (r["model"], r["method"]) == key and int(r["scale"]) == scale]
    matches.sort(key=lambda r: r["source"] != "RCAN Table 3")
    return matches[0] if matches else None


def _cell(psnr: str | float | None, ssim: str | float | None) -> str:
    if psnr in (None, "") or (isinstance(psnr, float) and math.isnan(psnr)):
        return ""
    return f"{float(psnr):.2f} / {float(ssim):.4f}" if ssim not in (None, "") else f"{float(psnr):.2f}"


def comparison_rows(
    results: dict[str, dict[str, dict[str, float]]], scale: int, weights: dict[str, str | None]
) -> list[dict[str, object]]:
    """One long-format row per (model, set): ours beside the published number, when there is one."""
    published = published_results()
    rows = []
    for name, per_set in results.items():
        ref = published_row(name, scale, published)
        for set_, r in per_set.items():
            has_ref = ref is not None and set_ in PUBLISHED_SETS and ref[f"{set_}_psnr"] != ""
            rows.append(
                {
                    "model": name,
                    "scale": scale,
                    "set": set_,
                    "images": r["images"],
                    "psnr": round(r["psnr"], 4),
                    "ssim": round(r["ssim"], 5),
                    "published_psnr": ref[f"{set_}_psnr"] if has_ref else "",
                    "published_ssim": ref[f"{set_}_ssim"] if has_ref else "",
                    "published_source": ref["source"] if has_ref else "",
                    "weights": weights.get(name) or "",
                }
            )
    return rows


def markdown_table(rows: Sequence[dict[str, object]], scale: int) -> str:
    """Model x set table, each cell ``ours PSNR / SSIM`` then the published one, plus BBCU-L's bar."""
    sets = list(dict.fromkeys(str(r["set"]) for r in rows))
    models = list(dict.fromkeys(str(r["model"]) for r in rows))
    head = ["Model"] + [f"{s} ours" for s in sets] + [f"{s} published" for s in sets]
    lines = [
        f"Y-PSNR (dB) / SSIM, x{scale}, border crop = {scale}; published numbers: models trained on DIV2K.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    by_key = {(r["model"], r["set"]): r for r in rows}
    for m in models:
        ours = [_cell(by_key[(m, s)]["psnr"], by_key[(m, s)]["ssim"]) if (m, s) in by_key else "" for s in sets]
        pub = [_cell(by_key[(m, s)]["published_psnr"], by_key[(m, s)]["published_ssim"]) if (m, s) in by_key else "" for s in sets]
        lines.append("| " + " | ".join([m] + ours + pub) + " |")
    bar = [r for r in published_results() if r["method"] == "bbcu_l" and int(r["scale"]) == scale]
    if bar:
        pub = [_cell(bar[0].get(f"{s}_psnr"), bar[0].get(f"{s}_ssim")) for s in sets]
        lines.append("| " + " | ".join(["bbcu_l (published only)"] + [""] * len(sets) + pub) + " |")
    sources = sorted({str(r["published_source"]) for r in rows if r["published_source"]} | ({bar[0]["source"]} if bar else set()))
    lines += ["", "Sources: " + "; ".join(sources) + " (see frb/data/README.md)."]
    return "\n".join(lines) + "\n"
