"""``python -m frb figure``: the paper's visual comparison (Fig. 2-4) for one benchmark image.

The HR image is cropped to a multiple of the scale and MATLAB-bicubic downscaled (``make_lr``);
every model super-resolves the LR image (``frb.weights.load_model``, a ``frb.bitwise`` backend).
The PNG shows, left, the HR image with the box drawn and, right, the box enlarged
(nearest neighbour) from the HR image and from every output, in two rows, each with the model's
Y-PSNR / SSIM on the whole image (border crop = scale) underneath.
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from frb.bitwise.runner import BACKENDS, make_runner
from frb.cli_common import (
    ALLOW_RANDOM_HELP, UsageError, ensure_output_dir, print_notice, usage_error, weights_error,
)
from frb.evaluate import image_files
from frb.hub import WeightsError
from frb.imaging import ImageError, enlarge, load_image, make_lr
from frb.metrics import psnr_y, ssim_y
from frb.models import MODELS, SCALES, get_spec
from frb.tiling import tiling_context
from frb.upscale import upscale_image
from frb.weights import load_model

Box = tuple[int, int, int, int]

CROP_DISPLAY = 160  # a crop is enlarged by the largest whole factor that keeps its long side within this
MARGIN = 8
GAP = 8
LINE_H = 16
CAPTION_H = 2 * LINE_H + 4
FONT_SIZE = 13
BOX_COLOR = (255, 0, 0)
MIN_LR_SIDE = 8  # smaller LR images leave too little for SSIM's 11x11 window after the border crop


# --------------------------------------------------------------------------------------------
# Input: image and box
# --------------------------------------------------------------------------------------------


def parse_box(text: str) -> Box:
    """argparse type: ``x,y,w,h`` in HR pixels, four whole numbers."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"expected x,y,w,h (four whole numbers), got {text!r}")
    return values  # type: ignore[return-value]


