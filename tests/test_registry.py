"""Every registered method on every registered backbone, on both backends; a 9th method and a 3rd backbone.

The parametrization reads the registries (``frb.binarize.METHODS``, ``frb.models.BACKBONES``), so
a method or backbone registered in its own file is checked here without editing a list. The
checks are plain functions, so the tests that register a toy method and a toy backbone run the
very same ones.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from frb.binarize import METHODS, BinarizationMethod, SignInput, WeightQuantizer, WithShortcut, sign, sign_clipped_ste
from frb.bitwise.export import install_packed, pack_model
from frb.bitwise.packing import FrozenBases, PackedLayer
from frb.bitwise.runner import make_runner, select_runner
from frb.imaging import to_uint8
from frb.layers import binarize, binary_layers
from frb.models import BACKBONES, MODELS, Backbone, BackboneSpec, ModelSpec, create_model, get_backbone
from frb.tiling import tiling_context
from train.presets import TrainConfig, preset

pytestmark = pytest.mark.engine  # run again with the kernels compiled for AVX2 (.ci/run)

BINARIZABLE = [name for name, b in BACKBONES.items() if b.has_weights]
PAIRS = [(method, backbone) for method in METHODS for backbone in BINARIZABLE]
# Float rounding may flip a sign that sits within ~1e-7 of its threshold (e.g. BTM's statistics are
# reduced in another order on the engine's channels-last data): allowed, within these bounds.
MAX_LEVELS = 1
MAX_FRACTION = 1e-3


def exact_student(method: str, backbone: str, seed: int = 0) -> nn.Module:
    """The backbone's tiny configuration binarized with ``method``, latent weights +-2^-7 (so torch's
    float sums of binary products are exact, as the engine's integer ones are) and small random
    biases, thresholds and output parameters, as after training."""
    torch.manual_seed(seed)
    spec = get_backbone(backbone)
    model = binarize(spec.build(2, spec.tiny_depth), method)
    with torch.no_grad():
        for layer in binary_layers(model).values():
            layer.weight.copy_(2.0**-7 * sign(layer.weight))
            layer.reset_method_parameters()
            for p in [layer.bias, *layer.input_quantizer.parameters(), *layer.output.parameters()]:
                p.add_(0.02 * torch.randn_like(p))
    return model.eval()


def levels(a: Tensor, b: Tensor) -> np.ndarray:
    return np.abs(to_uint8(a).astype(np.int16) - to_uint8(b).astype(np.int16))


def check_engine_matches_torch(model: nn.Module) -> None:
    x = torch.rand(1, 3, 16, 24)
    diff = levels(make_runner(model, "bitwise")(x), make_runner(model, "torch")(x))
    assert diff.max() <= MAX_LEVELS and (diff > 0).mean() <= MAX_FRACTION


def check_packed_round_trip(model: nn.Module, fresh: nn.Module) -> None:
    """pack_model -> install_packed into a fresh twin: the engine takes the stored bits as they are."""
    installed = install_packed(fresh, pack_model(model, float_dtype="float32"))
    layers = binary_layers(installed)
    assert layers and all(isinstance(layer.weight_quantizer, FrozenBases) for layer in layers.values())
    for name, layer in layers.items():
        original = PackedLayer.from_layer(binary_layers(model)[name])
        assert np.array_equal(PackedLayer.from_layer(layer).bits, original.bits), name
    x = torch.rand(1, 3, 16, 16)
    for backend in ("torch", "bitwise"):
        assert torch.equal(make_runner(installed, backend)(x), make_runner(model, backend)(x)), backend


def check_gradients_reach_latent_weights_and_method_parameters(model: nn.Module) -> None:
    model.train()
    out = model(torch.rand(2, 3, 16, 16))
    F.l1_loss(out, torch.rand_like(out)).backward()
    for name, layer in binary_layers(model).items():
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0, name
    method_params = [p for layer in binary_layers(model).values() for p in layer.parameters() if p is not layer.weight and p is not layer.bias]
    assert all(p.grad is not None for p in method_params)


@pytest.mark.parametrize("method, backbone", PAIRS)
def test_the_engine_runs_every_method_on_every_backbone_as_torch_does(method, backbone):
    check_engine_matches_torch(exact_student(method, backbone))


@pytest.mark.parametrize("method, backbone", PAIRS)
def test_packed_weights_reach_the_engine_without_a_round_trip(method, backbone):
    check_packed_round_trip(exact_student(method, backbone), exact_student(method, backbone, seed=1))


@pytest.mark.parametrize("method, backbone", PAIRS)
def test_every_method_trains_on_every_backbone(method, backbone):
    check_gradients_reach_latent_weights_and_method_parameters(exact_student(method, backbone))


@pytest.mark.parametrize("name", [n for n, s in MODELS.items() if s.binary])
def test_every_binarized_public_model_runs_on_the_engine(name):
    model = create_model(name, 2, depth=MODELS[name].backbone.tiny_depth)
    runner, used, notice = select_runner(model, "bitwise")
    assert used == "bitwise" and notice == ""
    assert runner(torch.rand(1, 3, 8, 8)).shape == (1, 3, 16, 16)


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_every_backbone_meets_the_contract(backbone):
    spec = get_backbone(backbone)
    model = spec.build(2, spec.tiny_depth)
    assert isinstance(model, Backbone) and model.scale == 2
    modules = dict(model.named_modules())
    assert all(isinstance(modules[n], (nn.Conv2d, nn.Linear)) for n in model.binary_layer_names())
    assert all(n in modules for n in model.activations_before_binary())
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert model(x).shape == (1, 3, 32, 32)
        if model.feature_blocks():
            assert model.forward_distilled(x).dim() == 4
    if spec.has_weights:
        assert spec.teacher in MODELS and not MODELS[spec.teacher].binary and MODELS[spec.teacher].arch == backbone
        assert set(spec.recipe) <= set(TrainConfig.__dataclass_fields__)
        assert len(model.binary_layer_names()) > 0 and len(model.feature_blocks()) > 0


# ---------------------------------------------------------------------------------------------
# A 9th method: its own class and one registration line (here a monkeypatched one)
# ---------------------------------------------------------------------------------------------


class LearnedScaleSignToy(WeightQuantizer):
    """Toy weights: W_b = gamma_c sign(W), gamma a learned per-output-channel scale (init mean |W_c|)."""

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(out_channels))

    def reset_from_weight(self, w: Tensor) -> None:
        with torch.no_grad():
            self.gamma.copy_(w.abs().flatten(1).mean(1))

    def forward(self, w: Tensor) -> Tensor:
        return self.gamma.view(-1, *([1] * (w.dim() - 1))) * sign_clipped_ste(w)

    def bases(self, w: Tensor) -> list[tuple[Tensor, Tensor]]:
        return [(sign(w), self.gamma.detach().clone())]


class ToyMethod(WithShortcut, BinarizationMethod):
    name = "toy"

    def input_quantizer(self, in_channels: int, channel_dim: int) -> nn.Module:
        return SignInput("ste")

    def weight_quantizer(self, out_channels: int) -> WeightQuantizer:
        return LearnedScaleSignToy(out_channels)


@pytest.fixture
def toy_method(monkeypatch):
    monkeypatch.setitem(METHODS, ToyMethod.name, ToyMethod)
    return ToyMethod.name


@pytest.mark.parametrize("backbone", BINARIZABLE)
def test_a_ninth_method_registered_in_one_line_is_checked_like_the_others(toy_method, backbone):
    check_engine_matches_torch(exact_student(toy_method, backbone))
    check_packed_round_trip(exact_student(toy_method, backbone), exact_student(toy_method, backbone, seed=1))
    check_gradients_reach_latent_weights_and_method_parameters(exact_student(toy_method, backbone))


class UndeclaredSign(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return sign(x)


class ThreeBases(LearnedScaleSignToy):
    num_bases = 3

    def bases(self, w: Tensor) -> list[tuple[Tensor, Tensor]]:
        return super().bases(w) * 3


def test_the_engine_refuses_what_it_cannot_run_and_says_why(toy_method, monkeypatch):
    model = exact_student(toy_method, "srresnet")
    monkeypatch.setattr(model.body[0].conv1, "input_quantizer", UndeclaredSign())
    with pytest.raises(TypeError, match="cannot run the input quantizer UndeclaredSign: it declares no engine_spec"):
        make_runner(model, "bitwise")
    runner, used, notice = select_runner(model, "bitwise")
    assert used == "torch" and "declares no engine_spec" in notice and "ran with torch instead" in notice
    model = exact_student(toy_method, "srresnet")
    model.body[1].conv2.weight_quantizer = ThreeBases(64)
    with pytest.raises(TypeError, match="sums 1 to 2 weight bases; ThreeBases has 3"):
        make_runner(model, "bitwise")


def test_a_subclass_of_a_known_part_runs_on_the_engine():
    class MyRSign(type(exact_student("reactnet", "srresnet").body[0].conv1.input_quantizer)):
        pass

    model = exact_student("reactnet", "srresnet")
    old = model.body[0].conv1.input_quantizer
    new = MyRSign(64, 1)
    new.load_state_dict(old.state_dict())
    model.body[0].conv1.input_quantizer = new
    check_engine_matches_torch(model)


# ---------------------------------------------------------------------------------------------
# A 3rd backbone: its own module and spec, one model line
# ---------------------------------------------------------------------------------------------


class TinyNet(nn.Module):
    """Head conv, two residual convs, pixel-shuffle tail: the smallest network meeting the contract."""

    def __init__(self, scale: int = 2, depth: int = 2, feat: int = 16) -> None:
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(3, feat, 3, padding=1)
        self.blocks = nn.ModuleList(nn.Conv2d(feat, feat, 3, padding=1) for _ in range(depth))
        self.tail = nn.Sequential(nn.Conv2d(feat, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))
        self.receptive_radius = depth + 2

    def forward_distilled(self, x: Tensor) -> Tensor:
        x = self.head(x)
        for block in self.blocks:
            x = x + block(x) if not getattr(block, "adds_input", False) else block(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self.tail(self.forward_distilled(x))

    def binary_layer_names(self) -> list[str]:
        return [f"blocks.{i}" for i in range(len(self.blocks))]

    def activations_before_binary(self) -> list[str]:
        return []

    def feature_blocks(self) -> list[nn.Module]:
        return list(self.blocks)


@pytest.fixture
def tiny_backbone(monkeypatch):
    spec = BackboneSpec(name="tinynet", build=lambda scale, depth=0: TinyNet(scale, depth or 3), teacher="tinynet_fp",
                        tiny_depth=1, recipe=dict(batch=4, lr_patch=24, steps=1000, schedule="cosine"))
    monkeypatch.setitem(BACKBONES, spec.name, spec)
    monkeypatch.setitem(MODELS, "tinynet_fp", ModelSpec("tinynet_fp", "tinynet", None, "TinyNet", "test"))
    monkeypatch.setitem(MODELS, "tinynet_frb", ModelSpec("tinynet_frb", "tinynet", "frb", "FRB TinyNet", "test"))
    return spec


def test_a_third_backbone_plugs_in_through_its_spec(tiny_backbone):
    model = create_model("tinynet_frb", 2)
    assert len(binary_layers(model)) == 3 and model.spec.teacher == "tinynet_fp"
    assert preset("tinynet_frb", 2)["batch"] == 4 and preset("tinynet_frb", 2)["dbt"] is True
    assert tiling_context(model).exact and tiling_context(model).pad == 5
    runner, used, _ = select_runner(model.eval(), "bitwise")
    assert used == "bitwise"
    for method in METHODS:
        check_engine_matches_torch(exact_student(method, "tinynet"))
