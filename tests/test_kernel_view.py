"""app.kernels: layer choice, kernel grids, figure and the relative-error table."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from frb import kernel_view as K
from frb.hub import resolve
from frb.weights import shared_model
from frb.layers import binary_layers


def direct_binarizations(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vanilla and FRB weights computed straight from the formulas (sign(0) = +1)."""
    sign = lambda a: np.where(a >= 0, 1.0, -1.0)  # noqa: E731
    mean_abs = lambda a: np.abs(a).reshape(len(a), -1).mean(axis=1)[:, None, None, None]  # noqa: E731
    vanilla = mean_abs(w) * sign(w)
    residual = w - vanilla
    return vanilla, vanilla + mean_abs(residual) * sign(residual)


def test_default_and_available_layers():
    assert K.default_layer("frbc") == "body.0.conv1"
    assert K.default_layer("frbt") == "layers.0.residual_group.blocks.0.attn.qkv"
    assert K.layer_names("bnn")[-1] == "body.15.conv2"
    assert set(K.binarized_model_names()) == {"bnn", "dorefa", "bireal", "irnet", "bam", "btm", "reactnet", "frbc", "frbt"}


def test_table_matches_direct_numpy_on_the_full_precision_teacher():
    view = K.kernel_view("frbc")
    teacher, _ = shared_model("srresnet", 4)
    w = teacher.body[0].conv1.weight.detach().double().numpy()
    vanilla, frb = direct_binarizations(w)
    ev = np.abs(w - vanilla).reshape(64, -1).sum(1) / np.abs(w).reshape(64, -1).sum(1)
    ef = np.abs(w - frb).reshape(64, -1).sum(1) / np.abs(w).reshape(64, -1).sum(1)
    assert len(view.rows) == 65 and view.rows[-1][0] == "layer (all 64)"
    for c, row in enumerate(view.rows[:-1]):
        assert row[0] == c
        assert row[1] == pytest.approx(ev[c], abs=1e-4) and row[2] == pytest.approx(ef[c], abs=1e-4)
        assert row[3] == pytest.approx(100 * (1 - ef[c] / ev[c]), abs=0.1)
    total = 100 * (1 - np.abs(w - frb).sum() / np.abs(w - vanilla).sum())
    assert view.rows[-1][3] == pytest.approx(total, abs=0.1) and view.rows[-1][3] > 0


def test_kernel_image_layout():
    kernel = np.arange(64 * 9, dtype=float).reshape(64, 3, 3)
    grid = K.kernel_image(kernel)
    assert grid.shape == (24, 24)
    assert np.array_equal(grid[3:6, 6:9], kernel[8 * 1 + 2])  # tile row 1, column 2 = channel 10
    partial = K.kernel_image(np.ones((60, 1, 1)))
    assert partial.shape == (8, 8) and np.isnan(partial).sum() == 4


def test_figure_shape_and_first_tile():
    view = K.kernel_view("frbc", "body.3.conv2", scale=2)
    tile = 24 * K.CELL
    height = K.HEADER_H + 4 * (tile + K.GAP) + K.BAR_H
    width = K.LABEL_W + 12 * (tile + K.GAP) + K.GAP
    assert view.figure.shape == (height, width, 3) and view.figure.dtype == np.uint8
    teacher, _ = shared_model("srresnet", 2)
    w = teacher.body[3].conv2.weight.detach().double().numpy()
    vanilla, frb = direct_binarizations(w)
    vmax = max(np.abs(a[:12]).max() for a in (w, vanilla, frb))
    expected = K.colorize(K.kernel_image(w[0]), vmax).repeat(K.CELL, 0).repeat(K.CELL, 1)
    top, left = K.HEADER_H, K.LABEL_W
    assert np.array_equal(view.figure[top : top + tile, left : left + tile], expected)
    # The fourth row: the trained FRBC's own stored kernel, on its own colour scale.
    model, _ = shared_model("frbc", 2)
    with torch.no_grad():
        stored = binary_layers(model)["body.3.conv2"].binary_weight().double().numpy()
    own = K.colorize(K.kernel_image(stored[0]), np.abs(stored[:12]).max()).repeat(K.CELL, 0).repeat(K.CELL, 1)
    top = K.HEADER_H + 3 * (tile + K.GAP)
    assert np.array_equal(view.figure[top : top + tile, left : left + tile], own)


def test_shipped_srresnet_kernels_fall_in_the_supplements_bands():
    # FRB supplement, Table 1 (SRResNet body.0.conv1, first 12 channels): vanilla 0.5942-0.6679,
    # FRB 0.3321-0.5153, improvement 22.32-44.10 %. Bands a little wider than the paper's range.
    if resolve("srresnet", 4).source == "none":
        pytest.skip("no shipped SRResNet x4 weights")
    rows = K.kernel_view("frbc", "body.0.conv1", scale=4).rows[:12]
    for channel, vanilla, frb, improvement in rows:
        assert 0.5 <= vanilla <= 0.75, (channel, vanilla)
        assert frb < vanilla and 15.0 <= improvement <= 50.0, (channel, frb, improvement)


@pytest.mark.parametrize("model", K.binarized_model_names())
def test_no_binarized_model_gives_nan_errors(model):
    view = K.kernel_view(model)
    values = np.array([row[1:] for row in view.rows], dtype=float)
    assert np.isfinite(values).all() and (values[:, :2] > 0).all()


@pytest.mark.parametrize("model", ["dorefa", "frbt"])
def test_any_binary_layer_of_any_binarized_model(model):
    layer = K.layer_names(model)[-1]
    view = K.kernel_view(model, layer)
    assert view.layer == layer and view.figure.ndim == 3 and len(view.rows) == view.weight_shape[0] + 1
    assert resolve(model, 4).source == "bundled" and view.notice == ""


def test_bad_choices_have_readable_errors():
    with pytest.raises(ValueError, match="full precision"):
        K.kernel_view("srresnet")
    with pytest.raises(ValueError, match="no binary layer 'conv_first'"):
        K.kernel_view("frbc", "conv_first")
    with pytest.raises(ValueError, match="unknown model"):
        K.kernel_view("nope")
