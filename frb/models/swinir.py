"""Lightweight SwinIR ("SwinIR_S") for image super-resolution, in plain PyTorch.

SwinIR (Liang et al., "SwinIR: Image Restoration Using Swin Transformer",
ICCV Workshops 2021) is a stack of residual Swin Transformer blocks (RSTB)
between a shallow 3x3 convolution and an upsampler.  The lightweight variant
used as the full-precision backbone in the FRB paper has embed_dim 60,
4 RSTBs of 6 Swin blocks with 6 heads, window size 8, MLP ratio 2, one 3x3
conv per RSTB and a single conv + PixelShuffle upsampler
("pixelshuffledirect").

Module and parameter names follow the official implementation, so the
official checkpoints ``002_lightweightSR_DIV2K_s64w8_SwinIR-S_x{2,3,4}.pth``
load through :meth:`SwinIR.load_official_state_dict`.

Parameter counts (all ``nn.Parameter`` elements): 910,152 (x2), 918,267 (x3)
and 929,628 (x4).  The 878K / 886K / 897K in the SwinIR paper leave out the
24 relative-position bias tables (24 * 225 * 6 = 32,400 values).

Inputs of any size are accepted: H and W are reflect-padded up to a multiple
of the window size (as the official ``check_image_size``) and the output is
cropped back to (H * scale, W * scale).  Where reflect padding is impossible
(the pad is not smaller than the side, e.g. a 1x1 or 3x3 input), that side is
replicate-padded instead; the official code raises an error there.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from frb.models.backbone import BackboneSpec, register_backbone

_RGB_MEAN = (0.4488, 0.4371, 0.4040)
# Official SwinIR masks with -100: exp(-100) ~ 4e-44 is a denormal float, which x86 CPUs compute in
# microcode; -inf gives exactly 0 (measured: a shifted block's training pass 2.4x faster).
_MASK_VALUE = float("-inf")


def window_partition(x: Tensor, window_size: int) -> Tensor:
    """(B, H, W, C) -> (B * num_windows, window_size * window_size, C)."""
    b, h, w, c = x.shape
    x = x.view(b, h // window_size, window_size, w // window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size * window_size, c)


def window_reverse(windows: Tensor, window_size: int, h: int, w: int) -> Tensor:
    """Inverse of :func:`window_partition`: -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window_size, w // window_size, window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


def relative_position_index(window_size: int) -> Tensor:
    """Index into the ((2ws-1)^2, heads) bias table for every pair of tokens in a window."""
    coords = torch.stack(
        torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij")
    ).flatten(1)  # (2, ws*ws)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window_size - 1)
    return rel[..., 0] * (2 * window_size - 1) + rel[..., 1]


def shifted_window_mask(h: int, w: int, window_size: int, shift: int) -> Tensor:
    """Attention mask (num_windows, N, N) for a cyclically shifted (h, w) feature map.

    Tokens that were not neighbours before the roll get -inf (softmax weight 0; every token keeps
    its own region, so no row is all -inf).
    """
    regions = torch.zeros(1, h, w, 1)
    slices = (slice(0, -window_size), slice(-window_size, -shift), slice(-shift, None))
    label = 0
    for hs in slices:
        for ws in slices:
            regions[:, hs, ws, :] = label
            label += 1
    labels = window_partition(regions, window_size).squeeze(-1)  # (nW, N)
    diff = labels.unsqueeze(1) - labels.unsqueeze(2)
    return diff.masked_fill(diff != 0, _MASK_VALUE)


@lru_cache(maxsize=4)
def _cached_mask(h: int, w: int, window_size: int, shift: int, device: torch.device) -> Tensor:
    """One mask per recent (size, device), shared by all shifted blocks (it can be large)."""
    return shifted_window_mask(h, w, window_size, shift).to(device)


def relative_bias(table: Tensor, index: Tensor) -> Tensor:
    """The learned relative position bias, (1, heads, N, N), from its ((2ws-1)^2, heads) table."""
    n = index.shape[0]
    return table[index.view(-1)].view(n, n, -1).permute(2, 0, 1).unsqueeze(0)


