"""Tests for the lightweight SwinIR backbone (frb/models/swinir.py)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from frb.models.swinir import RSTB, SwinIR, SwinTransformerBlock, shifted_window_mask

SCALES = (2, 3, 4)


@pytest.fixture(scope="module")
def models() -> dict[int, SwinIR]:
    torch.manual_seed(0)
    return {s: SwinIR(scale=s).eval() for s in SCALES}


@pytest.mark.parametrize("scale, expected", [(2, 910_152), (3, 918_267), (4, 929_628)])
def test_parameter_count(models: dict[int, SwinIR], scale: int, expected: int) -> None:
    assert sum(p.numel() for p in models[scale].parameters()) == expected
    assert models[scale].scale == scale


def test_rejects_unsupported_scale() -> None:
    with pytest.raises(ValueError, match="scale"):
        SwinIR(scale=8)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("size", [(17, 23), (8, 8), (1, 1), (3, 5)])
def test_any_input_size(models: dict[int, SwinIR], scale: int, size: tuple[int, int]) -> None:
    # (1, 1) and (3, 5) are too small to reflect-pad to 8: replicate padding is used there.
    h, w = size
    with torch.no_grad():
        y = models[scale](torch.rand(1, 3, h, w))
    assert y.shape == (1, 3, h * scale, w * scale)
    assert torch.isfinite(y).all()


def _official_style_state(model: SwinIR) -> dict[str, torch.Tensor]:
    """The model's state dict plus the buffers the official code also saves."""
    state = dict(model.state_dict())
    for name, module in model.named_modules():
        if name.endswith(".attn"):
            state[f"{name}.relative_position_index"] = module.relative_position_index.clone()
        if isinstance(module, SwinTransformerBlock) and module.shift_size > 0:
            state[f"{name}.attn_mask"] = torch.zeros(64, 64, 64)
    return state


def test_load_official_state_dict_round_trip(models: dict[int, SwinIR]) -> None:
    src = models[2]
    state = _official_style_state(src)
    assert any(k.endswith("attn_mask") for k in state)
    torch.manual_seed(1)
    dst = SwinIR(scale=2).eval()
    dst.load_official_state_dict({"params": state})
    for (name, p), q in zip(src.named_parameters(), dst.parameters()):
        assert torch.equal(p, q), name
    x = torch.rand(1, 3, 9, 10)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))
    dst.load_official_state_dict(src.state_dict())  # raw dict, no wrapper


def test_load_official_state_dict_reports_bad_keys(models: dict[int, SwinIR]) -> None:
    state = dict(models[2].state_dict())
    state["layers.0.bogus.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="layers.0.bogus.weight"):
        SwinIR(scale=2).load_official_state_dict({"params": state})
    del state["layers.0.bogus.weight"]
    del state["norm.bias"]
    with pytest.raises(ValueError, match="norm.bias"):
        SwinIR(scale=2).load_official_state_dict(state)
    with pytest.raises(ValueError, match="upsample.0.weight"):  # x2 weights into an x4 model
        SwinIR(scale=4).load_official_state_dict(models[2].state_dict())


def test_binary_layer_names(models: dict[int, SwinIR]) -> None:
    model = models[4]
    names = model.binary_layer_names()
    assert len(names) == len(set(names)) == 24 * 4 + 4
    for name in names:
        assert isinstance(model.get_submodule(name), (nn.Linear, nn.Conv2d)), name
    assert sum(isinstance(model.get_submodule(n), nn.Conv2d) for n in names) == 4
    assert not {"conv_first", "conv_after_body", "upsample.0"} & set(names)
    assert model.activations_before_binary() == []
    blocks = model.feature_blocks()
    assert len(blocks) == 4 and all(isinstance(b, RSTB) for b in blocks)


class _RecordingLinear(nn.Linear):
    calls: int = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dim() == 3  # (B, N, C)
        self.calls += 1
        return super().forward(x)


class _RecordingConv(nn.Conv2d):
    calls: int = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dim() == 4  # (B, C, H, W)
        self.calls += 1
        return super().forward(x)


def test_binary_layers_are_replaceable_modules() -> None:
    """Swapping every binary layer for a same-named subclass keeps the output and is used."""
    torch.manual_seed(0)
    model = SwinIR(scale=2).eval()
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        before = model(x)
    swapped = []
    for name in model.binary_layer_names():
        old = model.get_submodule(name)
        if isinstance(old, nn.Linear):
            new = _RecordingLinear(old.in_features, old.out_features)
        else:
            new = _RecordingConv(old.in_channels, old.out_channels, 3, 1, 1)
        new.load_state_dict(old.state_dict())
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent), attr, new)
        swapped.append(new)
    with torch.no_grad():
        after = model(x)
    assert torch.equal(before, after)
    assert all(m.calls == 1 for m in swapped)


