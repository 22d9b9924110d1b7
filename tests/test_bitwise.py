"""The bitwise engine: packed dot products are exact, models match the torch backend, threads."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from frb.binarize import get_method, sign
from frb.bitwise import kernels, ops
from frb.bitwise.runner import make_runner, warmup
from frb.bitwise.srresnet import BitwiseSRResNet
from frb.bitwise.modules import PackedBinaryConv2d, PackedBinaryLinear
from frb.bitwise.packing import PackedLayer, num_words, pack_bits, pack_weight_signs, unpack_bits
from frb.bitwise.runner import TorchRunner
from frb.imaging import load_image, make_lr, to_tensor, to_uint8
from frb.layers import BinaryConv2d, BinaryLinear, binary_layers
from frb.binarize import METHODS
from frb.models import MODELS, create_model

pytestmark = pytest.mark.engine  # run again with the kernels compiled for AVX2 (.ci/run)

BINARIZED = [name for name, spec in MODELS.items() if spec.binary]
# Float rounding differs (torch sums W_b = sum a_i B_i tap by tap; the engine scales exact integer
# dots), so a value within ~1e-7 of a sign threshold may flip: allowed, within these bounds.
MAX_LEVELS = 1
MAX_FRACTION = 1e-3


def _signs(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    return torch.where(torch.rand(shape, generator=gen) < 0.5, -1.0, 1.0)


def _raw_layer(bits: np.ndarray, kind: str, in_ch: int, out_ch: int, k: int) -> PackedLayer:
    """A layer whose epilogue returns the integer dot product itself (scale 1, no bias)."""
    nb = bits.shape[0]
    return PackedLayer(
        kind=kind, in_channels=in_ch, out_channels=out_ch, kernel_size=k, padding=k // 2, bits=bits,
        scales=np.ones((nb, out_ch), np.float32), bias=np.zeros(out_ch, np.float32), input_mode="sign",
        threshold=np.zeros(in_ch, np.float32), eps=0.0, output_mode="plain",
        prelu=np.stack([np.zeros(out_ch), np.ones(out_ch), np.zeros(out_ch)]).astype(np.float32),
    )


@pytest.mark.parametrize("channels", [1, 3, 60, 64, 65, 120, 130])
def test_pack_bits_round_trip_and_zero_tail(channels):
    neg = np.random.default_rng(channels).random((4, channels)) < 0.5
    words = pack_bits(neg)
    assert words.shape == (4, num_words(channels)) and words.dtype == np.uint64
    assert np.array_equal(unpack_bits(words, channels), neg)
    assert not unpack_bits(words, num_words(channels) * 64)[:, channels:].any()


@pytest.mark.parametrize("hw", [(1, 1), (2, 3), (37, 53)])
@pytest.mark.parametrize("in_ch", [3, 60, 65, 120])
@pytest.mark.parametrize("csa", [False, True])
def test_conv3x3_dot_products_equal_the_float_pm1_convolution(hw, in_ch, csa):
    gen = torch.Generator().manual_seed(in_ch * 100 + hw[0])
    x = _signs((2, in_ch, *hw), gen)
    weights = [_signs((70, in_ch, 3, 3), gen) for _ in range(2)]
    xa = np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy())
    for nb in (1, 2):
        raw = _raw_layer(np.stack([pack_weight_signs(w) for w in weights[:nb]]), "conv", in_ch, 70, 3)
        bits = ops.input_bits(raw, xa, 1)
        out = np.empty((2, *hw, 70), np.float32)
        kernel = kernels.conv_kernel(3, nb, False, False, False, True, False, csa)
        kernels.run(kernel, bits, raw.bits, raw.kbits, raw.scales, raw.bias, raw.prelu, ops._dummy(4), ops._dummy(4),
                    ops._dummy(1), out, ops._dummy(4, np.uint64))
        xp = F.pad(x, (1, 1, 1, 1), value=1.0)
        expected = sum(F.conv2d(xp, w) for w in weights[:nb]).permute(0, 2, 3, 1).numpy()
        assert np.array_equal(out, expected)


def _binary_conv(in_ch: int, out_ch: int, k: int, method: str = "bnn", bias: bool = True) -> BinaryConv2d:
    return BinaryConv2d(in_ch, out_ch, k, get_method(method), bias=bias)


@pytest.mark.parametrize("k", [1, 5])
def test_general_kxk_conv_equals_the_float_convolution(k):
    torch.manual_seed(k)
    layer = _binary_conv(65, 9, k, bias=False)  # a bias would add float rounding to the exact sums
    x = torch.randn(1, 65, 6, 7)
    out = PackedBinaryConv2d(layer)(x)
    with torch.no_grad():
        expected = layer(x)
    assert torch.equal(out, expected)


@pytest.mark.parametrize("tokens", [1, 33, 100])
@pytest.mark.parametrize("in_ch", [3, 60, 65, 120])
def test_gemm_dot_products_equal_the_float_pm1_matmul(tokens, in_ch):
    gen = torch.Generator().manual_seed(tokens + in_ch)
    x = _signs((tokens, in_ch), gen)
    weights = [_signs((180, in_ch), gen) for _ in range(2)]
    for nb in (1, 2):
        raw = _raw_layer(np.stack([pack_weight_signs(w) for w in weights[:nb]]), "linear", in_ch, 180, 1)
        out = ops.linear(raw, x.numpy())
        assert np.array_equal(out, sum(x @ w.T for w in weights[:nb]).numpy())


@pytest.mark.parametrize("channels", [3, 60, 64, 65, 128, 130])
@pytest.mark.parametrize("mode", ["sign", "threshold", "mean_centered"])
def test_input_bits_equal_the_signs_computed_in_numpy(channels, mode):
    """Whole 64-channel words are packed by vector compares, a partial last word bit by bit: both
    must give not (((x - sub) / div) >= 0) in float32, NaN, -0.0 and values on the threshold included."""
    rng = np.random.default_rng(channels)
    x = rng.standard_normal((2, 3, 5, channels), dtype=np.float32)
    threshold = rng.normal(0, 0.1, channels).astype(np.float32)
    x[0, 0, 0, :] = threshold if mode == "threshold" else 0.0
    x[0, 0, 1, :] = -0.0
    x[0, 1, 1, ::3] = np.nan
    x[1, 2, 4, ::2] = -np.inf
    layer = _raw_layer(np.zeros((1, 1, 1, 1), np.uint64), "conv", channels, 8, 3)
    layer.input_mode, layer.eps = mode, 1e-5
    if mode == "threshold":
        layer.threshold = threshold
    sub, div = ops.input_offsets(layer, x)
    with np.errstate(invalid="ignore"):
        negative = ~(((x - sub[:, None, None, :]) / div[:, None, None, :]) >= 0)
    bits = ops.input_bits(layer, x, 2)
    assert np.array_equal(bits[:, 2:-2, 2:-2], pack_bits(negative))
    assert not bits[:, :2].any() and not bits[:, -2:].any() and not bits[:, :, :2].any() and not bits[:, :, -2:].any()


@pytest.mark.parametrize("in_ch, out_ch", [(64, 64), (65, 130)])  # whole words; a partial last word
def test_fused_next_layer_bits_equal_packing_the_output(in_ch, out_ch):
    torch.manual_seed(3)
    l1 = PackedLayer.from_layer(_binary_conv(in_ch, out_ch, 3, "reactnet"))
    l2 = PackedLayer.from_layer(_binary_conv(out_ch, out_ch, 3, "reactnet"))
    l2.threshold = np.random.default_rng(0).normal(0, 0.05, out_ch).astype(np.float32)
    x = np.random.default_rng(1).standard_normal((2, 5, 7, in_ch), dtype=np.float32)
    skip = x if in_ch == out_ch else None
    out, fused = ops.conv(l1, ops.input_bits(l1, x, 1), x, skip=skip, next_layer=l2)
    assert np.array_equal(fused, ops.input_bits(l2, out, 1))


def _perturb(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random biases, RSign thresholds, (R)PReLU parameters and BAM scales, as after training."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in binary_layers(model).values():
            params = [layer.bias, *layer.input_quantizer.parameters(), *layer.output.parameters()]
            for p in params + list(layer.weight_quantizer.parameters()):
                p.add_(0.02 * torch.randn(p.shape, generator=gen))
    return model


@pytest.mark.parametrize("method", list(METHODS))
def test_packed_layers_equal_the_torch_layers(method):
    torch.manual_seed(4)
    conv = _perturb(BinaryConv2d(60, 60, 3, get_method(method)))
    x = torch.randn(2, 60, 9, 10)
    with torch.no_grad():
        assert torch.allclose(PackedBinaryConv2d(conv)(x), conv(x), atol=1e-5)
    for in_ch, out_ch in [(60, 180), (120, 60), (60, 60)]:
        lin = _perturb(BinaryLinear(in_ch, out_ch, get_method(method)))
        x = torch.randn(3, 64, in_ch)
        with torch.no_grad():
            assert torch.allclose(PackedBinaryLinear(lin)(x), lin(x), atol=1e-5)


@pytest.fixture(scope="module")
def lr_image(set5_dir) -> torch.Tensor:
    """A 48x48 LR crop (x2) of Set5 'baby'."""
    hr = load_image(set5_dir / "baby.png")[200:296, 200:296]
    return to_tensor(make_lr(hr, 2)[1])


def _level_diff(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    return np.abs(to_uint8(a).astype(np.int16) - to_uint8(b).astype(np.int16))


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = _perturb(create_model(name, 2).eval())
    if name == "dorefa":
        # A shortcut-free binary body is chaotic: any rounding difference near a sign flips it
        # and the flip spreads (torch NCHW vs torch channels_last differ in ~4% of the values for
        # a random DoReFa model). With W = 2^-7 sign(W) torch's conv sums are exact, as the
        # engine's are, so the comparison tests the engine rather than rounding noise.
        with torch.no_grad():
            for layer in binary_layers(model).values():
                layer.weight.copy_(2.0**-7 * sign(layer.weight))
    return model


@pytest.mark.parametrize("name", BINARIZED)
def test_bitwise_models_match_the_torch_backend_on_a_real_image(name, lr_image):
    model = _model(name)
    bitwise = make_runner(model, "bitwise")
    assert isinstance(bitwise, BitwiseSRResNet) == (MODELS[name].arch == "srresnet")
    diff = _level_diff(bitwise(lr_image), make_runner(model, "torch")(lr_image))
    assert diff.max() <= MAX_LEVELS
    assert (diff > 0).mean() <= MAX_FRACTION


def test_odd_sizes_and_batches_run_through_the_whole_model():
    model = _model("frbc")
    x = torch.rand(2, 3, 5, 7)
    out = make_runner(model, "bitwise")(x)
    assert out.shape == (2, 3, 10, 14)
    expected = make_runner(model, "torch")(x)
    assert torch.allclose(out, expected, atol=1e-4)


def test_four_threads_give_the_sequential_outputs(lr_image):
    runners = {name: make_runner(_model(name), "bitwise") for name in ("frbc", "btm")}
    inputs = [lr_image, lr_image.flip(-1), lr_image.flip(-2), lr_image.transpose(-1, -2)]
    jobs = [(name, i) for name in runners for i in range(len(inputs))]
    expected = {job: runners[job[0]](inputs[job[1]]) for job in jobs}
    results: dict[tuple[str, int], torch.Tensor] = {}
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for job in jobs[offset:] + jobs[:offset]:
                results[(offset, *job)] = runners[job[0]](inputs[job[1]])
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 4 * len(jobs)
    for (_, *job), out in results.items():
        assert torch.equal(out, expected[tuple(job)])


def test_make_runner_switch():
    fp = create_model("srresnet", 2)
    assert isinstance(make_runner(fp, "bitwise"), TorchRunner)
    assert isinstance(make_runner(_model("frbc"), "torch"), TorchRunner)
    with pytest.raises(ValueError, match="backend"):
        make_runner(fp, "cuda")


def test_warmup_compiles_and_reports_seconds():
    assert warmup(["frbc", "srresnet"]) >= 0.0


def test_cache_dir_falls_back_to_a_user_cache_when_the_package_is_read_only(monkeypatch, tmp_path):
    import os
    from pathlib import Path

    from frb.bitwise import config

    real_access = os.access
    monkeypatch.setenv("NUMBA_CACHE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(
        config.os, "access", lambda p, mode: not Path(p).is_relative_to(config.PACKAGE_DIR) and real_access(p, mode)
    )
    assert config._cache_dir() == str(tmp_path / "frb-sr" / "numba")
    assert (tmp_path / "frb-sr" / "numba").is_dir()


def test_popcount_strategy_follows_the_cpu_and_the_override(monkeypatch):
    import platform

    from frb.bitwise import config

    monkeypatch.setenv("FRB_POPCOUNT", "")
    assert config._popcount({"avx512vpopcntdq": True}) == "native"
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert config._popcount({"avx2": True}) == "csa"
    monkeypatch.setenv("FRB_POPCOUNT", "csa")
    assert config._popcount({"avx512vpopcntdq": True}) == "csa"
    monkeypatch.setenv("FRB_POPCOUNT", "fast")
    with pytest.raises(ValueError, match="FRB_POPCOUNT"):
        config._popcount({})


def test_launches_are_serialised_under_a_thread_unsafe_layer(monkeypatch):
    import time

    monkeypatch.setattr(kernels, "_serialise", True)
    monkeypatch.setattr(kernels.numba, "threading_layer", lambda: "workqueue")
    active, peak = [0], [0]

    def fake_kernel() -> None:
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        time.sleep(0.01)
        active[0] -= 1

    threads = [threading.Thread(target=kernels.run, args=(fake_kernel,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 1 and kernels._serialise


def test_frb_isa_avx2_compiles_without_avx512_and_gives_the_same_bits(tmp_path):
    # A fresh process (the target is fixed when the engine is imported) with an empty numba cache:
    # kernels compiled for an AVX2-only CPU use no 512-bit registers, take the carry-save popcount,
    # and give the host build's integer dot products bit for bit.
    import os
    import subprocess
    import sys

    script = (
        "import json, numba, numpy as np, torch\n"
        "from frb.bitwise import SETTINGS, kernels as K, ops\n"
        "from frb.bitwise.packing import PackedLayer, pack_weight_signs\n"
        "from tests.test_bitwise import _raw_layer, _signs\n"
        "gen = torch.Generator().manual_seed(7)\n"
        "x, w = _signs((2, 65, 9, 11), gen), _signs((70, 65, 3, 3), gen)\n"
        "raw = _raw_layer(pack_weight_signs(w)[None], 'conv', 65, 70, 3)\n"
        "bits = ops.input_bits(raw, np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy()), 1)\n"
        "out = np.empty((2, 9, 11, 70), np.float32)\n"
        "kernel = K.conv_kernel(3, 1, False, False, False, True, False, SETTINGS.popcount == 'csa')\n"
        "K.run(kernel, bits, raw.bits, raw.kbits, raw.scales, raw.bias, raw.prelu, ops._dummy(4), ops._dummy(4),\n"
        "      ops._dummy(1), out, ops._dummy(4, np.uint64))\n"
        "asm = [f.inspect_asm(s) for f in (kernel,) for s in f.signatures]\n"
        "print(json.dumps({'isa': SETTINGS.isa, 'popcount': SETTINGS.popcount, 'kernels': len(asm),\n"
        "                  'zmm': sum(a.count('zmm') for a in asm), 'dot': out.astype(int).ravel().tolist()}))\n"
    )
    root = Path(__file__).resolve().parents[1]
    runs = {}
    for isa in ("host", "avx2"):
        env = {**os.environ, "FRB_ISA": isa, "NUMBA_CACHE_DIR": str(tmp_path / isa), "PYTHONPATH": str(root)}
        env.pop("NUMBA_CPU_NAME", None), env.pop("NUMBA_CPU_FEATURES", None)
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        runs[isa] = json.loads(out.stdout.strip().splitlines()[-1])
    avx2 = runs["avx2"]
    assert avx2["isa"] == "avx2" and avx2["popcount"] == "csa" and avx2["kernels"] > 0 and avx2["zmm"] == 0
    assert avx2["dot"] == runs["host"]["dot"]
    from frb.bitwise import SETTINGS

    if SETTINGS.avx512 and SETTINGS.isa == "host":  # the inspection does see 512-bit code where there is some
        assert runs["host"]["zmm"] > 0
