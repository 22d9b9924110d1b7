"""The campaign's report: ``python -m train.report``, the README's tables and learning curves.

Everything here is read from what the campaign wrote, never measured by guessing: the results
tables from the shipped files' manifest (their scores were measured on those files; bicubic is
measured here), the chunk history and the recipe sweeps from the stages' records in the run
folder, the ablation table from ``assets/weights/ablation/manifest.json``, and the learning curves
(Set5 Y-PSNR against the CPU-hours in each model's ledger) from the chunks' Set5 scores, and the
FRB supplement's Table 1 against ours from the shipped SRResNet x4 (FRBC's teacher).

``--readme README.md`` rewrites the blocks between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``
(results-x4, results-x2, campaign-chunks, recipe-sweeps, ablation, table1); ``--plot FILE.png`` draws
the curves. Without them the blocks are printed.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import torch

from frb import hub
from frb.ablation import ablation_table, read_ablation
from frb.evaluate import BENCHMARK_SETS, evaluate_model, published_results, published_row
from frb.kernel_view import DEFAULT_LAYER, NUM_CHANNELS, SUPPLEMENT_TABLE1, TABLE_HEADERS, markdown_row, weight_error_rows
from frb.models import MODELS, create_model, get_spec
from train.campaign import CURVE_SET, Campaign, add_campaign_arguments, campaign_from_args


def results_table(entries: list[dict[str, Any]], scale: int, bicubic: dict[str, dict[str, float]]) -> str:
    """The README's results table at ``scale`` from manifest entries: scores measured on the shipped
    files (bicubic's measured here, ``bicubic``), the published numbers beside them, and each model's
    compute from its ledger."""
    published = published_results()
    cell = lambda m: f"{m['psnr']:.2f} / {m['ssim']:.4f}" if m else ""
    lines = ["| model | " + " | ".join(BENCHMARK_SETS) + " | published " + " / ".join(BENCHMARK_SETS) + " | compute (ledger) |",
             "|---|" + "---|" * (len(BENCHMARK_SETS) + 2)]
    for name in MODELS:
        entry = {"metrics": bicubic} if name == "bicubic" else next(
            (e for e in entries if e["name"] == name and e["scale"] == scale), None)
        if entry is None:
            continue
        ref = published_row(name, scale, published)
        pub = " / ".join(f"{float(ref[f'{b}_psnr']):.2f}" if ref and ref.get(f"{b}_psnr") else "-" for b in BENCHMARK_SETS)
        scores = " | ".join(cell(entry["metrics"].get(b)) for b in BENCHMARK_SETS)
        lines.append(f"| {name} | {scores} | {pub} | {hub.compute_used(entry) if get_spec(name).needs_weights else '-'} |")
    bar = [r for r in published if r["method"] == "bbcu_l" and int(r["scale"]) == scale]
    if bar:
        pub = " / ".join(f"{float(bar[0][f'{b}_psnr']):.2f}" for b in BENCHMARK_SETS)
        lines.append(f"| BBCU-L (the bar FRB beats; published only) |{' |' * len(BENCHMARK_SETS)} {pub} | - |")
    return "\n".join(lines) + "\n"


def curve_points(campaign: Campaign) -> dict[str, list[tuple[float, float]]]:
    """Per model and scale (``"frbc x4"``): (CPU-hours in its ledger, Set5 Y-PSNR) after every chunk."""
    points: dict[str, list[tuple[float, float]]] = {}
    for stage in campaign.plan.stages:
        if not stage.ship:
            continue
        for chunk in campaign.record(stage)["chunks"]:
            psnr = chunk.get(f"{CURVE_SET}_psnr") or (chunk.get("metrics") or {}).get(CURVE_SET)
            if psnr is not None and chunk.get("cpu_hours") is not None:
                points.setdefault(f"{stage.model} x{stage.scale}", []).append((chunk["cpu_hours"], float(psnr)))
    return points


CURVE_COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207),
                 (140, 86, 75), (227, 119, 194), (188, 189, 34), (0, 0, 128), (204, 163, 0), (0, 90, 50)]
"""Distinct colours, none black or grey (the axes, text and bicubic bar are)."""


def curve_colour(model: str) -> tuple[int, int, int]:
    """One colour per trained model, the same at every scale: the registry's trained models in order
    over ``CURVE_COLOURS`` (as many colours as models, so no two curves share one)."""
    trained = [name for name in MODELS if get_spec(name).needs_weights]
    return CURVE_COLOURS[trained.index(model) % len(CURVE_COLOURS)]


def nice_ticks(low: float, high: float, most: int = 6) -> list[float]:
    """Round tick values inside [low, high]: the smallest step of 1, 2, 2.5 or 5 times a power of ten
    that gives at most ``most`` ticks."""
    span = high - low
    power = 10.0 ** math.floor(math.log10(span / most)) if span > 0 else 1.0
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if span / (m * power) <= most)
    first = math.ceil(low / step - 1e-9) * step
    return [first + k * step for k in range(int((high - first) / step + 1e-9) + 1)]


def dashed_line(draw: Any, y: float, x0: float, x1: float, colour: tuple[int, int, int], dash: int = 6) -> None:
    """A horizontal dashed line (PIL draws only solid ones)."""
    for x in range(int(x0), int(x1), 2 * dash):
        draw.line([(x, y), (min(x + dash, x1), y)], fill=colour, width=1)


def plot_curves(points: dict[str, list[tuple[float, float]]], path: Path, bicubic: dict[str, float] | None = None,
                width: int = 900, panel_height: int = 320) -> None:
    """The learning curves as a PNG: Set5 Y-PSNR against the CPU-hours each model received, one
    panel per scale (x4 above x2, each with its own dB range, one CPU-hour axis for all). Each model
    keeps its colour at both scales (``curve_colour``); full-precision models are drawn with squares,
    binarized ones with dots; ``bicubic`` (Set5 dB by scale label, ``{"x4": 28.43}``) is drawn as a
    dashed line, the bar every binarized model but BNN and Bi-Real has to clear. The legend gives each
    model's latest point, in the registry's order."""
    from PIL import Image, ImageDraw, ImageFont

    if not points:
        raise ValueError("no chunk has a learning-curve point yet")
    bicubic = bicubic or {}
    order = {name: k for k, name in enumerate(MODELS)}
    model_of = lambda label: label.rsplit(" ", 1)[0]
    scales = sorted({label.rsplit(" ", 1)[1] for label in points}, key=lambda s: -int(s.lstrip("x")))
    x1 = max(x for pts in points.values() for x, _ in pts) * 1.05 or 1.0
    img = Image.new("RGB", (width, panel_height * len(scales)), "white")
    draw, font = ImageDraw.Draw(img), ImageFont.load_default()
    for row, scale in enumerate(scales):
        panel = {label: pts for label, pts in points.items() if label.endswith(f" {scale}")}
        ys = [y for pts in panel.values() for _, y in pts] + ([bicubic[scale]] if scale in bicubic else [])
        y0, y1 = min(ys) - 0.2, max(ys) + 0.2
        origin = row * panel_height
        left, top, right, bottom = 70, origin + 30, width - 200, origin + panel_height - 50
        px = lambda x: left + x / x1 * (right - left)
        py = lambda y: bottom - (y - y0) / (y1 - y0) * (bottom - top)
        draw.rectangle([left, top, right, bottom], outline="black")
        for xv in nice_ticks(0.0, x1):
            if 0 < px(xv) - left < right - left:
                draw.line([(px(xv), top), (px(xv), bottom)], fill=(225, 225, 225))
            draw.text((px(xv) - 10, bottom + 6), f"{xv:g}", fill="black", font=font)
        for yv in nice_ticks(y0, y1):
            draw.line([(left, py(yv)), (right, py(yv))], fill=(225, 225, 225))
            draw.text((8, py(yv) - 6), f"{yv:g}", fill="black", font=font)
        if scale in bicubic:
            dashed_line(draw, py(bicubic[scale]), left, right, (90, 90, 90))
            draw.text((left + 6, py(bicubic[scale]) - 14), f"bicubic {bicubic[scale]:.2f} dB", fill=(90, 90, 90), font=font)
        draw.text(((left + right) // 2 - 60, bottom + 28), "CPU-hours in the ledger", fill="black", font=font)
        draw.text((left, origin + 8), f"{scale}: {CURVE_SET} Y-PSNR (dB) after each campaign chunk", fill="black", font=font)
        for k, label in enumerate(sorted(panel, key=lambda lab: order.get(model_of(lab), len(order)))):
            colour, square = curve_colour(model_of(label)), not get_spec(model_of(label)).binary
            xy = [(px(x), py(y)) for x, y in sorted(panel[label])]
            if len(xy) > 1:
                draw.line(xy, fill=colour, width=2)
            for x, y in xy:
                (draw.rectangle if square else draw.ellipse)([x - 3, y - 3, x + 3, y + 3], fill=colour)
            draw.text((right + 15, top + 18 * k), f"{label}: {max(panel[label])[1]:.2f} dB", fill=colour, font=font)
    img.save(path, format="PNG")


def replace_blocks(text: str, blocks: dict[str, str]) -> str:
    """``text`` with the lines between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` replaced by ``blocks[NAME]``."""
    for name, block in blocks.items():
        begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        if text.count(begin) != 1 or text.count(end) != 1:
            raise ValueError(f"expected one {begin} ... {end} block")
        head, rest = text.split(begin)
        text = head + begin + "\n" + block + end + rest.split(end, 1)[1]
    return text


def history_table(campaign: Campaign) -> str:
    """Every chunk of the campaign's stages (not its recipe trials): stage, step, cumulative CPU-hours of
    the model, held-out PSNR, shipped."""
    lines = [f"| stage | step | model CPU-h (ledger) | held-out Y-PSNR | shipped file's | shipped | {CURVE_SET} |",
             "|---|---|---|---|---|---|---|"]
    for stage in campaign.plan.stages:
        if stage.sweep:  # recipe trials have their own table (sweep_table)
            continue
        for chunk in campaign.record(stage)["chunks"]:
            hours, curve = chunk.get("cpu_hours"), chunk.get(f"{CURVE_SET}_psnr") or (chunk.get("metrics") or {}).get(CURVE_SET)
            lines.append(f"| {stage.name} | {chunk['step']} | {'' if hours is None else f'{hours:.2f}'} | "
                         f"{chunk['held_out_psnr']:.3f} | {chunk.get('shipped_held_out_psnr') or ''} | "
                         f"{'yes' if chunk['shipped'] else 'no'} | {'' if curve is None else f'{curve:.2f}'} |")
    return "\n".join(lines) + "\n"


def sweep_table(campaign: Campaign) -> str:
    """Every recipe trial: its grid values, steps, its own CPU-hours, held-out PSNR, and the stages
    whose recipe chose it."""
    chosen: dict[str, list[str]] = {}
    for stage in campaign.plan.stages:
        choice = campaign.recipe_choice(stage) if stage.recipe else None
        if choice is not None:
            chosen.setdefault(choice["trial"], []).append(stage.name)
    lines = ["| sweep | model | flags | steps | trial CPU-h | held-out Y-PSNR | chosen by |",
             "|---|---|---|---|---|---|---|"]
    for trial in (t for t in campaign.plan.stages if t.sweep):
        chunks = campaign.record(trial)["chunks"]
        hours = sum(seg["cpu_seconds"] for seg in campaign.own_segments(trial)) / 3600
        flags = ", ".join(f"{k} {v}" for k, v in trial.grid.items())
        score = f"{chunks[-1]['held_out_psnr']:.3f}" if chunks else ""
        lines.append(f"| {trial.sweep} | {trial.model} x{trial.scale} | {flags} | {chunks[-1]['step'] if chunks else 0}/"
                     f"{trial.steps} | {hours:.2f} | {score} | {', '.join(chosen.get(trial.name, []))} |")
    return "\n".join(lines) + "\n"


def table1_block(campaign: Campaign, model: str = "frbc", scale: int = 4) -> str:
    """The FRB supplement's Table 1 against ours: relative errors of the vanilla and FRB binarization of
    the first output channels of ``DEFAULT_LAYER`` in ``model``'s shipped full-precision teacher (the
    weights the student starts from, ``frb.kernel_view``), their ranges, and the supplement's ranges."""
    teacher = get_spec(model).teacher
    path = campaign.shipped_path(teacher, scale)
    if path is None:
        return f"No {teacher} x{scale} weights are shipped yet: Table 1 appears here when they are.\n"
    weight = create_model(teacher, scale, pretrained=path).get_submodule(DEFAULT_LAYER).weight.detach()
    rows = weight_error_rows(weight)[:NUM_CHANNELS]
    lines = [f"FRB supplement Table 1 against ours: the first {NUM_CHANNELS} output channels of {teacher} x{scale}'s "
             f"`{DEFAULT_LAYER}` (`{path.name}`, sha256 {hub.sha256_file(path)[:12]}), relative error "
             "`sum|W - W_b| / sum|W|` of the vanilla (`mean|W_c| sign(W)`) and the FRB (two bases) binarization:",
             "", "| " + " | ".join(TABLE_HEADERS) + " |", "|" + "---|" * len(TABLE_HEADERS)]
    lines += [markdown_row(row) for row in rows]
    ours = [(min(r[k] for r in rows), max(r[k] for r in rows)) for k in (1, 2, 3)]
    paper = [SUPPLEMENT_TABLE1[h] for h in TABLE_HEADERS[1:]]
    for label, spans, digits in (("range, ours", ours, (4, 4, 1)), ("range, FRB supplement Table 1", paper, (4, 4, 2))):
        lines.append(f"| {label} | " + " | ".join(f"{lo:.{d}f}-{hi:.{d}f}" for (lo, hi), d in zip(spans, digits)) + " |")
    return "\n".join(lines) + "\n"


def bicubic_scores(campaign: Campaign) -> dict[int, dict[str, dict[str, float]]]:
    """Bicubic's scores on the campaign's benchmarks at x4 and x2, measured here."""
    return {scale: evaluate_model(create_model("bicubic", scale), campaign.benchmarks, scale, torch.device("cpu"))
            for scale in (4, 2)}


def readme_blocks(campaign: Campaign, bicubic: dict[int, dict[str, dict[str, float]]]) -> dict[str, str]:
    """Every README block the report owns, by name (``bicubic`` from ``bicubic_scores``)."""
    entries = hub.read_manifest(campaign.assets)
    blocks = {}
    for scale, scores in bicubic.items():
        blocks[f"results-x{scale}"] = results_table(entries, scale, scores)
    blocks["campaign-chunks"] = history_table(campaign)
    blocks["recipe-sweeps"] = sweep_table(campaign)
    blocks["ablation"] = ablation_table(read_ablation(campaign.assets))
    blocks["table1"] = table1_block(campaign)
    return blocks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.report", description=__doc__.splitlines()[0])
    add_campaign_arguments(parser)
    parser.add_argument("--readme", help="rewrite the blocks between <!-- NAME:begin --> and <!-- NAME:end --> "
                                         "(results-x4, results-x2, campaign-chunks, recipe-sweeps, ablation, table1) of this file")
    parser.add_argument("--plot", help="also draw the learning curves (Set5 vs CPU-hours) into this PNG")
    args = parser.parse_args(argv)
    campaign = campaign_from_args(args)
    bicubic = bicubic_scores(campaign)
    blocks = readme_blocks(campaign, bicubic)
    if args.readme:
        readme = Path(args.readme)
        try:
            text = replace_blocks(readme.read_text(), blocks)
        except (OSError, ValueError) as err:  # nothing is written: the file stays as it was
            print(f"error: cannot rewrite {readme}: {err}", file=sys.stderr)
            return 1
        readme.write_text(text)
        print(f"rewrote {', '.join(blocks)} in {readme}")
    else:
        for name, block in blocks.items():
            print(f"### {name}\n\n{block}")
    if args.plot:
        points = curve_points(campaign)
        if not points:
            print(f"error: no campaign chunk in {campaign.runs} has a Set5 score yet; {args.plot} not drawn", file=sys.stderr)
            return 1
        plot_curves(points, Path(args.plot), {f"x{scale}": scores[CURVE_SET]["psnr"]
                                              for scale, scores in bicubic.items() if CURVE_SET in scores})
        print(f"written: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
