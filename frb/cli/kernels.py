"""``python -m frb kernels``: the paper's Fig. 1 (kernel grids) and Table 1 (binarization errors) as files.

The figure and the numbers are those of the app's Kernels tab, computed by ``frb.kernel_view``
(:func:`frb.kernel_view.kernel_view`); this module only writes them: a PNG, and the table as
markdown and CSV.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

from PIL import Image

from frb import kernel_view as kernels
from frb.cli.common import ALLOW_RANDOM_HELP, UsageError, ensure_output_dir, print_notice
from frb.kernel_view import TABLE_HEADERS, KernelView, markdown_row
from frb.models import MODELS, SCALES


def table_markdown(view: KernelView, scale: int) -> str:
    """Table 1 of a ``KernelView`` as markdown, with a line on what the numbers are."""
    lines = [
        f"# Table 1: {view.model} x{scale}, layer `{view.layer}` (weights {'x'.join(map(str, view.weight_shape))})",
        "",
        (
            "Relative error sum|W - W_b| / sum|W| per output channel: vanilla binarization (mean|W_c| sign(W)) "
            "against FRB's two bases; FRB improvement = 100 (1 - FRB error / vanilla error)."
        ),
        "",
    ]
    if view.notice:
        lines += [f"Note: {view.notice}.", ""]
    lines += ["| " + " | ".join(TABLE_HEADERS) + " |", "|" + "---|" * len(TABLE_HEADERS)]
    lines += [markdown_row(row) for row in view.rows]
    return "\n".join(lines) + "\n"


def write_outputs(view: KernelView, scale: int, out_dir: Path) -> list[Path]:
    """Write ``fig1_<model>_x<scale>_<layer>.png`` and ``table1_...`` ``.md`` / ``.csv``; returns the paths."""
    stem = f"{view.model}_x{scale}_{view.layer}"
    png, md, csv_path = out_dir / f"fig1_{stem}.png", out_dir / f"table1_{stem}.md", out_dir / f"table1_{stem}.csv"
    Image.fromarray(view.figure).save(png, format="PNG")
    md.write_text(table_markdown(view, scale))
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(TABLE_HEADERS)
        writer.writerows(view.rows)
    return [png, md, csv_path]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    binarized = [name for name, spec in MODELS.items() if spec.binary]
    p = subparsers.add_parser("kernels", help="the paper's Fig. 1 (kernel grids) and Table 1 (binarization errors) of one layer")
    p.add_argument("--model", choices=binarized, default="frbc", help="a binarized model")
    p.add_argument("--layer", default=None, help="a binary layer (default: body.0.conv1, or the model's first binary layer)")
    p.add_argument("--scale", type=int, choices=SCALES, default=4)
    p.add_argument("-o", "--output", required=True, help="output folder (created if needed)")
    p.add_argument("--allow-random", action="store_true", help=ALLOW_RANDOM_HELP)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.layer is not None:
        valid = kernels.layer_names(args.model, args.scale)
        if args.layer not in valid:
            raise UsageError(f"{args.model} has no binary layer {args.layer!r}; valid layers: {', '.join(valid)}")
    out_dir = ensure_output_dir(Path(args.output))
    view = kernels.kernel_view(args.model, args.layer, args.scale, allow_random=args.allow_random)
    print_notice(view.notice)
    for path in write_outputs(view, args.scale, out_dir):
        print(f"written: {path}")
    last = view.rows[-1]
    print(f"{view.model} x{args.scale} {view.layer}: vanilla error {last[1]:.4f}, FRB error {last[2]:.4f}, "
          f"FRB improvement {last[3]:.1f} %")
    return 0
