"""``python -m frb upscale``: super-resolve one image or a folder of images into image files.

The flags follow Real-ESRGAN's ``inference_realesrgan.py`` (``-i``, ``-o``, ``-s``, ``-m``,
``--tile``, ``--tile-pad``, ``--suffix``, ``--ext``). Models come from ``frb.weights.shared_model``
(trained weights through ``frb.hub``; a model without them stops the command unless
``--allow-random``) and run on one of ``frb.bitwise``'s backends; each image goes through
``frb.upscale.write_upscaled`` (tiles, streamed PNG, alpha / 16 bits / ICC / EXIF kept).

Each output is ``<stem><suffix>.<ext>`` in the output folder (sub-folders mirrored with
``--recursive``), ``<stem>_<ext><suffix>.<ext>`` for inputs that share a stem (photo.jpg and
photo.png), written atomically (a temporary file renamed into place). Nothing is overwritten unless
``--overwrite``: existing outputs stop the run before any model runs, or are skipped with
``--skip-existing`` (which also resumes an interrupted run). An unreadable file is reported and
skipped, the others are still written, a summary ends the run (written / skipped / failed, with
reasons) and the exit code is 1 when anything failed. A progress bar advances per tile, with an ETA.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from frb.bitwise.runner import BACKENDS, make_runner
from frb.cli.common import ALLOW_RANDOM_HELP, UsageError, ensure_output_dir, non_negative_int, print_notice
from frb.evaluate import IMAGE_SUFFIXES
from frb.hub import WeightsError
from frb.imaging import ImageError
from frb.models import MODELS, SCALES
from frb.picture import load_picture
from frb.tiling import tile_count, tiling_context
from frb.upscale import AUTO_TILE_ABOVE, DEFAULT_TILE, OUTPUT_FORMATS, tile_size, write_upscaled
from frb.weights import shared_model

#: Read from a folder (a file named on the command line is tried whatever its suffix).
INPUT_SUFFIXES = (*IMAGE_SUFFIXES, ".tif", ".tiff", ".webp", ".gif")
#: Largest accepted input by default, in megapixels (the input itself is held in memory as uint8).
DEFAULT_MAX_MEGAPIXELS = 64.0


def input_files(path: Path, recursive: bool = False) -> list[Path]:
    """``[path]`` for a file; the images inside a folder (by suffix, sorted), in its sub-folders too
    with ``recursive``."""
    if path.is_file():
        return [path]
    if path.is_dir():
        candidates = path.rglob("*") if recursive else path.iterdir()
        files = sorted(p for p in candidates if p.is_file() and p.suffix.lower() in INPUT_SUFFIXES)
        if not files:
            raise UsageError(f"no images ({', '.join(INPUT_SUFFIXES)}) in folder {path}"
                             + ("" if recursive else " (add --recursive for its sub-folders)"))
        return files
    raise UsageError(f"input not found: {path}")


def output_paths(inputs: Sequence[Path], root: Path, out_dir: Path, suffix: str, ext: str = "png") -> list[Path]:
    """``out_dir/<sub-folder>/<stem><suffix>.<ext>`` for every input (its sub-folder relative to
    ``root``, the input folder), ``<stem>_<input ext><suffix>.<ext>`` where stems clash in one folder
    (case-insensitively); refuses to overwrite an input."""
    def folder(p: Path) -> Path:
        return out_dir / p.parent.relative_to(root) if root.is_dir() else out_dir

    stems: dict[tuple[Path, str], int] = {}
    for p in inputs:
        key = (folder(p), p.stem.lower())
        stems[key] = stems.get(key, 0) + 1

    def name(p: Path) -> str:
        return f"{p.stem}_{p.suffix.lstrip('.').lower()}" if stems[(folder(p), p.stem.lower())] > 1 else p.stem

    outputs = [folder(p) / f"{name(p)}{suffix}.{ext}" for p in inputs]
    resolved_inputs = {p.resolve() for p in inputs}
    for dst in outputs:
        if dst.resolve() in resolved_inputs:
            raise UsageError(f"refusing to overwrite the input {dst}; choose another output folder or a non-empty --suffix")
    return outputs


def check_existing(outputs: Sequence[Path], overwrite: bool, skip_existing: bool) -> set[Path]:
    """The outputs to skip; with neither flag, existing outputs are a usage error (nothing is overwritten)."""
    existing = [p for p in outputs if p.exists()]
    if not existing or overwrite:
        return set()
    if skip_existing:
        return set(existing)
    raise UsageError(f"{len(existing)} output(s) already exist, e.g. {existing[0]}; pass --skip-existing to keep "
                     "them (and resume an interrupted run) or --overwrite to replace them")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("upscale", help="super-resolve an image or a folder of images into image files")
    p.add_argument("-i", "--input", required=True, help="an image file or a folder of images")
    p.add_argument("--recursive", action="store_true", help="also the images in the input folder's sub-folders "
                   "(the output folder mirrors them)")
    p.add_argument("-o", "--output", required=True, help="output folder (created if needed)")
    p.add_argument("-s", "--scale", type=int, choices=SCALES, default=4)
    p.add_argument("-m", "--model", choices=list(MODELS), default="frbc")
    p.add_argument("--backend", choices=BACKENDS, default="bitwise", help="bitwise: packed CPU kernels for binary layers")
    p.add_argument("--tile", type=non_negative_int, default=None,
                   help=f"LR tile size, 0 = whole image (default: {DEFAULT_TILE} above {AUTO_TILE_ABOVE:,} LR pixels, else 0)")
    p.add_argument("--tile-pad", type=non_negative_int, default=None,
                   help="LR pixels of context around each tile (default: the model's receptive-field radius, "
                        "which makes tiling exact for the SRResNet family)")
    p.add_argument("--max-megapixels", type=float, default=DEFAULT_MAX_MEGAPIXELS,
                   help="refuse inputs above this many megapixels (default: %(default)s)")
    p.add_argument("--ext", choices=list(OUTPUT_FORMATS), default="png",
                   help="output format: png keeps alpha and 16 bits and streams large images; jpg and webp hold 8 bits")
    p.add_argument("--quality", type=int, choices=range(1, 101), default=95, metavar="1-100",
                   help="JPEG/WebP quality (default: %(default)s)")
    p.add_argument("--suffix", default=None, help="added to each output's stem (default: _<model>_x<scale>)")
    p.add_argument("--allow-random", action="store_true", help=ALLOW_RANDOM_HELP)
    existing = p.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    existing.add_argument("--skip-existing", action="store_true", help="keep outputs that already exist (resumes a run)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    root = Path(args.input)
    inputs = input_files(root, args.recursive)
    out_dir = ensure_output_dir(Path(args.output))
    suffix = f"_{args.model}_x{args.scale}" if args.suffix is None else args.suffix
    outputs = output_paths(inputs, root, out_dir, suffix, args.ext)
    skip = check_existing(outputs, args.overwrite, args.skip_existing)
    model, notice = shared_model(args.model, args.scale, allow_random=args.allow_random)
    if model is None:
        raise WeightsError(notice)
    print_notice(notice)
    runner = make_runner(model, args.backend)
    context = tiling_context(model)
    tile_pad = context.pad if args.tile_pad is None else args.tile_pad
    max_pixels = int(args.max_megapixels * 1e6)

    failed: list[tuple[Path, str]] = []
    written = 0
    tiling_noted = context.exact
    for src, dst in zip(tqdm(inputs, desc=f"{args.model} x{args.scale}", unit="image"), outputs):
        if dst in skip:
            continue
        try:
            picture = load_picture(src, max_pixels=max_pixels)
            if not tiling_noted and tile_count(*picture.rgb.shape[:2], tile_size(picture.rgb.shape, args.tile)) > 1:
                tqdm.write(f"note: large images run tile by tile with {tile_pad} LR pixels of context; "
                           f"{args.model} is not exactly tileable ({context.reason}), so seams may differ "
                           "slightly from a whole-image run (tolerance: README, Reliability)", file=sys.stderr)
                tiling_noted = True
            dst.parent.mkdir(parents=True, exist_ok=True)
            notes = write_upscaled(runner, picture, args.scale, args.tile, tile_pad, dst, args.quality, src.name)
            for note in picture.notices + notes:
                tqdm.write(f"note: {src}: {note}", file=sys.stderr)
            written += 1
        except (ImageError, OSError) as exc:
            failed.append((src, str(exc)))
            tqdm.write(f"error: {src}: {exc}", file=sys.stderr)
    print(f"{written} of {len(inputs)} images written to {out_dir}"
          + (f", {len(skip)} skipped (already there)" if skip else "") + (f", {len(failed)} failed:" if failed else ""))
    for src, why in failed:
        print(f"  {src}: {why}")
    return 1 if failed else 0
