"""Binary layers and binarize(): exact float semantics, names, checkpoints, gradients."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from frb.binarize import METHODS, get_method, sign
from frb.layers import BinaryConv2d, BinaryLinear, binarize, binary_layers, load_full_precision, set_progress
from frb.models.srresnet import SRResNet


def test_binary_conv_pads_the_binarized_input_with_plus_one():
    torch.manual_seed(0)
    conv = nn.Conv2d(5, 7, 3, padding=1)
    layer = BinaryConv2d.from_float(conv, get_method("bnn"))
    x = torch.randn(2, 5, 6, 9)
    expected = F.conv2d(F.pad(sign(x), (1, 1, 1, 1), value=1.0), sign(conv.weight), conv.bias)
    assert torch.equal(layer(x), expected)
    # a zero-padded convolution would differ exactly at the border
    zero_padded = F.conv2d(sign(x), sign(conv.weight), conv.bias, padding=1)
    assert not torch.equal(layer(x)[..., 0, :], zero_padded[..., 0, :])
    assert torch.equal(layer(x)[..., 1:-1, 1:-1], zero_padded[..., 1:-1, 1:-1])


def test_frb_conv_is_two_binary_convolutions_on_one_binary_input():
    torch.manual_seed(1)
    conv = nn.Conv2d(4, 4, 3, padding=1)
    layer = BinaryConv2d.from_float(conv, get_method("frb"))
    x = torch.randn(1, 4, 5, 5)
    xb = F.pad(sign(x), (1, 1, 1, 1), value=1.0)
    (b1, a1), (b2, a2) = layer.weight_quantizer.bases(conv.weight)
    y = a1.view(1, -1, 1, 1) * F.conv2d(xb, b1) + a2.view(1, -1, 1, 1) * F.conv2d(xb, b2) + conv.bias.view(1, -1, 1, 1)
    # fresh RSign / RPReLU parameters: threshold 0, shifts 0, slope 0.25, then the shortcut
    expected = torch.where(y >= 0, y, 0.25 * y) + x
    assert torch.allclose(layer(x), expected, atol=1e-5)
    assert layer.num_weight_bases == 2


def test_binary_linear_on_tokens_with_widening_shortcut():
    torch.manual_seed(2)
    lin = nn.Linear(6, 12)
    layer = BinaryLinear.from_float(lin, get_method("bireal"))
    x = torch.randn(2, 5, 6)
    w = lin.weight.abs().mean(1, keepdim=True) * sign(lin.weight)
    expected = F.linear(sign(x), w, lin.bias) + torch.cat([x, x], dim=-1)
    assert torch.allclose(layer(x), expected, atol=1e-6)


def test_from_float_rejects_unsupported_convolutions():
    with pytest.raises(ValueError, match="stride 1"):
        BinaryConv2d.from_float(nn.Conv2d(4, 4, 3, stride=2, padding=1), get_method("bnn"))
    with pytest.raises(ValueError, match="zero padding mode"):
        BinaryConv2d.from_float(nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"), get_method("bnn"))


@pytest.mark.parametrize("method", list(METHODS))
def test_binarize_srresnet_keeps_names_and_loads_a_full_precision_checkpoint(method):
    torch.manual_seed(3)
    teacher = SRResNet(scale=2, num_block=2)
    student = binarize(SRResNet(scale=2, num_block=2), method)
    fp_keys = set(teacher.state_dict())
    student_keys = set(student.state_dict())
    assert fp_keys <= student_keys
    extra = student_keys - fp_keys
    assert all(any(p in k for p in (".input_quantizer.", ".weight_quantizer.", ".output.")) for k in extra)
    load_full_precision(student, teacher.state_dict())
    assert torch.equal(student.body[0].conv1.weight, teacher.body[0].conv1.weight)
    assert isinstance(student.body[0].act, nn.Identity)
    assert sorted(binary_layers(student)) == sorted(teacher.binary_layer_names())
    assert isinstance(student.conv_first, nn.Conv2d) and not isinstance(student.conv_first, BinaryConv2d)
    with pytest.raises(ValueError, match="unexpected"):
        load_full_precision(student, {**teacher.state_dict(), "nonsense.weight": torch.zeros(1)})


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_trains_its_weights_and_own_parameters(method):
    torch.manual_seed(4)
    model = binarize(SRResNet(scale=2, num_block=2), method)
    set_progress(model, 0.3)
    x = torch.rand(2, 3, 9, 11)
    out = model(x)
    assert out.shape == (2, 3, 18, 22)
    (out - x.repeat_interleave(2, -1).repeat_interleave(2, -2)).abs().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.body[0].conv1.weight.grad.abs().sum() > 0


def test_set_progress_changes_irnet_gradients_only_not_values():
    torch.manual_seed(5)
    model = binarize(SRResNet(scale=2, num_block=1), "irnet")
    x = torch.rand(1, 3, 8, 8)
    grads, outs = [], []
    for progress in (0.0, 1.0):
        model.zero_grad()
        set_progress(model, progress)
        out = model(x)
        out.sum().backward()
        outs.append(out.detach())
        grads.append(model.body[0].conv1.weight.grad.clone())
    assert torch.equal(outs[0], outs[1])
    assert not torch.allclose(grads[0], grads[1])


def test_binarize_rejects_non_weight_layers():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm(4)

        def binary_layer_names(self):
            return ["norm"]

        def activations_before_binary(self):
            return []

    with pytest.raises(TypeError, match="norm is a LayerNorm"):
        binarize(Odd(), "bnn")