@torch.compiler.disable
def attention_product(
    q: Tensor, k: Tensor, v: Tensor, scale: float, table: Tensor, index: Tensor, mask: Tensor | None
) -> Tensor:
    """softmax(q k^T + bias [+ mask]) v as explicit products, for training (with gradients).

    q, k, v: (B * nW, heads, N, d), scale = 1 / sqrt(d); bias from ``relative_bias(table, index)``;
    mask: (nW, N, N). Bias and mask are broadcast over the images rather than repeated. Left out of
    ``torch.compile``: inductor's fused softmax kernels and its scatter of the bias gradient into
    the table were the slowest kernels of a compiled FRBT step. Measured on FRBT x4 with DBT (bf16,
    batch 16, LR 32, 2-core AVX-512 CPU): a step 2.59 s -> 2.31 s in isolation, 0.399 -> 0.428
    steps/s in 40-step ``python -m train`` runs (two each, 1.07x).
    """
    bw, heads, n, _ = q.shape
    bias = relative_bias(table, index)
    logits = (q * scale) @ k.transpose(-2, -1)  # (B*nW, heads, N, N)
    if mask is None:
        logits = logits + bias
    else:  # (B, nW, heads, N, N) + (1, nW, heads, N, N)
        nw = mask.shape[0]
        logits = logits.view(bw // nw, nw, heads, n, n) + (bias.unsqueeze(1) + mask.view(1, nw, 1, n, n))
    return logits.view(bw, heads, n, n).softmax(-1) @ v


class WindowAttention(nn.Module):
    """Multi-head self-attention inside a window, with a learned relative position bias."""

    def __init__(self, dim: int, window_size: int, num_heads: int) -> None:
        super().__init__()
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads)
        )
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer(
            "relative_position_index", relative_position_index(window_size), persistent=False
        )
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x: (B * nW, N, C); mask: (nW, N, N) or None.

        softmax(q k^T / sqrt(d) + bias [+ mask]) v. Without gradients (inference, a DBT teacher) through
        ``F.scaled_dot_product_attention``'s fused CPU kernel (half the time of the explicit product,
        equal to float rounding). With gradients the fused kernel cannot give the learned bias its
        gradient and torch falls back to a slower generic product, which also repeats bias + mask for
        every image; ``attention_product`` broadcasts them instead (measured on SwinIR-S x4 training:
        1.3x the step rate).
        """
        bw, n, c = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B*nW, heads, N, head_dim)
        table, index = self.relative_position_bias_table, self.relative_position_index
        if torch.is_grad_enabled():
            y = attention_product(q, k, v, self.scale, table, index, mask)
        else:
            bias = relative_bias(table, index)
            if mask is not None:  # (nW, heads, N, N), repeated for each image (4-D: the fused kernel's shape)
                bias = (bias + mask.unsqueeze(1)).repeat(bw // mask.shape[0], 1, 1, 1)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=self.scale)
        return self.proj(y.transpose(1, 2).reshape(bw, n, c))


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinTransformerBlock(nn.Module):
    """Pre-norm (shifted-)window attention + MLP, both with residual connections."""

    def __init__(
        self, dim: int, num_heads: int, window_size: int, shift_size: int, mlp_ratio: float
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, x_size: tuple[int, int]) -> Tensor:
        """x: (B, H*W, C) with H, W multiples of the window size."""
        h, w = x_size
        b, _, c = x.shape
        y = self.norm1(x).view(b, h, w, c)
        mask = None
        if self.shift_size > 0:
            y = torch.roll(y, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
            mask = _cached_mask(h, w, self.window_size, self.shift_size, x.device).to(y.dtype)
        y = self.attn(window_partition(y, self.window_size), mask)
        y = window_reverse(y, self.window_size, h, w)
        if self.shift_size > 0:
            y = torch.roll(y, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
        x = x + y.reshape(b, h * w, c)
        return x + self.mlp(self.norm2(x))


class BasicLayer(nn.Module):
    """A run of Swin blocks alternating unshifted / half-window-shifted windows."""

    def __init__(
        self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(
                dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2, mlp_ratio
            )
            for i in range(depth)
        )

    def forward(self, x: Tensor, x_size: tuple[int, int]) -> Tensor:
        for block in self.blocks:
            x = block(x, x_size)
        return x


class PatchEmbed(nn.Module):
    """(B, C, H, W) -> (B, H*W, C), optionally followed by a LayerNorm."""

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim) if dim is not None else None

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(2).transpose(1, 2)
        return self.norm(x) if self.norm is not None else x


class PatchUnEmbed(nn.Module):
    """(B, H*W, C) -> (B, C, H, W)."""

    def forward(self, x: Tensor, x_size: tuple[int, int]) -> Tensor:
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *x_size)


class RSTB(nn.Module):
    """Residual Swin Transformer Block: Swin blocks -> 3x3 conv, plus the input."""

    def __init__(
        self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float
    ) -> None:
        super().__init__()
        self.residual_group = BasicLayer(dim, depth, num_heads, window_size, mlp_ratio)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)
        self.patch_embed = PatchEmbed()
        self.patch_unembed = PatchUnEmbed()

    def forward(self, x: Tensor, x_size: tuple[int, int]) -> Tensor:
        y = self.patch_unembed(self.residual_group(x, x_size), x_size)
        out = self.patch_embed(self.conv(y))
        # A binary conv with its own shortcut already carries y, which contains x.
        return out if getattr(self.conv, "adds_input", False) else out + x


def _pad_side(x: Tensor, pad: int, dim: int) -> Tensor:
    """Pad ``pad`` pixels after the end of spatial dim -1 or -2 (reflect where possible)."""
    if pad == 0:
        return x
    mode = "reflect" if pad < x.shape[dim] else "replicate"
    return F.pad(x, (0, pad, 0, 0) if dim == -1 else (0, 0, 0, pad), mode=mode)


class SwinIR(nn.Module):
    """Lightweight SwinIR (SwinIR_S) with the pixelshuffledirect upsampler."""

    def __init__(
        self,
        scale: int = 4,
        in_chans: int = 3,
        embed_dim: int = 60,
        depths: Sequence[int] = (6, 6, 6, 6),
        num_heads: Sequence[int] = (6, 6, 6, 6),
        window_size: int = 8,
        mlp_ratio: float = 2.0,
        img_range: float = 1.0,
    ) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"scale must be 2, 3 or 4, got {scale}")
        if len(depths) != len(num_heads):
            raise ValueError("depths and num_heads must have the same length")
        self.scale = scale
        self.window_size = window_size
        self.img_range = img_range
        mean = _RGB_MEAN if in_chans == 3 else (0.0,) * in_chans
        self.register_buffer(
            "mean", torch.tensor(mean).view(1, in_chans, 1, 1), persistent=False
        )

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim)
        self.patch_unembed = PatchUnEmbed()
        self.layers = nn.ModuleList(
            RSTB(embed_dim, d, h, window_size, mlp_ratio) for d, h in zip(depths, num_heads)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
        self.upsample = nn.Sequential(
            nn.Conv2d(embed_dim, in_chans * scale * scale, 3, 1, 1), nn.PixelShuffle(scale)
        )
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """Deep features (B, C, H, W) -> (B, C, H, W); H, W multiples of the window size."""
        x_size = (x.shape[2], x.shape[3])
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x, x_size)
        return self.patch_unembed(self.norm(x), x_size)

    def _shallow(self, x: Tensor) -> Tensor:
        """Pad to whole windows, normalise, conv_first."""
        h, w = x.shape[2:]
        x = _pad_side(x, -h % self.window_size, -2)
        x = _pad_side(x, -w % self.window_size, -1)
        return self.conv_first((x - self.mean) * self.img_range)

    def forward_distilled(self, x: Tensor) -> Tensor:
        """As far as the last of ``feature_blocks()`` (the RSTBs): what a DBT teacher needs to run."""
        return self.forward_features(self._shallow(x))

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) low-resolution image in [0, 1] -> (B, C, H*scale, W*scale)."""
        h, w = x.shape[2:]
        x = self._shallow(x)
        x = self.conv_after_body(self.forward_features(x)) + x
        x = self.upsample(x) / self.img_range + self.mean
        return x[:, :, : h * self.scale, : w * self.scale]

    # Protocol shared with the other backbones (used by the binarized twins).

    def binary_layer_names(self) -> list[str]:
        """Modules a binarized twin makes binary: every qkv/proj/fc1/fc2 Linear of the
        Swin blocks and each RSTB's 3x3 ``conv``.  LayerNorms, softmax, position bias,
        conv_first, conv_after_body and the upsampler stay full precision."""
        names = []
        for i, layer in enumerate(self.layers):
            for j in range(len(layer.residual_group.blocks)):
                block = f"layers.{i}.residual_group.blocks.{j}"
                names += [f"{block}.attn.qkv", f"{block}.attn.proj",
                          f"{block}.mlp.fc1", f"{block}.mlp.fc2"]
            names.append(f"layers.{i}.conv")
        return names

    def activations_before_binary(self) -> list[str]:
        """Activations feeding a binary layer that a binarized twin should drop: none.

        The only one is the GELU before ``fc2``; it is kept because
        sign(GELU(x)) = sign(x) (GELU(x) = x * Phi(x) with Phi(x) > 0), so it does
        not change the sign of the binarized input and is harmless.
        """
        return []

    def feature_blocks(self) -> list[nn.Module]:
        """The RSTBs, whose outputs are the block features used for distillation."""
        return list(self.layers)

    def load_official_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Load an official SwinIR checkpoint (raw, or under "params_ema" / "params").

        ``attn_mask`` and ``relative_position_index`` entries (buffers in the official
        code, recomputed here) are dropped; everything else must match exactly.
        Raises ValueError listing missing / unexpected / mis-shaped keys.
        """
        for key in ("params_ema", "params"):
            if key in state:
                state = state[key]
                break
        state = {
            k: v for k, v in state.items()
            if not k.endswith(("attn_mask", "relative_position_index"))
        }
        own = self.state_dict()
        missing = sorted(own.keys() - state.keys())
        unexpected = sorted(state.keys() - own.keys())
        mis_shaped = sorted(
            f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
            for k in own.keys() & state.keys()
            if state[k].shape != own[k].shape
        )
        if missing or unexpected or mis_shaped:
            raise ValueError(
                "checkpoint does not match SwinIR"
                f"(scale={self.scale}): missing keys {missing}, unexpected keys "
                f"{unexpected}, shape mismatches {mis_shaped}"
            )
        self.load_state_dict(state, strict=True)


def _build(scale: int, depth: int = 0) -> SwinIR:
    """SwinIR_S; ``depth`` > 0 keeps that many RSTBs (of 6 blocks each)."""
    return SwinIR(scale, depths=(6,) * depth, num_heads=(6,) * depth) if depth > 0 else SwinIR(scale)


register_backbone(BackboneSpec(
    name="swinir", build=_build, teacher="swinir_s", tiny_depth=1, suite_lr=4e-4,
    recipe=dict(batch=64, lr_patch=64, steps=500_000, schedule="multistep"),
))
