"""Binarization methods, one small registered unit each (in the spirit of larq's quantizers).

A binary layer (``frb.layers.BinaryConv2d`` / ``BinaryLinear``) computes

    y = output( conv(input_quantizer(x), weight_quantizer(W)) + bias ,  x )

and a method is nothing more than the three factories that build those parts. The parts are
``nn.Module`` s so that methods with learnable pieces (ReActNet's RSign/RPReLU, BAM's learned
scale, BTM's PReLU) keep their parameters next to the layer they belong to.

Conventions shared with the bitwise engine (``frb.bitwise``), fixed before any training:

* ``sign(0) = +1``. A packed bit 0 means +1 and a bit 1 means -1.
* Binary convolutions pad their *binarized* input with +1 (not 0), so a packed +/-1 engine
  reproduces the border exactly without correction terms.
* Gradients of ``sign`` are surrogate derivatives, implemented with the detach trick
  ``sign(x).detach() + (s(x) - s(x).detach())`` so that the backward pass is ``ds/dx``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

# ---------------------------------------------------------------------------------------------
# Primitives
# ---------------------------------------------------------------------------------------------


def sign(x: Tensor) -> Tensor:
    """+1 where x >= 0, -1 elsewhere (torch.sign(0) = 0 would break bit-exact packing)."""
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


def _with_surrogate(x: Tensor, surrogate: Tensor) -> Tensor:
    """Forward sign(x); backward d(surrogate)/dx."""
    return sign(x).detach() + (surrogate - surrogate.detach())


def sign_ste(x: Tensor) -> Tensor:
    """Sign with the plain straight-through gradient: d/dx = 1."""
    return _with_surrogate(x, x)


def sign_clipped_ste(x: Tensor) -> Tensor:
    """Sign with the clipped straight-through gradient (Hubara et al. 2016): d/dx = 1[|x| <= 1]."""
    return _with_surrogate(x, x.clamp(-1.0, 1.0))


def approx_sign(x: Tensor) -> Tensor:
    """Sign with Bi-Real's ApproxSign gradient (Liu et al. 2018): d/dx = max(0, 2 - 2|x|).

    The surrogate is the piecewise quadratic  -1 (x < -1), 2x + x^2 (-1 <= x < 0),
    2x - x^2 (0 <= x < 1), +1 (x >= 1).
    """
    xc = x.clamp(-1.0, 1.0)
    return _with_surrogate(x, 2 * xc - xc * xc.abs())


def ede_parameters(progress: float | Tensor, t_min: float = 0.1, t_max: float = 10.0) -> tuple:
    """IR-Net's Error Decay Estimator schedule (Qin et al. 2020, Eq. 12).

    t = t_min * (t_max / t_min)^progress,  k = max(1 / t, 1),  progress clamped to [0, 1].
    A tensor ``progress`` gives tensors (so a compiled model does not recompile as it changes).
    """
    if isinstance(progress, Tensor):
        t = t_min * torch.pow(t_max / t_min, progress.clamp(0.0, 1.0))
        return t, (1.0 / t).clamp_min(1.0)
    p = min(max(progress, 0.0), 1.0)
    t = t_min * 10 ** (p * math.log10(t_max / t_min))
    return t, max(1.0 / t, 1.0)


def ede_sign(x: Tensor, progress: float | Tensor) -> Tensor:
    """Sign with IR-Net's EDE gradient: d/dx = k t (1 - tanh^2(t x)), (t, k) = ede_parameters(progress)."""
    t, k = ede_parameters(progress)
    return _with_surrogate(x, k * torch.tanh(t * x))


def channel_mean_abs(w: Tensor) -> Tensor:
    """Per-output-channel mean |W|, shaped to broadcast against W (out, ...)."""
    return w.abs().flatten(1).mean(dim=1).view(-1, *([1] * (w.dim() - 1)))


def _per_channel(values: Tensor, x: Tensor, channel_dim: int) -> Tensor:
    """Reshape a (C,) tensor to broadcast along ``channel_dim`` of ``x``."""
    shape = [1] * x.dim()
    shape[channel_dim] = -1
    return values.view(shape)