def test_zero_head_and_tail_give_mean_image() -> None:
    """With conv_first and the upsampler zeroed, the output is the RGB mean everywhere."""
    model = SwinIR(scale=3, img_range=255.0).eval()
    for conv in (model.conv_first, model.upsample[0]):
        nn.init.zeros_(conv.weight)
        nn.init.zeros_(conv.bias)
    with torch.no_grad():
        y = model(torch.rand(1, 3, 5, 7))
    assert y.shape == (1, 3, 15, 21)
    assert torch.allclose(y, model.mean.expand_as(y))
    assert not torch.allclose(y[:, 0], y[:, 2])  # per-channel, not one scalar


def test_deterministic_and_batch_independent(models: dict[int, SwinIR]) -> None:
    """A batch gives the same result as its images one by one (checks the mask broadcast)."""
    model = models[2]
    x = torch.rand(2, 3, 16, 16)  # 4 windows per image, so shifted blocks use the mask
    with torch.no_grad():
        batched = model(x)
        assert torch.equal(batched, model(x))
        single = torch.cat([model(x[:1]), model(x[1:])])
    assert torch.allclose(batched, single, atol=1e-5)
    assert not torch.allclose(batched[0], batched[1])


def test_shifted_window_mask() -> None:
    mask = shifted_window_mask(16, 16, window_size=8, shift=4)
    assert mask.shape == (4, 64, 64)
    assert set(mask.unique().tolist()) == {0.0, float("-inf")}  # -100 would make denormal softmax weights
    assert torch.equal(mask, mask.transpose(1, 2))
    assert (mask[0] == 0).all()  # top-left window: no wrapped-around tokens
    # bottom-right window: four 4x4 regions, each token sees only its own 16 tokens
    assert int((mask[3] == 0).sum()) == 4 * 16 * 16


def _dense_reference(block: SwinTransformerBlock, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The same block computed as full attention over all tokens with an explicit mask.

    With a cyclic shift s, two tokens attend to each other iff (i + ws - s) // ws and
    (j + ws - s) // ws agree (same window, no wrap-around); the bias uses their offset.
    """
    ws, s, attn = block.window_size, block.shift_size, block.attn
    ii, jj = (t.flatten() for t in torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"))
    gi, gj = (ii + ws - s) // ws, (jj + ws - s) // ws
    allowed = (gi[:, None] == gi[None]) & (gj[:, None] == gj[None])
    di, dj = ii[:, None] - ii[None], jj[:, None] - jj[None]
    idx = ((di + ws - 1) * (2 * ws - 1) + dj + ws - 1).clamp(0, (2 * ws - 1) ** 2 - 1)
    bias = attn.relative_position_bias_table[idx].permute(2, 0, 1)  # (heads, N, N)

    b, n, c = x.shape
    q, k, v = attn.qkv(block.norm1(x)).reshape(b, n, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
    logits = (q @ k.transpose(-2, -1)) * attn.scale + bias
    weights = logits.masked_fill(~allowed, float("-inf")).softmax(-1)
    x = x + attn.proj((weights @ v).transpose(1, 2).reshape(b, n, c))
    return x + block.mlp(block.norm2(x))


@pytest.mark.parametrize("shift", [0, 4])
def test_window_attention_matches_dense_reference(shift: int) -> None:
    torch.manual_seed(0)
    block = SwinTransformerBlock(dim=12, num_heads=2, window_size=8, shift_size=shift, mlp_ratio=2.0)
    with torch.no_grad():
        block.attn.relative_position_bias_table.normal_()
    h, w = 16, 24
    x = torch.randn(2, h * w, 12)
    with torch.no_grad():  # the fused kernel (inference)
        assert torch.allclose(block(x, (h, w)), _dense_reference(block, x, h, w), atol=1e-5)
    # With gradients the block takes the explicit product: the same values, and the same gradients
    # for the relative position bias and the input as the dense reference.
    table = block.attn.relative_position_bias_table
    grads = []
    for forward in (block, lambda t, size: _dense_reference(block, t, *size)):
        xg = x.clone().requires_grad_()
        y = forward(xg, (h, w))
        table.grad = None
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        grads.append((y.detach(), table.grad.clone(), xg.grad))
    for ours, reference in zip(*grads):
        assert torch.allclose(ours, reference, atol=1e-5)
    assert grads[0][1].abs().sum() > 0
