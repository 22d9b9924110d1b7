"""Kernel grids of one binary layer: full precision vs vanilla binarization vs FRB's two bases.

As in the FRB paper's Fig. 1 and supplementary Table 1, W is the *full-precision* kernel the
binarized model starts from: the same layer of its backbone's trained full-precision model
(SRResNet for the binarized SRResNets, SwinIR-S for FRBT), never the shipped binary weights
(packed files hold no latent weights). For the first output channels, each channel's kernel
(in_channels x k x k) is laid out as one image: the input channels as a near-square grid of k x k
tiles (64 channels of a 3x3 conv: 8x8 tiles, a 24x24 image; a linear layer's weights are 1x1
tiles). Rows:

* full precision: the teacher's W;
* vanilla: mean|W_c| * sign(W), per output channel c (first-order, DoReFa-style, ``ChannelMeanSign``);
* FRB: alpha1 sign(W) + alpha2 sign(W - alpha1 sign(W)) (``SecondOrderResidualSign``, two bases);
* separately, on its own colour scale: the trained binarized model's stored W_b (what it runs).

The first three share one colour scale. The table gives, per channel, the relative error
sum|W - W_b| / sum|W| of vanilla and FRB binarization of W and FRB's improvement
100 * (1 - err_FRB / err_vanilla). No Gradio here; the command line can reuse it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from frb.binarize import ChannelMeanSign, SecondOrderResidualSign, combine_bases
from frb.hub import WeightsError
from frb.layers import binary_layers
from frb.models import MODELS, create_model, get_spec
from frb.weights import shared_model

DEFAULT_LAYER = "body.0.conv1"
NUM_CHANNELS = 12
ROW_LABELS = ("full precision W", "vanilla: mean|W_c| sign(W)", "FRB: two bases")
STORED_LABEL = "trained {model}: W_b (own scale)"
TABLE_HEADERS = ["output channel", "vanilla error", "FRB error", "FRB improvement (%)"]
# The FRB paper's supplement, Table 1 (SRResNet body.0.conv1, first 12 output channels): the range
# (lowest, highest) of each column, for comparison with ours.
SUPPLEMENT_TABLE1 = {"vanilla error": (0.5942, 0.6679), "FRB error": (0.3321, 0.5153), "FRB improvement (%)": (22.32, 44.10)}

CELL = 4  # screen pixels per weight
GAP = 8
LABEL_W = 240
HEADER_H = 22
BAR_H = 46
NEGATIVE = np.array([40, 80, 200], dtype=np.float64)
POSITIVE = np.array([200, 30, 40], dtype=np.float64)
EMPTY = (225, 225, 225)


def binarized_model_names() -> list[str]:
    """Public names of the models that have binary layers."""
    return [name for name, spec in MODELS.items() if spec.binary]


def layer_names(model_name: str, scale: int = 4) -> list[str]:
    """The binary layers of a model, in network order (built on the meta device, nothing computed)."""
    get_spec(model_name)
    with torch.device("meta"):
        return list(binary_layers(create_model(model_name, scale)))


def default_layer(model_name: str, scale: int = 4) -> str:
    """``body.0.conv1`` (first conv of the first residual block) where it exists, else the first binary layer."""
    names = layer_names(model_name, scale)
    if not names:
        raise ValueError(f"{model_name} has no binary layers; choose one of {binarized_model_names()}")
    return DEFAULT_LAYER if DEFAULT_LAYER in names else names[0]


def binarize_weights(w: Tensor) -> tuple[Tensor, Tensor]:
    """(vanilla, FRB) binarized versions of ``w`` (out_channels first)."""
    return combine_bases(ChannelMeanSign().bases(w)), combine_bases(SecondOrderResidualSign().bases(w))


def _binarized_arrays(w: Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``w`` and its vanilla and FRB binarizations as float64 arrays."""
    vanilla, frb = binarize_weights(w)
    return tuple(t.numpy().astype(np.float64) for t in (w, vanilla, frb))


