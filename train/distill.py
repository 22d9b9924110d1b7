"""Distillation-guided binarization training (DBT, FRB paper, Zhang, Qin et al., ICML 2024).

The binarized student and its frozen full-precision teacher (same architecture) see the same
LR batch; the outputs of their blocks (``model.feature_blocks()``: SRResNet's residual blocks,
SwinIR's RSTBs) are collected with forward hooks and compared through a normalised attention map

    a(F)  = mean over channels of F^2, flattened per sample      (one value per position)
    A(F)  = a(F) / ||a(F)||_2
    loss_dbt = mean over blocks b and samples n of || A(F_s^b,n) - A(F_t^b,n) ||_2

(the plain, not squared, L2 distance, as in attention transfer, Zagoruyko & Komodakis 2017;
it lies in [0, 2]). The training loss is  L1(SR, HR) + lambda * loss_dbt.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def attention_map(feature: Tensor, eps: float = 1e-12) -> Tensor:
    """A(F): channel-mean of F^2 per position, L2-normalised per sample, shape ``(N, positions)``.

    Accepts convolution features ``(N, C, H, W)`` and token features ``(N, L, C)`` (channels last).
    """
    f = feature.float()
    energy = f.pow(2).mean(dim=1 if f.dim() == 4 else -1).flatten(1)
    return energy / energy.norm(dim=1, keepdim=True).clamp_min(eps)


def dbt_loss(student: Sequence[Tensor], teacher: Sequence[Tensor]) -> Tensor:
    """mean_b mean_n || A(F_s) - A(F_t) ||_2 over paired block features; 0 when they are equal."""
    if len(student) != len(teacher) or not student:
        raise ValueError(f"DBT needs the same non-zero number of blocks, got {len(student)} and {len(teacher)}")
    distances = [(attention_map(s) - attention_map(t)).norm(dim=1).mean() for s, t in zip(student, teacher)]
    return torch.stack(distances).mean()


class FeatureRecorder:
    """Forward hooks keeping the outputs of ``model.feature_blocks()``, in call order, until taken."""

    def __init__(self, model: nn.Module) -> None:
        self.features: list[Tensor] = []
        self.handles = [block.register_forward_hook(self._hook) for block in model.feature_blocks()]

    def _hook(self, module: nn.Module, inputs: tuple, output: Tensor) -> None:
        self.features.append(output)

    def take(self) -> list[Tensor]:
        """The features recorded since the last call (and forget them)."""
        features, self.features = self.features, []
        return features

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.features = []
