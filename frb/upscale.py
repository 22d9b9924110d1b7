"""``python -m frb upscale``: super-resolve one image or a folder of images into PNG files.

The flags follow Real-ESRGAN's ``inference_realesrgan.py`` (``-i``, ``-o``, ``-s``, ``-m``,
``--tile``, ``--tile-pad``, ``--suffix``). Models come from ``frb.weights.load_model`` (trained
weights through ``frb.hub``; a model without them stops the command unless ``--allow-random``)
and run on one of ``frb.bitwise``'s backends. Each output is ``<stem><suffix>.png`` in the output
folder, ``<stem>_<ext><suffix>.png`` for inputs that share a stem (photo.jpg and photo.png), written
atomically (a temporary file renamed into place). Nothing is overwritten unless ``--overwrite``:
existing outputs stop the run before any model runs, or are skipped with ``--skip-existing`` (which
also resumes an interrupted run). An unreadable file is reported and skipped, the others are still
written, a summary ends the run (written / skipped / failed, with reasons) and the exit code is 1
when anything failed. Large images run tile by tile (``frb.tiling``) so that memory stays bounded.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from frb.bitwise.runner import BACKENDS, Runner, make_runner
from frb.cli_common import (
    ALLOW_RANDOM_HELP, UsageError, ensure_output_dir, non_negative_int, print_notice, usage_error,
    weights_error,
)
from frb.evaluate import IMAGE_SUFFIXES
from frb.hub import WeightsError
from frb.imaging import ImageError, load_image, to_tensor, to_uint8
from frb.models import MODELS, SCALES
from frb.tiling import tiled_forward
from frb.weights import load_model

#: Read from a folder (a file named on the command line is tried whatever its suffix).
INPUT_SUFFIXES = (*IMAGE_SUFFIXES, ".tif", ".tiff", ".webp", ".gif")
#: LR tile size used when ``--tile`` is not given and the LR image has more than AUTO_TILE_ABOVE pixels.
DEFAULT_TILE = 256
AUTO_TILE_ABOVE = 512 * 512
#: LR pixels of context around each tile.
DEFAULT_TILE_PAD = 16


def input_files(path: Path) -> list[Path]:
    """``[path]`` for a file; the images directly inside a folder (by suffix, sorted) for a folder."""
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in INPUT_SUFFIXES)
        if not files:
            raise UsageError(f"no images ({', '.join(INPUT_SUFFIXES)}) in folder {path}")
        return files
    raise UsageError(f"input not found: {path}")


def output_paths(inputs: Sequence[Path], out_dir: Path, suffix: str) -> list[Path]:
    """``out_dir/<stem><suffix>.png`` for every input, ``<stem>_<ext><suffix>.png`` where stems clash
    (case-insensitively); refuses to overwrite an input."""
    stems: dict[str, int] = {}
    for p in inputs:
        stems[p.stem.lower()] = stems.get(p.stem.lower(), 0) + 1
    name = lambda p: f"{p.stem}_{p.suffix.lstrip('.').lower()}" if stems[p.stem.lower()] > 1 else p.stem
    outputs = [out_dir / f"{name(p)}{suffix}.png" for p in inputs]
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


def tile_size(lr_shape: tuple[int, ...], tile: int | None) -> int:
    """``tile`` when given (0 = whole image); else DEFAULT_TILE above AUTO_TILE_ABOVE LR pixels, 0 below."""
    if tile is not None:
        return tile
    return DEFAULT_TILE if lr_shape[0] * lr_shape[1] > AUTO_TILE_ABOVE else 0


def upscale_image(
    runner: Runner, lr: np.ndarray, scale: int, tile: int | None = None, tile_pad: int = DEFAULT_TILE_PAD
) -> np.ndarray:
    """SR of one ``HxWx3`` uint8 image (rounded back to uint8), tiled as :func:`tile_size` says."""
    y = tiled_forward(runner, to_tensor(lr), scale, tile_size(lr.shape, tile), tile_pad)
    return to_uint8(y)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("upscale", help="super-resolve an image or a folder of images into PNG files")
    p.add_argument("-i", "--input", required=True, help="an image file or a folder of images")
    p.add_argument("-o", "--output", required=True, help="output folder (created if needed)")
    p.add_argument("-s", "--scale", type=int, choices=SCALES, default=4)
    p.add_argument("-m", "--model", choices=list(MODELS), default="frbc")
    p.add_argument("--backend", choices=BACKENDS, default="bitwise", help="bitwise: packed CPU kernels for binary layers")
    p.add_argument("--tile", type=non_negative_int, default=None,
                   help=f"LR tile size, 0 = whole image (default: {DEFAULT_TILE} above {AUTO_TILE_ABOVE:,} LR pixels, else 0)")
    p.add_argument("--tile-pad", type=non_negative_int, default=DEFAULT_TILE_PAD, help="LR pixels of context around each tile")
    p.add_argument("--suffix", default=None, help="added to each output's stem (default: _<model>_x<scale>)")
    p.add_argument("--allow-random", action="store_true", help=ALLOW_RANDOM_HELP)
    existing = p.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    existing.add_argument("--skip-existing", action="store_true", help="keep outputs that already exist (resumes a run)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except UsageError as exc:
        return usage_error("upscale", exc)
    except WeightsError as exc:
        return weights_error("upscale", exc)


def _run(args: argparse.Namespace) -> int:
    inputs = input_files(Path(args.input))
    out_dir = ensure_output_dir(Path(args.output))
    suffix = f"_{args.model}_x{args.scale}" if args.suffix is None else args.suffix
    outputs = output_paths(inputs, out_dir, suffix)
    skip = check_existing(outputs, args.overwrite, args.skip_existing)
    model, notice = load_model(args.model, args.scale, allow_random=args.allow_random)
    if model is None:
        raise WeightsError(notice)
    print_notice(notice)
    runner = make_runner(model, args.backend)

    failed: list[tuple[Path, str]] = []
    written = 0
    for src, dst in zip(tqdm(inputs, desc=f"{args.model} x{args.scale}", unit="image"), outputs):
        if dst in skip:
            continue
        try:
            sr = upscale_image(runner, load_image(src), args.scale, args.tile, args.tile_pad)
            save_png_atomically(sr, dst)
            written += 1
        except (ImageError, OSError) as exc:
            failed.append((src, str(exc)))
            tqdm.write(f"error: {src}: {exc}", file=sys.stderr)
    print(f"{written} of {len(inputs)} images written to {out_dir}"
          + (f", {len(skip)} skipped (already there)" if skip else "") + (f", {len(failed)} failed:" if failed else ""))
    for src, why in failed:
        print(f"  {src}: {why}")
    return 1 if failed else 0


def save_png_atomically(image: np.ndarray, path: Path) -> None:
    """Write a PNG through a temporary file renamed into place: an interrupted run leaves no half file."""
    tmp = path.with_name(f".{path.name}.partial")
    try:
        Image.fromarray(image).save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
