"""Generic binary layers and ``binarize(model, method)``.

``BinaryConv2d`` and ``BinaryLinear`` subclass the float layers and keep their ``weight`` and
``bias`` parameters under the same names, so a full-precision state dict initialises a binary
student. What a method adds (thresholds, scales, PReLU slopes) lives in three child modules:
``input_quantizer``, ``weight_quantizer`` and ``output`` (see ``frb.binarize``). An output
transform declares ``adds_input`` (whether it adds the layer input itself).
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from frb.binarize import BinarizationMethod, get_method


class _BinaryMixin:
    """Shared set-up of the three method parts for a layer of width in_channels -> out_channels."""

    input_quantizer: nn.Module
    weight_quantizer: nn.Module
    output: nn.Module
    method: BinarizationMethod

    def _attach_method(self, method: BinarizationMethod, in_ch: int, out_ch: int, channel_dim: int) -> None:
        self.method = method
        self.input_quantizer = method.input_quantizer(in_ch, channel_dim)
        self.weight_quantizer = method.weight_quantizer(out_ch)
        self.output = method.output(in_ch, out_ch, channel_dim)
        self.reset_method_parameters()

    def _copy_float(self, float_layer: nn.Module) -> None:
        """Take the float layer's weight and bias, then initialise the method's parts from them."""
        with torch.no_grad():
            self.weight.copy_(float_layer.weight)
            if float_layer.bias is not None:
                self.bias.copy_(float_layer.bias)
        self.reset_method_parameters()

    def reset_method_parameters(self) -> None:
        """Initialise the method's learnable parts that depend on the current weights."""
        self.weight_quantizer.reset_from_weight(self.weight.detach())

    def binary_weight(self) -> Tensor:
        return self.weight_quantizer(self.weight)

    @property
    def adds_input(self) -> bool:
        """Whether the output transform already adds the layer input (a real-valued shortcut)."""
        return self.output.adds_input

    @property
    def num_weight_bases(self) -> int:
        return self.weight_quantizer.num_bases


class BinaryConv2d(_BinaryMixin, nn.Conv2d):
    """A 1-bit convolution: y = output(conv(pad_{+1}(input_quantizer(x)), W_b) + b, x).

    The binarized input is padded with +1 (``sign(0) = +1`` convention), so a packed +/-1
    engine reproduces borders exactly. Only stride 1, dilation 1, groups 1 and zero padding
    mode are supported (all SR backbones here use those).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        method: BinarizationMethod,
        padding: int | None = None,
        bias: bool = True,
    ) -> None:
        padding = kernel_size // 2 if padding is None else padding
        super().__init__(in_channels, out_channels, kernel_size, padding=padding, bias=bias)
        self._attach_method(method, in_channels, out_channels, channel_dim=1)

    @classmethod
    def from_float(cls, conv: nn.Conv2d, method: BinarizationMethod) -> "BinaryConv2d":
        if conv.stride != (1, 1) or conv.dilation != (1, 1) or conv.groups != 1:
            raise ValueError(f"binary convolutions need stride 1, dilation 1, groups 1; got {conv}")
        if conv.padding_mode != "zeros" or conv.kernel_size[0] != conv.kernel_size[1]:
            raise ValueError(f"binary convolutions need square kernels and zero padding mode; got {conv}")
        if not isinstance(conv.padding, tuple) or conv.padding[0] != conv.padding[1]:
            raise ValueError(f"binary convolutions need symmetric integer padding; got {conv}")
        layer = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size[0],
            method,
            padding=conv.padding[0],
            bias=conv.bias is not None,
        ).to(device=conv.weight.device, dtype=conv.weight.dtype)
        layer._copy_float(conv)
        return layer

    def forward(self, x: Tensor) -> Tensor:
        xb = self.input_quantizer(x)
        p = self.padding[0]
        if p:
            xb = F.pad(xb, (p, p, p, p), value=1.0)
        y = F.conv2d(xb, self.binary_weight(), self.bias)
        return self.output(y, x)


class BinaryLinear(_BinaryMixin, nn.Linear):
    """A 1-bit linear layer on (..., C) inputs: y = output(input_quantizer(x) W_b^T + b, x)."""

    def __init__(self, in_features: int, out_features: int, method: BinarizationMethod, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self._attach_method(method, in_features, out_features, channel_dim=-1)

    @classmethod
    def from_float(cls, linear: nn.Linear, method: BinarizationMethod) -> "BinaryLinear":
        layer = cls(linear.in_features, linear.out_features, method, bias=linear.bias is not None).to(
            device=linear.weight.device, dtype=linear.weight.dtype
        )
        layer._copy_float(linear)
        return layer

    def forward(self, x: Tensor) -> Tensor:
        y = F.linear(self.input_quantizer(x), self.binary_weight(), self.bias)
        return self.output(y, x)


BINARY_LAYERS = (BinaryConv2d, BinaryLinear)


def binary_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The binary layers of a model by qualified name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, BINARY_LAYERS)}


def binarize(model: nn.Module, method: BinarizationMethod | str, **options: object) -> nn.Module:
    """Turn a full-precision model into its binarized twin, in place, and return it.

    The model names which layers become binary (``binary_layer_names()``) and which activations
    directly in front of a binary layer must go (``activations_before_binary()``: under
    sign(0) = +1, sign(ReLU(x)) is +1 everywhere and would erase the layer's input). Weights and
    biases are copied, so the binary twin keeps every full-precision parameter name.
    """
    if isinstance(method, str):
        method = get_method(method, **options)
    for name in model.activations_before_binary():
        _replace(model, name, nn.Identity())
    for name in model.binary_layer_names():
        layer = model.get_submodule(name)
        if isinstance(layer, nn.Conv2d):
            _replace(model, name, BinaryConv2d.from_float(layer, method))
        elif isinstance(layer, nn.Linear):
            _replace(model, name, BinaryLinear.from_float(layer, method))
        else:
            raise TypeError(f"{name} is a {type(layer).__name__}; only Conv2d and Linear layers can be binarized")
    model.binarization_method = method
    return model


def load_full_precision(model: nn.Module, state_dict: Mapping[str, Tensor]) -> None:
    """Load a full-precision state dict into a (possibly binarized) model.

    Every key of the state dict must exist in the model; the only model keys allowed to be
    missing are the binarization methods' own parameters, which are then re-initialised from
    the loaded weights.
    """
    result = model.load_state_dict(state_dict, strict=False)
    method_parts = (".input_quantizer.", ".weight_quantizer.", ".output.")
    missing = [k for k in result.missing_keys if not any(p in k for p in method_parts)]
    if result.unexpected_keys or missing:
        raise ValueError(
            f"state dict does not fit the model: missing {missing[:8]}, unexpected {result.unexpected_keys[:8]}"
        )
    for layer in binary_layers(model).values():
        layer.reset_method_parameters()


def set_progress(model: nn.Module, progress: float) -> None:
    """Tell schedule-dependent quantizers (IR-Net's EDE) how far training is, progress in [0, 1].

    Their ``progress`` is a 0-d buffer filled in place, so a ``torch.compile``-d model reads the new
    value without recompiling.
    """
    for module in model.modules():
        if isinstance(getattr(module, "progress", None), torch.Tensor):
            module.progress.fill_(float(progress))


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)
