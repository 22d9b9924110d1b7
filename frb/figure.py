"""The paper's visual comparison (Fig. 2-4) of models on one image, as a picture.

Every model super-resolves the LR image (``frb.weights.shared_model``, a ``frb.bitwise`` backend).
The figure shows, left, the HR image with the box drawn and, right, the box enlarged (nearest
neighbour) from the HR image and from every output, in two rows, each with the model's Y-PSNR /
SSIM on the whole image (border crop = scale) underneath. ``python -m frb figure`` (``frb.cli.figure``)
picks the image and the box.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from frb.bitwise.runner import make_runner
from frb.hub import WeightsError
from frb.imaging import enlarge
from frb.metrics import psnr_y, ssim_y
from frb.models import get_spec
from frb.tiling import tiling_context
from frb.upscale import upscale_image
from frb.weights import shared_model

Box = tuple[int, int, int, int]

CROP_DISPLAY = 160  # a crop is enlarged by the largest whole factor that keeps its long side within this
MARGIN = 8
GAP = 8
LINE_H = 16
CAPTION_H = 2 * LINE_H + 4
FONT_SIZE = 13
BOX_COLOR = (255, 0, 0)



def default_box(height: int, width: int) -> Box:
    """A centred square with a side of a quarter of the image's short side."""
    side = max(1, min(height, width) // 4)
    return (width - side) // 2, (height - side) // 2, side, side


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
                 allow_random: bool = False) -> tuple[list[Panel], list[str]]:
    """The HR crop, then every model's crop with its Y-PSNR / SSIM (whole image, border = scale), and
    the models' notices; ``WeightsError`` for a model without usable weights (unless ``allow_random``)."""
    x, y, w, h = box
    zoom = crop_zoom(box)
    panels = [Panel(enlarge(hr[y : y + h, x : x + w], zoom), "HR", "PSNR (dB) / SSIM, Y")]
    notices: list[str] = []
    for name in names:
        model, notice = shared_model(name, scale, allow_random=allow_random)
        if model is None:
            raise WeightsError(notice)
        notices += [notice] if notice else []
        sr = upscale_image(make_runner(model, backend), lr, scale, None, tiling_context(model).pad)
        score = f"{psnr_y(sr, hr, scale):.2f} / {ssim_y(sr, hr, scale):.4f}"
        panels.append(Panel(enlarge(sr[y : y + h, x : x + w], zoom), get_spec(name).title, score))
    return panels, notices