def default_box(height: int, width: int) -> Box:
    """A centred square with a side of a quarter of the image's short side."""
    side = max(1, min(height, width) // 4)
    return (width - side) // 2, (height - side) // 2, side, side


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


# --------------------------------------------------------------------------------------------
# Panels and layout
# --------------------------------------------------------------------------------------------


@dataclass
class Panel:
    """One enlarged crop and the two caption lines under it."""

    image: np.ndarray
    title: str
    caption: str


@dataclass(frozen=True)
class Layout:
    """Where everything goes: the HR image at (MARGIN, MARGIN), panels in ``rows`` x ``columns`` cells."""

    width: int
    height: int
    hr_size: tuple[int, int]  # (width, height) of the shown HR image
    hr_column: int  # width of the HR image's column (at least the HR image)
    cell_w: int
    cell_h: int
    columns: int
    rows: int

    def panel_origin(self, index: int) -> tuple[int, int]:
        """Top-left corner (x, y) of panel ``index``'s crop (row-major)."""
        row, col = divmod(index, self.columns)
        return MARGIN + self.hr_column + 2 * GAP + col * (self.cell_w + GAP), MARGIN + row * (self.cell_h + GAP)


def crop_zoom(box: Box) -> int:
    """The nearest-neighbour enlargement of the crops: the largest whole factor within CROP_DISPLAY (at least 1)."""
    return max(1, CROP_DISPLAY // max(box[2], box[3]))


def figure_layout(hr_shape: tuple[int, ...], crop_shape: tuple[int, ...], n_panels: int, min_cell_w: int, min_hr_w: int) -> Layout:
    """The layout for ``n_panels`` crops of ``crop_shape`` (one row up to three panels, else two rows).

    The HR image is shown as tall as the panel rows minus one caption, keeping its aspect ratio.
    """
    rows = 1 if n_panels <= 3 else 2
    columns = math.ceil(n_panels / rows)
    cell_h = crop_shape[0] + CAPTION_H
    cell_w = max(crop_shape[1], min_cell_w)
    grid_h = rows * cell_h + (rows - 1) * GAP
    hr_h = max(1, grid_h - CAPTION_H)
    hr_w = max(1, round(hr_shape[1] * hr_h / hr_shape[0]))
    hr_column = max(hr_w, min_hr_w)
    width = 2 * MARGIN + hr_column + 2 * GAP + columns * cell_w + (columns - 1) * GAP
    return Layout(width, 2 * MARGIN + grid_h, (hr_w, hr_h), hr_column, cell_w, cell_h, columns, rows)


def _font() -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except (OSError, TypeError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def render_figure(hr: np.ndarray, box: Box, panels: Sequence[Panel], hr_lines: Sequence[str]) -> np.ndarray:
    """The whole figure (:func:`figure_layout`) as uint8 RGB; ``hr_lines`` go under the HR image."""
    font = _font()

    def text_w(text: str) -> int:
        return math.ceil(font.getlength(text)) + 4

    layout = figure_layout(
        hr.shape,
        panels[0].image.shape,
        len(panels),
        max(text_w(t) for p in panels for t in (p.title, p.caption)),
        max(text_w(t) for t in hr_lines),
    )
    canvas = Image.new("RGB", (layout.width, layout.height), "white")
    draw = ImageDraw.Draw(canvas)

    hr_w, hr_h = layout.hr_size
    canvas.paste(Image.fromarray(hr).resize((hr_w, hr_h), Image.Resampling.LANCZOS), (MARGIN, MARGIN))
    fx, fy = hr_w / hr.shape[1], hr_h / hr.shape[0]
    x, y, w, h = box
    corners = [MARGIN + x * fx, MARGIN + y * fy, MARGIN + (x + w) * fx - 1, MARGIN + (y + h) * fy - 1]
    draw.rectangle([round(c) for c in corners], outline=BOX_COLOR, width=2)
    for i, line in enumerate(hr_lines):
        draw.text((MARGIN, MARGIN + hr_h + 2 + i * LINE_H), line, fill="black", font=font)

    for i, panel in enumerate(panels):
        px, py = layout.panel_origin(i)
        canvas.paste(Image.fromarray(panel.image), (px, py))
        top = py + panel.image.shape[0] + 2
        draw.text((px, top), panel.title, fill="black", font=font)
        draw.text((px, top + LINE_H), panel.caption, fill="black", font=font)
    return np.asarray(canvas)


def model_panels(names: Sequence[str], hr: np.ndarray, lr: np.ndarray, box: Box, scale: int, backend: str,
                 allow_random: bool = False) -> list[Panel]:
    """The HR crop, then every model's crop with its Y-PSNR / SSIM (whole image, border = scale)."""
    x, y, w, h = box
    zoom = crop_zoom(box)
    panels = [Panel(enlarge(hr[y : y + h, x : x + w], zoom), "HR", "PSNR (dB) / SSIM, Y")]
    for name in names:
        model, notice = load_model(name, scale, allow_random=allow_random)
        if model is None:
            raise WeightsError(notice)
        print_notice(notice)
        sr = upscale_image(make_runner(model, backend), lr, scale, None, tiling_context(model).pad)
        score = f"{psnr_y(sr, hr, scale):.2f} / {ssim_y(sr, hr, scale):.4f}"
        panels.append(Panel(enlarge(sr[y : y + h, x : x + w], zoom), get_spec(name).title, score))
    return panels


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


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
    try:
        return _run(args)
    except UsageError as exc:
        return usage_error("figure", exc)
    except WeightsError as exc:
        return weights_error("figure", exc)


def _run(args: argparse.Namespace) -> int:
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

    panels = model_panels(names, hr, lr, box, args.scale, args.backend, args.allow_random)
    hr_lines = [f"{source.stem} (HR), x{args.scale}", "box " + ",".join(map(str, box))]
    figure = render_figure(hr, box, panels, hr_lines)
    Image.fromarray(figure).save(output, format="PNG")
    for panel in panels[1:]:
        print(f"{panel.title:<28} {panel.caption}")
    print(f"written: {output}")
    return 0
