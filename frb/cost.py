"""Parameter and operation counts in the convention of BBCU's Table 1 (Xia et al., ICLR 2023).

* Parameters: the weights of convolutions and linear layers; binary weights count 1/32.
  Biases, normalisation parameters, position tables and the binarization methods' per-channel
  scalars are not counted (with them left out, SRResNet x4 gives BBCU's 1515K exactly).
  FRB's second weight base is a second set of binary weights and counts again.
* Operations: multiply-accumulates of convolutions, linear layers and attention products, measured
  on a 320x180 LR input; binary MACs count 1/64 (FRB: 1/64 per weight base).

The counts come from running the model once on the ``meta`` device with forward hooks, so they
follow the real data flow (including SwinIR's padding to whole windows) at no compute cost.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

from frb.layers import BINARY_LAYERS
from frb.models import MODELS, SCALES, create_model

BBCU_INPUT_HW = (180, 320)
BINARY_PARAM_FACTOR = 32
BINARY_OP_FACTOR = 64


@dataclass(frozen=True)
class Cost:
    params: int  # every parameter, real count
    fp_weights: int
    binary_weights: int  # counted once per weight base
    fp_macs: int
    binary_macs: int  # counted once per weight base

    @property
    def params_bbcu(self) -> float:
        return self.fp_weights + self.binary_weights / BINARY_PARAM_FACTOR

    @property
    def ops_bbcu(self) -> float:
        return self.fp_macs + self.binary_macs / BINARY_OP_FACTOR

    @property
    def params_K(self) -> float:
        return self.params_bbcu / 1e3

    @property
    def ops_G(self) -> float:
        return self.ops_bbcu / 1e9


def _attention_classes() -> tuple[type, ...]:
    from frb.models.swinir import WindowAttention

    return (WindowAttention,)


def count_cost(model: nn.Module, input_hw: tuple[int, int] = BBCU_INPUT_HW) -> Cost:
    """Count parameters and MACs of ``model`` for one 3-channel LR input of size input_hw."""
    params = sum(p.numel() for p in model.parameters())
    meta_model = copy.deepcopy(model).to("meta")
    totals = {"fp_w": 0, "bin_w": 0, "fp_macs": 0, "bin_macs": 0}
    attention = _attention_classes()

    def weighted_layer_hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        per_output = module.weight[0].numel()  # MACs per output element
        macs = output.numel() * per_output
        if isinstance(module, BINARY_LAYERS):
            totals["bin_macs"] += macs * module.num_weight_bases
        else:
            totals["fp_macs"] += macs

    def attention_hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        windows, tokens, channels = inputs[0].shape
        totals["fp_macs"] += 2 * windows * tokens * tokens * channels  # q k^T and attn v

    handles = []
    for module in meta_model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            handles.append(module.register_forward_hook(weighted_layer_hook))
            bases = module.num_weight_bases if isinstance(module, BINARY_LAYERS) else 0
            if bases:
                totals["bin_w"] += module.weight.numel() * bases
            else:
                totals["fp_w"] += module.weight.numel()
        elif isinstance(module, attention):
            handles.append(module.register_forward_hook(attention_hook))
    try:
        with torch.no_grad():
            meta_model(torch.empty(1, 3, *input_hw, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return Cost(params, totals["fp_w"], totals["bin_w"], totals["fp_macs"], totals["bin_macs"])


@lru_cache(maxsize=None)
def model_cost(name: str, scale: int) -> Cost:
    """The cost of the public model ``name`` at ``scale`` (built on the meta device: no weights, no compute)."""
    with torch.device("meta"):
        model = create_model(name, scale)
    return count_cost(model)


def model_costs(scales: tuple[int, ...] = SCALES) -> list[dict]:
    """One row per model and scale: real parameter count and the BBCU-convention cost."""
    rows = []
    for name, spec in MODELS.items():
        for scale in scales:
            cost = model_cost(name, scale)
            rows.append(
                {
                    "name": name,
                    "scale": scale,
                    "arch": spec.arch,
                    "method": spec.method,
                    "group": spec.group,
                    "params": cost.params,
                    "params_K": round(cost.params_K, 2),
                    "ops_G": round(cost.ops_G, 2),
                }
            )
    return rows