def combine_bases(bases: list[tuple[Tensor, Tensor]]) -> Tensor:
    """W_b = sum_i scale_i[c] * sign_i: the binary weights of (sign, per-output-channel scale) pairs."""
    return sum(_per_channel(scale, signs, 0) * signs for signs, scale in bases)


def match_channels(x: Tensor, out_channels: int, channel_dim: int) -> Tensor:
    """Bring a layer input to the layer's output width for a real-valued shortcut.

    Equal widths pass through; a wider output repeats the input channels (BBCU's channel
    expansion); a narrower output averages consecutive groups of out_channels input channels.
    """
    in_channels = x.shape[channel_dim]
    if in_channels == out_channels:
        return x
    if out_channels % in_channels == 0:
        reps = [1] * x.dim()
        reps[channel_dim] = out_channels // in_channels
        return x.repeat(reps)
    groups = in_channels // out_channels
    dim = channel_dim % x.dim()
    shape = list(x.shape[:dim]) + [groups, out_channels] + list(x.shape[dim + 1:])
    return x.reshape(shape).mean(dim=dim)


def check_shortcut_widths(in_channels: int, out_channels: int) -> None:
    if in_channels % out_channels and out_channels % in_channels:
        raise ValueError(
            f"a real-valued shortcut needs one width to divide the other, got {in_channels} -> {out_channels}"
        )


# ---------------------------------------------------------------------------------------------
# What a deployment engine needs of a part (declared by the part, never guessed from its type)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineInput:
    """An input quantizer as a bitwise engine computes it: the input bit is -1 where

        not ((x - threshold_c) >= 0)                       mode "sign" (threshold 0) or "threshold"
        not (((x - mu_c) / (sigma_c + eps)) >= 0)          mode "mean_centered" (per-sample statistics)

    ``threshold`` is a per-channel tensor for mode "threshold", else None.
    """

    mode: str
    threshold: Tensor | None = None
    eps: float = 0.0


@dataclass(frozen=True)
class EngineOutput:
    """An output transform as the engine's epilogue applies it to y (the scaled dot plus bias):

        "plain":    y
        "shortcut": y + match_channels(x)
        "prelu":    PReLU_slope(y - shift_in) + shift_out + match_channels(x)

    Tensors are per output channel; None means 0 for the shifts and 1 for the slope.
    """

    mode: str
    shift_in: Tensor | None = None
    slope: Tensor | None = None
    shift_out: Tensor | None = None


# ---------------------------------------------------------------------------------------------
# Input (activation) quantizers: x -> +/-1
# ---------------------------------------------------------------------------------------------


class SignInput(nn.Module):
    """sign(x) with a chosen surrogate gradient ('clipped', 'ste' or 'approx')."""

    GRADIENTS: dict[str, Callable[[Tensor], Tensor]] = {
        "clipped": sign_clipped_ste,
        "ste": sign_ste,
        "approx": approx_sign,
    }

    def __init__(self, gradient: str = "clipped") -> None:
        super().__init__()
        self.gradient = gradient
        self._fn = self.GRADIENTS[gradient]

    def forward(self, x: Tensor) -> Tensor:
        return self._fn(x)

    def engine_spec(self) -> EngineInput:
        return EngineInput("sign")

    def extra_repr(self) -> str:
        return f"gradient={self.gradient}"


class RSign(nn.Module):
    """ReActNet's RSign: sign(x - beta_c) with a learnable per-channel threshold, ApproxSign gradient."""

    def __init__(self, channels: int, channel_dim: int) -> None:
        super().__init__()
        self.channel_dim = channel_dim
        self.threshold = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return approx_sign(x - _per_channel(self.threshold, x, self.channel_dim))

    def engine_spec(self) -> EngineInput:
        return EngineInput("threshold", threshold=self.threshold.detach())