def relative_errors(w: np.ndarray, wb: np.ndarray) -> np.ndarray:
    """Per output channel: sum|W_c - Wb_c| / sum|W_c|."""
    w2, wb2 = w.reshape(len(w), -1), wb.reshape(len(wb), -1)
    return np.abs(w2 - wb2).sum(axis=1) / np.abs(w2).sum(axis=1)


def error_rows(w: np.ndarray, vanilla: np.ndarray, frb: np.ndarray) -> list[list]:
    """TABLE_HEADERS rows, one per output channel, then one for the whole layer."""
    ev, ef = relative_errors(w, vanilla), relative_errors(w, frb)
    rows = [[c, round(float(v), 4), round(float(f), 4), round(float(100.0 * (1.0 - f / v)), 1)] for c, (v, f) in enumerate(zip(ev, ef))]
    total_v = np.abs(w - vanilla).sum() / np.abs(w).sum()
    total_f = np.abs(w - frb).sum() / np.abs(w).sum()
    rows.append([f"layer (all {len(w)})", round(float(total_v), 4), round(float(total_f), 4),
                 round(float(100.0 * (1.0 - total_f / total_v)), 1)])
    return rows


def kernel_image(kernel: np.ndarray) -> np.ndarray:
    """(in_channels, k, k) -> 2-D grid of k x k tiles, columns = ceil(sqrt(in_channels)); NaN where empty."""
    n, kh, kw = kernel.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.full((rows * kh, cols * kw), np.nan)
    for i in range(n):
        r, c = divmod(i, cols)
        grid[r * kh : (r + 1) * kh, c * kw : (c + 1) * kw] = kernel[i]
    return grid


def colorize(values: np.ndarray, vmax: float) -> np.ndarray:
    """Diverging map: -vmax blue, 0 white, +vmax red; NaN light grey. Returns uint8 RGB."""
    t = np.clip(np.nan_to_num(values) / vmax, -1.0, 1.0)[..., None]
    white = np.full(3, 255.0)
    rgb = np.where(t < 0, white + (-t) * (NEGATIVE - white), white + t * (POSITIVE - white))
    rgb[np.isnan(values)] = EMPTY
    return np.floor(rgb + 0.5).astype(np.uint8)


def _font(size: int = 13) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, TypeError):
        return ImageFont.load_default()


