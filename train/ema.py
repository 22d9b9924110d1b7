"""Exponential moving average of the weights, the copy that validation and export use."""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class EMA:
    """theta_ema <- decay * theta_ema + (1 - decay) * theta after every optimizer step.

    Buffers are copied as they are. ``module`` is a frozen deep copy of the model in eval mode;
    make it before registering hooks on the model (hooks would be copied too).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_params, params = list(self.module.parameters()), list(model.parameters())
        torch._foreach_lerp_(ema_params, params, 1.0 - self.decay)
        for ema_buf, buf in zip(self.module.buffers(), model.buffers()):
            ema_buf.copy_(buf)

    def state_dict(self) -> dict[str, Any]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state)
