"""``python -m frb upscale``: super-resolve one image or a folder of images into image files.

The flags follow Real-ESRGAN's ``inference_realesrgan.py`` (``-i``, ``-o``, ``-s``, ``-m``,
``--tile``, ``--tile-pad``, ``--suffix``, ``--ext``). Models come from ``frb.weights.load_model``
(trained weights through ``frb.hub``; a model without them stops the command unless
``--allow-random``) and run on one of ``frb.bitwise``'s backends.

Images are kept whole (``frb.picture``): transparency is upscaled separately with bicubic
interpolation (Real-ESRGAN's ``--alpha_upsampler bicubic``) and written back as RGBA, 16-bit
inputs give 16-bit PNGs, and the ICC profile and EXIF data (orientation applied to the pixels and
reset) are carried to the output. JPEG and WebP hold 8 bits (JPEG no alpha): what an output
format cannot hold is said in a note.

Each output is ``<stem><suffix>.<ext>`` in the output folder (sub-folders mirrored with
``--recursive``), ``<stem>_<ext><suffix>.<ext>`` for inputs that share a stem (photo.jpg and
photo.png), written atomically (a temporary file renamed into place). Nothing is overwritten unless
``--overwrite``: existing outputs stop the run before any model runs, or are skipped with
``--skip-existing`` (which also resumes an interrupted run). An unreadable file is reported and
skipped, the others are still written, a summary ends the run (written / skipped / failed, with
reasons) and the exit code is 1 when anything failed.

Memory stays bounded for any image size: a large image runs tile by tile (``frb.tiling``, with the
context each model declares: exact for the SRResNet family, within the README's stated tolerance for
SwinIR and BTM), and a PNG output is compressed one band of tiles at a time (``frb.png.PngStream``),
so the full-resolution result is never held in memory (JPEG and WebP outputs are). A progress bar
advances per tile, with an ETA.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from frb.bitwise.runner import BACKENDS, Runner, make_runner
from frb.cli_common import (
    ALLOW_RANDOM_HELP, UsageError, ensure_output_dir, non_negative_int, print_notice, usage_error,
    weights_error,
)
from frb.evaluate import IMAGE_SUFFIXES
from frb.hub import WeightsError
from frb.imaging import ImageError, imresize_torch
from frb.models import MODELS, SCALES
from frb.picture import Picture, load_picture
from frb.png import PngStream
from frb.tiling import tile_count, tiled_bands, tiling_context
from frb.weights import load_model

#: Read from a folder (a file named on the command line is tried whatever its suffix).
INPUT_SUFFIXES = (*IMAGE_SUFFIXES, ".tif", ".tiff", ".webp", ".gif")
#: LR tile size used when ``--tile`` is not given and the LR image has more than AUTO_TILE_ABOVE pixels.
DEFAULT_TILE = 256
AUTO_TILE_ABOVE = 512 * 512
#: Output formats, and the longest side each can hold.
OUTPUT_FORMATS = {"png": 2**31 - 1, "jpg": 65535, "webp": 16383}
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


def tile_size(lr_shape: tuple[int, ...], tile: int | None) -> int:
    """``tile`` when given (0 = whole image); else DEFAULT_TILE above AUTO_TILE_ABOVE LR pixels, 0 below."""
    if tile is not None:
        return tile
    return DEFAULT_TILE if lr_shape[0] * lr_shape[1] > AUTO_TILE_ABOVE else 0


def upscale_bands(
    runner: Runner, picture: Picture, scale: int, tile: int | None, tile_pad: int, on_tile=None
) -> Iterator[np.ndarray]:
    """SR of a picture as bands of rows, top to bottom: ``(rows, s*W, 3 or 4)`` at the picture's bit
    depth, tiled as :func:`tile_size` says. The model runs on the colour planes, bicubic on the alpha
    plane; each patch is converted to float (``v / max``) only when it runs, and back with
    ``floor(max * clamp(v, 0, 1) + 0.5)``."""
    planes = picture.rgb if picture.alpha is None else np.dstack([picture.rgb, picture.alpha])
    if planes.dtype == np.uint16 or not planes.flags.writeable:  # torch has no uint16 arithmetic
        planes = planes.astype(np.int32 if planes.dtype == np.uint16 else np.uint8)
    x = torch.from_numpy(planes).permute(2, 0, 1)[None]
    top = picture.max_value

    @torch.inference_mode()
    def forward(patch: Tensor) -> Tensor:  # quantized per tile: a band is held as integers, not floats
        f = patch.float().div_(top)
        y = runner(f[:, :3])
        if f.shape[1] == 4:
            y = torch.cat([y, imresize_torch(f[:, 3:], scale)], dim=1)
        return torch.floor(y.clamp_(0.0, 1.0).mul_(top).add_(0.5)).to(torch.int32 if top > 255 else torch.uint8)

    dtype = np.uint16 if picture.bit_depth == 16 else np.uint8
    for band in tiled_bands(forward, x, scale, tile_size(picture.rgb.shape, tile), tile_pad, on_tile):
        yield band[0].permute(1, 2, 0).numpy().astype(dtype, copy=False)


def upscale_image(runner: Runner, lr: np.ndarray, scale: int, tile: int | None, tile_pad: int) -> np.ndarray:
    """SR of one ``HxWx3`` uint8 image as one array (for images that fit in memory)."""
    return np.concatenate(list(upscale_bands(runner, Picture(lr), scale, tile, tile_pad)))


def write_upscaled(
    runner: Runner, picture: Picture, scale: int, tile: int | None, tile_pad: int, dst: Path,
    quality: int = 95, desc: str = "",
) -> list[str]:
    """Upscale ``picture`` into ``dst`` (format from its suffix) with a per-tile progress bar; returns
    notes on what the format could not hold. PNG is written band by band; JPEG and WebP whole."""
    h, w = picture.rgb.shape[:2]
    fmt = dst.suffix.lstrip(".").lower()
    if max(scale * h, scale * w) > OUTPUT_FORMATS[fmt]:
        raise ImageError(f"x{scale} of {w}x{h} is {scale * w}x{scale * h}, above {fmt.upper()}'s limit of "
                         f"{OUTPUT_FORMATS[fmt]} pixels per side; use --ext png")
    total = tile_count(h, w, tile_size(picture.rgb.shape, tile))
    channels = 3 if picture.alpha is None else 4
    with tqdm(total=total, desc=desc, unit="tile", leave=False, disable=total == 1) as bar:
        bands = upscale_bands(runner, picture, scale, tile, tile_pad, bar.update)
        if fmt == "png":
            with PngStream(dst, scale * w, scale * h, channels, picture.bit_depth, icc_profile=picture.icc_profile,
                           exif=picture.exif) as png:
                for band in bands:
                    png.write(band)
            return []
        return save_whole(np.concatenate(list(bands)), picture, dst, fmt, quality)


def save_whole(sr: np.ndarray, picture: Picture, dst: Path, fmt: str, quality: int) -> list[str]:
    """Save a JPEG or WebP (8 bits; JPEG without alpha) through a temporary file; returns the notes."""
    notes = []
    if sr.dtype == np.uint16:
        sr = np.floor(sr / 257.0 + 0.5).astype(np.uint8)
        notes.append(f"{fmt.upper()} holds 8 bits: the 16-bit result was reduced to 8 bits (use --ext png to keep 16)")
    if fmt == "jpg" and sr.shape[2] == 4:
        alpha = sr[:, :, 3:].astype(np.float32) / 255.0
        sr = np.floor(sr[:, :, :3] * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
        notes.append("JPEG has no transparency: it was flattened onto white (use --ext png or webp to keep it)")
    options = {"quality": quality, "icc_profile": picture.icc_profile, "exif": picture.exif or b""}
    tmp = dst.with_name(f".{dst.name}.partial")
    try:
        Image.fromarray(sr).save(tmp, format="JPEG" if fmt == "jpg" else "WEBP", **options)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return notes


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
    try:
        return _run(args)
    except UsageError as exc:
        return usage_error("upscale", exc)
    except WeightsError as exc:
        return weights_error("upscale", exc)


def _run(args: argparse.Namespace) -> int:
    root = Path(args.input)
    inputs = input_files(root, args.recursive)
    out_dir = ensure_output_dir(Path(args.output))
    suffix = f"_{args.model}_x{args.scale}" if args.suffix is None else args.suffix
    outputs = output_paths(inputs, root, out_dir, suffix, args.ext)
    skip = check_existing(outputs, args.overwrite, args.skip_existing)
    model, notice = load_model(args.model, args.scale, allow_random=args.allow_random)
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