def render_figure(grids: list[list[np.ndarray]], labels: tuple[str, ...], vmax: float, channels: list[int],
                  row_vmax: tuple[float, ...] = ()) -> np.ndarray:
    """Rows of kernel grids (same shapes) as one uint8 RGB figure with labels and a colour bar for ``vmax``.

    ``row_vmax[i]``, where given, is row i's own colour scale (its label should say so).
    """
    gh, gw = grids[0][0].shape
    tile_h, tile_w = gh * CELL, gw * CELL
    width = LABEL_W + len(grids[0]) * (tile_w + GAP) + GAP
    height = HEADER_H + len(grids) * (tile_h + GAP) + BAR_H
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font()
    for j, c in enumerate(channels):
        draw.text((LABEL_W + j * (tile_w + GAP), 4), f"ch {c}", fill="black", font=font)
    for i, (label, row) in enumerate(zip(labels, grids)):
        top = HEADER_H + i * (tile_h + GAP)
        draw.text((6, top + tile_h // 2 - 7), label, fill="black", font=font)
        scale = row_vmax[i] if i < len(row_vmax) else vmax
        for j, grid in enumerate(row):
            tile = colorize(grid, scale).repeat(CELL, axis=0).repeat(CELL, axis=1)
            canvas.paste(Image.fromarray(tile), (LABEL_W + j * (tile_w + GAP), top))
    bar_top = height - BAR_H + 8
    bar_w = min(360, width - LABEL_W - GAP)
    ramp = colorize(np.tile(np.linspace(-vmax, vmax, bar_w), (12, 1)), vmax)
    canvas.paste(Image.fromarray(ramp), (LABEL_W, bar_top))
    draw.text((6, bar_top - 1), "shared colour scale", fill="black", font=font)
    for frac, text in ((0.0, f"{-vmax:.3g}"), (0.5, "0"), (1.0, f"{vmax:.3g}")):
        x = LABEL_W + int(frac * (bar_w - 1))
        draw.line([(x, bar_top + 12), (x, bar_top + 16)], fill="black")
        draw.text((max(LABEL_W, x - 14), bar_top + 18), text, fill="black", font=font)
    return np.asarray(canvas)


@dataclass
class KernelView:
    """The figure (uint8 RGB), the error table (TABLE_HEADERS rows) and a notice for one layer."""

    model: str
    layer: str
    weight_shape: tuple[int, ...]
    figure: np.ndarray
    rows: list[list]
    notice: str


def _as_conv(w: Tensor) -> Tensor:
    w = w.detach().float()
    return w[:, :, None, None] if w.dim() == 2 else w


def layer_weights(model_name: str, layer: str | None, scale: int = 4, allow_random: bool = False) -> tuple[str, Tensor, Tensor, str]:
    """(layer name, the full-precision teacher's W, the binarized model's stored W_b, notices).

    Both as (out, in, k, k). W comes from the trained full-precision model of the backbone
    (``ModelSpec.teacher``), whose layer of the same name the binarized model was initialised from.
    """
    spec = get_spec(model_name)
    if not spec.binary:
        raise ValueError(f"{model_name} is full precision; choose a binarized model: {binarized_model_names()}")
    model, notice = shared_model(model_name, scale, allow_random)
    if model is None:
        raise WeightsError(notice)
    layers = binary_layers(model)
    layer = layer or default_layer(model_name, scale)
    if layer not in layers:
        raise ValueError(f"{model_name} has no binary layer {layer!r}; e.g. {list(layers)[:4]}")
    teacher, teacher_notice = shared_model(spec.teacher, scale, allow_random)
    if teacher is None:
        raise WeightsError(teacher_notice)
    with torch.no_grad():
        stored = _as_conv(layers[layer].binary_weight())
    notices = "\n".join(n for n in (teacher_notice, notice) if n)
    return layer, _as_conv(teacher.get_submodule(layer).weight), stored, notices


def kernel_view(model_name: str, layer: str | None = None, scale: int = 4, channels: int = NUM_CHANNELS,
                allow_random: bool = False) -> KernelView:
    """Kernel grids and relative errors of ``layer`` (default: ``default_layer``) of a binarized model."""
    layer, w, stored, notice = layer_weights(model_name, layer, scale, allow_random)
    w_np, vanilla, frb = _binarized_arrays(w)
    shown = list(range(min(channels, len(w_np))))
    rows_of_kernels = [w_np[shown], vanilla[shown], frb[shown]]
    vmax = float(max(np.abs(k).max() for k in rows_of_kernels)) or 1.0
    own = stored.numpy().astype(np.float64)[shown]
    grids = [[kernel_image(k) for k in kernels] for kernels in rows_of_kernels + [own]]
    labels = ROW_LABELS + (STORED_LABEL.format(model=model_name),)
    figure = render_figure(grids, labels, vmax, shown, row_vmax=(vmax, vmax, vmax, float(np.abs(own).max()) or 1.0))
    return KernelView(model_name, layer, tuple(w.shape), figure, error_rows(w_np, vanilla, frb), notice)


def weight_error_rows(w: Tensor) -> list[list]:
    """Table 1 of a full-precision weight ``w`` (out_channels first): ``error_rows`` of its vanilla and
    FRB binarizations, one row per output channel, then the whole layer."""
    return error_rows(*_binarized_arrays(_as_conv(w)))


def markdown_row(row: list) -> str:
    """One TABLE_HEADERS row as a markdown table line."""
    channel, vanilla, frb, improvement = row
    return f"| {channel} | {vanilla:.4f} | {frb:.4f} | {improvement:.1f} |"