class MeanCenteredSign(nn.Module):
    """BTM's feature normalisation before the sign: sign((x - mu) / sigma) = sign(x - mu).

    mu is the per-sample, per-channel mean over positions (spatial for convolutions, tokens for
    linear layers); sigma > 0 does not change the sign, only the gradient scale, which the clipped
    straight-through estimator sees through the normalised value. The statistics span the whole
    input, so an image run tile by tile is binarized slightly differently (``image_statistics``).
    """

    image_statistics = True

    def __init__(self, channel_dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.channel_dim = channel_dim
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        dims = [d for d in range(1, x.dim()) if d != self.channel_dim % x.dim()]
        mu = x.mean(dim=dims, keepdim=True)
        sigma = x.std(dim=dims, keepdim=True, unbiased=False) + self.eps
        return sign_clipped_ste((x - mu) / sigma)

    def engine_spec(self) -> EngineInput:
        return EngineInput("mean_centered", eps=self.eps)


class EDESign(nn.Module):
    """IR-Net activation: sign(x) with the EDE gradient; ``progress`` (0..1) is set by the trainer."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("progress", torch.ones(()), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return ede_sign(x, self.progress)

    def engine_spec(self) -> EngineInput:
        return EngineInput("sign")


# ---------------------------------------------------------------------------------------------
# Weight quantizers: W -> binary (float-simulated) weights
# ---------------------------------------------------------------------------------------------


class WeightQuantizer(nn.Module):
    """Base: ``forward(W)`` returns the binarized weights; ``bases(W)`` returns the packed form.

    ``bases`` gives a list of (sign tensor in {-1,+1}, per-output-channel scale) pairs with
    W_b = sum_i scale_i[c] * sign_i; this is what the bitwise engine stores, and ``num_bases`` is
    their number (the engine's cost per layer: one XNOR-popcount pass per basis). ``scaled`` is
    False for a quantizer whose W_b keeps no magnitude of W (its stored scales are 1), so the
    packed form cannot give latent weights their size back.
    """

    num_bases = 1
    scaled = True

    def bases(self, w: Tensor) -> list[tuple[Tensor, Tensor]]:
        raise NotImplementedError

    def latent(self, bases: list[tuple[Tensor, Tensor]]) -> Tensor:
        """Latent weights W that ``bases(W)`` turns back into ``bases`` (training resumes from a packed
        file): W_b = sum_i scale_i[c] * sign_i by default, right for one basis taken from sign(W) or
        sign(W_c - mean(W_c)). A learned scale is reset from W separately (``reset_from_weight``)."""
        return combine_bases(bases)

    def reset_from_weight(self, w: Tensor) -> None:
        """Initialise learnable parts from the (full-precision) weights; nothing by default."""


class PlainSign(WeightQuantizer):
    """BNN weights: W_b = sign(W), clipped straight-through gradient, no scale."""

    scaled = False

    def forward(self, w: Tensor) -> Tensor:
        return sign_clipped_ste(w)

    def bases(self, w: Tensor) -> list[tuple[Tensor, Tensor]]:
        return [(sign(w), torch.ones(w.shape[0], dtype=w.dtype, device=w.device))]


class LayerMeanSign(WeightQuantizer):
    """DoReFa 1-bit weights: W_b = E(|W|) sign(W), E over the whole layer; gradient dW_b/dW = 1."""

    def forward(self, w: Tensor) -> Tensor:
        return w.abs().mean().detach() * sign_ste(w)

    def bases(self, w: Tensor) -> list[tuple[Tensor, Tensor]]:
        return [(sign(w), w.abs().mean().expand(w.shape[0]).clone())]


class ChannelMeanSign(WeightQuantizer):
    """Magnitude-aware weights: W_b = alpha_c sign(W), alpha_c = mean |W_c| per output channel.

    alpha is treated as a constant in the backward pass, sign(W) gets the clipped
    straight-through gradient (Bi-Real Net's practical form, also used by ReActNet and BTM).
    """

    def forward(self, w: Tensor) -> Tensor:
        return channel_mean_abs(w).detach() * sign_clipped_ste(w)

    def bases(self, w: Tensor) -> list[tuple[Tensor, Tensor]]:
        return [(sign(w), channel_mean_abs(w).flatten())]


class SecondOrderResidualSign(WeightQuantizer):
    """FRB's second-order residual binarization (SRB; Zhang, Qin et al., ICML 2024, Sec. 3.2).

        B1 = sign(W),            alpha1_c = mean |W_c|
        R  = W - alpha1 B1,      alpha2_c = mean |R_c|
        W_b = alpha1 B1 + alpha2 sign(R)

    Both bases are +/-1 and act on the same binary input, so the layer costs two XNOR-popcount
    passes. Scales are constants in the backward pass; W gets the clipped straight-through
    gradient through both terms. With ``second_order=False`` this is the first-order (vanilla)
    alpha1 sign(W) used for the ablation.
    """

    def __init__(self, second_order: bool = True) -> None:
        super().__init__()
        self.second_order = second_order
        self.num_bases = 2 if second_order else 1

    def bases(self, w: Tensor) -> list[tuple[Tensor, Tensor]]:
        b1 = sign(w)
        a1 = channel_mean_abs(w)
        out = [(b1, a1.flatten())]
        if self.second_order:
            residual = w - a1 * b1
            out.append((sign(residual), channel_mean_abs(residual).flatten()))
        return out

    def forward(self, w: Tensor) -> Tensor:
        with torch.no_grad():
            value = combine_bases(self.bases(w))
        clipped = w.clamp(-1.0, 1.0)
        return value + (clipped - clipped.detach())

    def latent(self, bases: list[tuple[Tensor, Tensor]]) -> Tensor:
        """Latent weights W that binarize back into B1, alpha1, B2, alpha2: sign(W) = B1,
        mean |W_c| = alpha1_c, sign(W - alpha1 B1) = B2 and mean |W_c - alpha1_c B1| = alpha2_c.

        W_b = alpha1 B1 + alpha2 B2 itself does not do this where alpha2_c > alpha1_c (a heavy-tailed
        channel): there sign(W_b) is B2 wherever the bases differ. Instead, with p_c the fraction of
        channel c where B2 = B1,

            W = B1 (alpha1 + alpha2 / (2 p))          where B2 = B1
            W = B1 (alpha1 - alpha2 / (2 (1 - p)))    where B2 = -B1

        whose magnitude stays positive for any bases that came from real weights (there the mean of
        alpha1 - |W| over the second set is alpha2 / (2 (1 - p)) and at most alpha1).
        """
        if not self.second_order:
            return super().latent(bases)
        (b1, alpha1), (b2, alpha2) = bases
        agree = (b1 == b2).float()
        p = _per_channel(agree.flatten(1).mean(dim=1).clamp(1e-6, 1 - 1e-6), b1, 0)
        a1, a2 = _per_channel(alpha1, b1, 0), _per_channel(alpha2, b1, 0)
        magnitude = agree * (a1 + a2 / (2 * p)) + (1 - agree) * (a1 - a2 / (2 * (1 - p)))
        return b1 * magnitude

    def extra_repr(self) -> str:
        return f"second_order={self.second_order}"


class LibraSign(WeightQuantizer):
    """IR-Net's Libra-PB weights with the EDE gradient (Qin et al., CVPR 2020).

        W_hat = (W_c - mean(W_c)) / std(W_c)          (balanced, standardised, per output channel)
        W_b   = s_c sign(W_hat),  s_c = 2^round(log2(mean |W_c - mean(W_c)|))

    IR-Net takes s from the standardised weights because a BatchNorm follows every binary conv in
    its classification networks. SRResNet has no BatchNorm, so s is taken from the centred
    (unstandardised) weights, which keeps the binary layer on the full-precision layer's scale while
    keeping the power-of-two (bit-shift) form. The sign gets the EDE gradient, gradients also flow
    through the mean and std as in IR-Net.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("progress", torch.ones(()), persistent=False)

    def _centred(self, w: Tensor) -> Tensor:
        return w - w.flatten(1).mean(dim=1).view(-1, *([1] * (w.dim() - 1)))

    def _scale(self, centred: Tensor) -> Tensor:
        mean_abs = channel_mean_abs(centred).clamp_min(1e-12)
        return torch.pow(2.0, torch.round(torch.log2(mean_abs)))

    def forward(self, w: Tensor) -> Tensor:
        centred = self._centred(w)
        std = centred.flatten(1).std(dim=1).view(-1, *([1] * (w.dim() - 1))) + 1e-8
        return self._scale(centred).detach() * ede_sign(centred / std, self.progress)

    def bases(self, w: Tensor) -> list[tuple[Tensor, Tensor]]:
        centred = self._centred(w)
        return [(sign(centred), self._scale(centred).flatten())]

    def latent(self, bases: list[tuple[Tensor, Tensor]]) -> Tensor:
        """W = s B / (4 p (1 - p)), p_c the fraction of B_c = +1: centring takes B's mean 2p - 1 off,
        which keeps each sign and leaves mean |W_c - mean(W_c)| = s_c exactly (s B itself would give
        4 p (1 - p) s, a different power of two once p is far from 1/2)."""
        (signs, scale), = bases
        p = (signs > 0).float().flatten(1).mean(dim=1).clamp(1e-6, 1 - 1e-6)
        return _per_channel(scale / (4 * p * (1 - p)), signs, 0) * signs


class LearnedScaleSign(WeightQuantizer):
    """Weights sign(W) times a learnable per-output-channel scale gamma_c, initialised to mean |W_c|.

    Clipped straight-through gradient for W; gamma learns through the ordinary gradient.
    """

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(out_channels))

    def reset_from_weight(self, w: Tensor) -> None:
        with torch.no_grad():
            self.scale.copy_(channel_mean_abs(w).flatten())

    def forward(self, w: Tensor) -> Tensor:
        return self.scale.view(-1, *([1] * (w.dim() - 1))) * sign_clipped_ste(w)

    def bases(self, w: Tensor) -> list[tuple[Tensor, Tensor]]:
        return [(sign(w), self.scale.detach().clone())]


# ---------------------------------------------------------------------------------------------
# Output transforms: (binary conv result y, layer input x) -> layer output
# ---------------------------------------------------------------------------------------------


class PlainOutput(nn.Module):
    """y: no shortcut, no activation."""

    adds_input = False

    def forward(self, y: Tensor, x: Tensor) -> Tensor:
        return y

    def engine_spec(self) -> EngineOutput:
        return EngineOutput("plain")


class ShortcutOutput(nn.Module):
    """y + x: a real-valued shortcut around the binary layer (Bi-Real Net)."""

    adds_input = True

    def __init__(self, channel_dim: int) -> None:
        super().__init__()
        self.channel_dim = channel_dim

    def forward(self, y: Tensor, x: Tensor) -> Tensor:
        return y + match_channels(x, y.shape[self.channel_dim], self.channel_dim)

    def engine_spec(self) -> EngineOutput:
        return EngineOutput("shortcut")


class PReLUShortcutOutput(ShortcutOutput):
    """PReLU_c(y) + x (BTM): per-channel slope a_c for y < 0, initialised to 0.25."""

    def __init__(self, channels: int, channel_dim: int) -> None:
        super().__init__(channel_dim)
        self.slope = nn.Parameter(torch.full((channels,), 0.25))

    def prelu(self, y: Tensor) -> Tensor:
        return torch.where(y >= 0, y, _per_channel(self.slope, y, self.channel_dim) * y)

    def forward(self, y: Tensor, x: Tensor) -> Tensor:
        return super().forward(self.prelu(y), x)

    def engine_spec(self) -> EngineOutput:
        return EngineOutput("prelu", slope=self.slope.detach())


class RPReLUShortcutOutput(PReLUShortcutOutput):
    """ReActNet's RPReLU followed by the shortcut: PReLU_c(y - gamma_c) + zeta_c + x."""

    def __init__(self, channels: int, channel_dim: int) -> None:
        super().__init__(channels, channel_dim)
        self.shift_in = nn.Parameter(torch.zeros(channels))
        self.shift_out = nn.Parameter(torch.zeros(channels))

    def forward(self, y: Tensor, x: Tensor) -> Tensor:
        gamma = _per_channel(self.shift_in, y, self.channel_dim)
        zeta = _per_channel(self.shift_out, y, self.channel_dim)
        return ShortcutOutput.forward(self, self.prelu(y - gamma) + zeta, x)

    def engine_spec(self) -> EngineOutput:
        return EngineOutput("prelu", self.shift_in.detach(), self.slope.detach(), self.shift_out.detach())


# ---------------------------------------------------------------------------------------------
# Methods
# ---------------------------------------------------------------------------------------------


class BinarizationMethod:
    """A binarization method: builds the three parts of a binary layer.

    ``channel_dim`` is 1 for convolutions (N, C, H, W) and -1 for linear layers (..., C).
    """

    name: str = ""
    citation: str = ""

    def input_quantizer(self, in_channels: int, channel_dim: int) -> nn.Module:
        return SignInput("clipped")

    def weight_quantizer(self, out_channels: int) -> WeightQuantizer:
        raise NotImplementedError

    def output(self, in_channels: int, out_channels: int, channel_dim: int) -> nn.Module:
        return PlainOutput()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class WithShortcut:
    """Mixin for methods whose output transform is the plain real-valued shortcut y + x."""

    def output(self, in_channels: int, out_channels: int, channel_dim: int) -> nn.Module:
        check_shortcut_widths(in_channels, out_channels)
        return ShortcutOutput(channel_dim)


METHODS: dict[str, type[BinarizationMethod]] = {}


def register(cls: type[BinarizationMethod]) -> type[BinarizationMethod]:
    METHODS[cls.name] = cls
    return cls


@register
class BNN(BinarizationMethod):
    """BNN (Courbariaux, Hubara et al., NeurIPS 2016).

    Activations: sign(x), clipped straight-through gradient 1[|x| <= 1].
    Weights: sign(W), no scaling factor, clipped straight-through gradient.
    Structure: none (no shortcut around the binary conv).
    """

    name = "bnn"
    citation = "Hubara et al., Binarized Neural Networks, NeurIPS 2016"

    def weight_quantizer(self, out_channels: int) -> WeightQuantizer:
        return PlainSign()


@register
class DoReFa(BinarizationMethod):
    """DoReFa-Net, 1-bit weights and activations (Zhou et al., arXiv:1606.06160, 2016).

    Activations: sign(x), clipped straight-through gradient.
    Weights: E(|W|) sign(W), one scale per layer; straight-through gradient (dW_b/dW = 1).
    Structure: none.
    """

    name = "dorefa"
    citation = "Zhou et al., DoReFa-Net, arXiv:1606.06160"

    def weight_quantizer(self, out_channels: int) -> WeightQuantizer:
        return LayerMeanSign()


@register
class BiReal(WithShortcut, BinarizationMethod):
    """Bi-Real Net (Liu et al., ECCV 2018).

    Activations: sign(x) with the ApproxSign gradient max(0, 2 - 2|x|).
    Weights: magnitude-aware alpha_c sign(W), alpha_c = mean |W_c| (per output channel).
    Structure: a real-valued shortcut around every binary conv: out = y + x.
    """

    name = "bireal"
    citation = "Liu et al., Bi-Real Net, ECCV 2018"

    def input_quantizer(self, in_channels: int, channel_dim: int) -> nn.Module:
        return SignInput("approx")

    def weight_quantizer(self, out_channels: int) -> WeightQuantizer:
        return ChannelMeanSign()


@register
class IRNet(WithShortcut, BinarizationMethod):
    """IR-Net (Qin et al., CVPR 2020).

    Weights: Libra-PB, sign of the balanced, standardised weights times a power-of-two
    per-channel scale (see ``LibraSign`` for the BatchNorm-free choice of scale).
    Activations: sign(x). Both signs use the Error Decay Estimator gradient
    k t (1 - tanh^2(t x)) whose t grows from 0.1 to 10 over training (``set_progress``).
    Structure: real-valued shortcut around every binary conv, as in IR-Net's ResNets.
    """

    name = "irnet"
    citation = "Qin et al., Forward and Backward Information Retention (IR-Net), CVPR 2020"

    def input_quantizer(self, in_channels: int, channel_dim: int) -> nn.Module:
        return EDESign()

    def weight_quantizer(self, out_channels: int) -> WeightQuantizer:
        return LibraSign()


@register
class BAM(WithShortcut, BinarizationMethod):
    """BAM, bit-accumulation mechanism (Xin et al., ECCV 2020).

    BAM approximates full-precision values by accumulating the one-bit results of successive
    layers. Our reading, in a form a packed engine can run: every binary conv adds its scaled
    binary result onto a real-valued accumulator that carries the running sum through the body,
    out = gamma_c (sign(W) * sign(x)) + x, with a learnable per-channel scale gamma (initialised
    to mean |W_c|). Activations: sign(x), clipped straight-through gradient.
    """

    name = "bam"
    citation = "Xin et al., Binarized Neural Network for Single Image Super Resolution, ECCV 2020"

    def weight_quantizer(self, out_channels: int) -> WeightQuantizer:
        return LearnedScaleSign(out_channels)


@register
class BTM(BinarizationMethod):
    """BTM, binary training mechanism without BatchNorm (Jiang et al., AAAI 2021).

    Activations: sign of the normalised features, sign((x - mu) / sigma) with per-sample,
    per-channel statistics (no BatchNorm anywhere), clipped straight-through gradient.
    Weights: alpha_c sign(W), alpha_c = mean |W_c|.
    Structure: PReLU after the binary conv and a real-valued shortcut: out = PReLU(y) + x.
    """

    name = "btm"
    citation = "Jiang et al., Training Binary Neural Network without Batch Normalization for Image Super-Resolution, AAAI 2021"

    def input_quantizer(self, in_channels: int, channel_dim: int) -> nn.Module:
        return MeanCenteredSign(channel_dim)

    def weight_quantizer(self, out_channels: int) -> WeightQuantizer:
        return ChannelMeanSign()

    def output(self, in_channels: int, out_channels: int, channel_dim: int) -> nn.Module:
        check_shortcut_widths(in_channels, out_channels)
        return PReLUShortcutOutput(out_channels, channel_dim)


@register
class ReActNet(BinarizationMethod):
    """ReActNet (Liu et al., ECCV 2020).

    Activations: RSign, sign(x - beta_c) with a learnable per-channel threshold, ApproxSign gradient.
    Weights: alpha_c sign(W), alpha_c = mean |W_c|.
    Structure: RPReLU, PReLU(y - gamma_c) + zeta_c, then a real-valued shortcut.
    """

    name = "reactnet"
    citation = "Liu et al., ReActNet, ECCV 2020"

    def input_quantizer(self, in_channels: int, channel_dim: int) -> nn.Module:
        return RSign(in_channels, channel_dim)

    def weight_quantizer(self, out_channels: int) -> WeightQuantizer:
        return ChannelMeanSign()

    def output(self, in_channels: int, out_channels: int, channel_dim: int) -> nn.Module:
        check_shortcut_widths(in_channels, out_channels)
        return RPReLUShortcutOutput(out_channels, channel_dim)


@register
class FRB(BinarizationMethod):
    """FRB, flexible residual binarization (Zhang, Qin et al., ICML 2024): its SRB weights.

    Weights: W_b = alpha1 sign(W) + alpha2 sign(W - alpha1 sign(W)), both alphas per output
    channel from mean absolute values (``SecondOrderResidualSign``): one binary input, two
    binary weight bases. The paper leaves the rest of the binary unit open; we use the same unit
    as ReActNet (RSign input with ApproxSign gradient, RPReLU and a real-valued shortcut), so that
    ``FRB(second_order=False)`` is exactly the first-order ("vanilla") baseline of the ablation.
    DBT (distillation-guided training) is part of training, not of the layer (see ``train``).
    """

    name = "frb"
    citation = "Zhang, Qin et al., Flexible Residual Binarization for Image Super-Resolution, ICML 2024"

    def __init__(self, second_order: bool = True) -> None:
        self.second_order = second_order

    def input_quantizer(self, in_channels: int, channel_dim: int) -> nn.Module:
        return RSign(in_channels, channel_dim)

    def weight_quantizer(self, out_channels: int) -> WeightQuantizer:
        return SecondOrderResidualSign(self.second_order)

    def output(self, in_channels: int, out_channels: int, channel_dim: int) -> nn.Module:
        check_shortcut_widths(in_channels, out_channels)
        return RPReLUShortcutOutput(out_channels, channel_dim)

    def __repr__(self) -> str:
        return f"FRB(second_order={self.second_order})"


def get_method(name: str, **options: object) -> BinarizationMethod:
    """Instantiate a registered method by name, e.g. ``get_method("frb", second_order=False)``."""
    try:
        cls = METHODS[name]
    except KeyError:
        raise ValueError(f"unknown binarization method {name!r}; choose one of {sorted(METHODS)}") from None
    return cls(**options)
