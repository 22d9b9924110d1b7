"""``python -m frb figure``: the paper's visual comparison (Fig. 2-4) for one benchmark image.

The HR image is cropped to a multiple of the scale and MATLAB-bicubic downscaled (``make_lr``);
``frb.figure`` runs the models and draws the picture.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from frb.bitwise.runner import BACKENDS
from frb.cli.common import ALLOW_RANDOM_HELP, UsageError, ensure_output_dir, print_notice
from frb.evaluate import image_files
from frb.figure import Box, default_box, model_panels, render_figure
from frb.imaging import ImageError, load_image, make_lr
from frb.models import MODELS, SCALES

MIN_LR_SIDE = 8  # smaller LR images leave too little for SSIM's 11x11 window after the border crop


def parse_box(text: str) -> Box:
    """argparse type: ``x,y,w,h`` in HR pixels, four whole numbers."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"expected x,y,w,h (four whole numbers), got {text!r}")
    return values  # type: ignore[return-value]


def check_box(box: Box, height: int, width: int) -> None:
    """Raise :class:`UsageError` unless the box has a positive size and lies inside a height x width image."""
    x, y, w, h = box
    where = f"the {width}x{height} image (HR cropped to a multiple of the scale)"
    if w < 1 or h < 1:
        raise UsageError(f"box {x},{y},{w},{h}: width and height must be at least 1")
    if x < 0 or y < 0 or x + w > width or y + h > height:
        raise UsageError(f"box {x},{y},{w},{h} (x,y,w,h) is not inside {where}: it spans x {x}..{x + w}, y {y}..{y + h}")


def find_image(folder: Path, name: str) -> Path:
    """The image of ``folder`` (searched recursively) whose file name or stem is ``name``."""
    if not folder.is_dir():
        raise UsageError(f"data folder not found: {folder}")
    files = image_files([folder])
    matches = [p for p in files if name in (p.name, p.stem)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UsageError(f"{name!r} matches several images; give the file name: {', '.join(str(p) for p in matches)}")
    names = [p.stem for p in files]
    listed = ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
    raise UsageError(f"no image {name!r} in {folder}; images there: {listed or 'none'}")


def parse_models(text: str | None) -> list[str]:
    """Comma-separated public model names (default: all of them), duplicates dropped."""
    if text is None:
        return list(MODELS)
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in MODELS]
    if unknown or not names:
        raise UsageError(f"unknown model(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(MODELS)}")
    return names


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("figure", help="the paper's visual comparison (Fig. 2-4) of the models on one image")
    p.add_argument("--data", required=True, help="folder of HR images, e.g. .../benchmark/Set14/HR")
    p.add_argument("--image", required=True, help="file name or stem of the image in --data, e.g. barbara")
    p.add_argument("--box", type=parse_box, default=None,
                   help="zoomed region x,y,w,h in HR pixels (default: a centred square, a quarter of the short side)")
    p.add_argument("-s", "--scale", type=int, choices=SCALES, default=4)
    p.add_argument("-o", "--output", required=True, help="the PNG file to write")
    p.add_argument("--models", default=None, help=f"comma-separated models (default: all twelve: {','.join(MODELS)})")
    p.add_argument("--backend", choices=BACKENDS, default="bitwise")
    p.add_argument("--allow-random", action="store_true", help=ALLOW_RANDOM_HELP)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    output = Path(args.output)
    if output.suffix.lower() != ".png":
        raise UsageError(f"the output must be a .png file, got {output}")
    names = parse_models(args.models)
    source = find_image(Path(args.data), args.image)
    if output.resolve() == source.resolve():
        raise UsageError(f"refusing to overwrite the input image {source}")
    try:
        image = load_image(source)
    except ImageError as exc:
        raise UsageError(f"{source}: {exc}") from None
    if min(image.shape[:2]) < MIN_LR_SIDE * args.scale:
        raise UsageError(f"{source} is too small ({image.shape[1]}x{image.shape[0]}): at x{args.scale} it needs "
                         f"at least {MIN_LR_SIDE * args.scale} pixels per side")
    hr, lr = make_lr(image, args.scale)
    box = args.box or default_box(*hr.shape[:2])
    check_box(box, *hr.shape[:2])
    ensure_output_dir(output.parent)

    panels, notices = model_panels(names, hr, lr, box, args.scale, args.backend, args.allow_random)
    for notice in notices:
        print_notice(notice)
    hr_lines = [f"{source.stem} (HR), x{args.scale}", "box " + ",".join(map(str, box))]
    figure = render_figure(hr, box, panels, hr_lines)
    Image.fromarray(figure).save(output, format="PNG")
    for panel in panels[1:]:
        print(f"{panel.title:<28} {panel.caption}")
    print(f"written: {output}")
    return 0
