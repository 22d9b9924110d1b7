"""The bitwise engine against torch on this machine (``python -m frb bench``).

Every time is the median of ``--repeats`` timed calls after one untimed call. Each torch
baseline is timed in NCHW and in channels_last and the faster one is used, so speedups are
against the best torch layout. A speed-up is measured in pairs: the baseline and the engine are
called alternately (the order swapped every pair) and the speed-up is the median of the
per-pair ratios, so that a machine whose speed drifts between calls (a shared VM) moves both
sides of each ratio alike; ``ms_median`` keeps the plain medians. Models carry random weights
(with small random biases, RSign thresholds and RPReLU parameters, as a trained model has); speed
does not depend on values.

Speedups: ``layer`` (one fused single-base 64->64 3x3 binary conv: scale, bias, RPReLU,
shortcut, block identity and the next layer's bits) and ``frb_layer`` (the same with FRB's two
bases) against one fp32 conv2d of that shape; ``body`` (the 32 single-base binary convs of the
ReActNet body) and ``frb_body`` (FRBC's two-base body) against the float SRResNet body;
``model_x2`` / ``model_x4`` (whole bitwise FRBC) against the full-precision SRResNet;
``fakequant_x4`` against the torch (fake-quantised) FRBC. ``model_x2_bound`` / ``model_x4_bound``:
the speed-up the whole FRBC would have if its binary body took no time (the full-precision
SRResNet against the FRBC's head and tail alone, which run in torch fp32): at x4 the tail's
upsampling convolutions at 2x and 4x the LR size cost about as much as the body, so this bound
caps ``model_x4_speedup`` whatever the kernels do. Sizes are bytes of safetensors files.

Peers of the whole model (``peers_x2`` / ``peers_x4``): what else a user would run the
full-precision SRResNet with on a CPU: torch fp32, torch bf16 autocast (fast only where the CPU
has AVX-512-BF16 / AMX) and ONNX Runtime's CPU execution provider (a ``torch.onnx`` export), with
``model_x*_speedup_vs_fastest`` against the fastest of them. ``app_all_models_s``: the app's
comparison of all twelve models on a 256x256 LR input at x4, models warm (the first call, which
builds and packs them, is ``app_all_models_first_call_s``). Targets depend on the ISA the kernels
were compiled for (``targets_for``); ``--isa avx2`` also holds torch to AVX2 (``cpu_flags``), so
both sides run what an AVX2-only CPU has (ONNX Runtime picks its kernels at run time: host ISA).

``exact`` compares the uint8 images of both FRBC backends. The engine's float rounding differs
from torch's, and a value within ~1e-7 of a sign threshold can flip; a flip early in the body
spreads and can move a small patch by more than one level. ``torch_layouts`` measures the same
effect within torch alone (the torch model in NCHW vs channels_last) as the yardstick.
"""
from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from frb.bitwise import SETTINGS, ops
from frb.bitwise.export import save_packed
from frb.bitwise.runner import make_runner, warmup
from frb.bitwise.srresnet import BitwiseSRResNet
from frb.bitwise.packing import PackedLayer
from frb.imaging import to_uint8
from frb.layers import binary_layers
from frb.models import create_model

#: Targets per engine ISA: CPUs with a vector popcount (AVX-512 VPOPCNTDQ) and those without (AVX2,
#: where LLVM emulates it with byte shuffles). Speed-ups against torch fp32 on the same ISA.
TARGETS = {
    "avx512_vpopcntdq": {"layer_speedup": 9.0, "frb_layer_speedup": 4.5, "body_speedup": 8.0,
                         "model_x2_speedup": 2.0, "model_x4_speedup": 1.8},
    "avx2": {"layer_speedup": 6.0, "frb_layer_speedup": 3.5, "body_speedup": 6.0, "model_x4_speedup": 1.8},
}
MAX_SIZE_RATIO = 0.25
#: The app's comparison timed by ``app_all_models_s``: every model, one LR input of this side, x4.
APP_LR_SIDE = 256


def target_isa() -> str:
    """The TARGETS row that applies to the kernels as compiled (the host or FRB_ISA's target)."""
    return "avx512_vpopcntdq" if SETTINGS.vpopcntdq else "avx2"


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def paired(baseline: Callable[[], object], candidate: Callable[[], object], repeats: int) -> dict[str, float]:
    """``baseline`` and ``candidate`` called alternately, ``repeats`` pairs after one untimed call each
    (the order swapped every pair): their median ms and ``speedup``, the median of the per-pair
    ratios baseline / candidate."""
    baseline()
    candidate()
    base, cand = [], []
    for i in range(repeats):
        if i % 2:
            cand.append(_seconds(candidate))
            base.append(_seconds(baseline))
        else:
            base.append(_seconds(baseline))
            cand.append(_seconds(candidate))
    return {
        "baseline_ms": round(statistics.median(base) * 1e3, 3),
        "ms": round(statistics.median(cand) * 1e3, 3),
        "speedup": round(statistics.median(b / c for b, c in zip(base, cand)), 2),
    }


def _torch_call(module: nn.Module, x: torch.Tensor, layout: str) -> Callable[[], torch.Tensor]:
    """``module(x)`` under inference mode in ``layout`` ("nchw" or "channels_last"; module converted)."""
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    module.eval().to(memory_format=fmt)
    xl = x.contiguous(memory_format=fmt)

    def call() -> torch.Tensor:
        with torch.inference_mode():
            return module(xl)

    return call


def _torch_ms(module: nn.Module, x: torch.Tensor, repeats: int) -> dict[str, float | str]:
    """Median ms of ``module(x)`` in NCHW and in channels_last, and the faster ``layout`` (the module
    is left converted to channels_last)."""
    nchw = _median_ms(_torch_call(module, x, "nchw"), repeats)
    cl = _median_ms(_torch_call(module, x, "channels_last"), repeats)
    layout = "nchw" if nchw <= cl else "channels_last"
    return {"nchw": round(nchw, 3), "channels_last": round(cl, 3), "best": round(min(nchw, cl), 3), "layout": layout}


def _best_torch(module: nn.Module, x: torch.Tensor, repeats: int) -> tuple[dict[str, float | str], Callable[[], torch.Tensor]]:
    """``_torch_ms`` and a call of the module in its faster layout (the baseline of a paired speed-up)."""
    times = _torch_ms(module, x, repeats)
    return times, _torch_call(module, x, str(times["layout"]))


def _bf16_ms(module: nn.Module, x: torch.Tensor, repeats: int) -> float:
    """Median ms of ``module(x)`` under CPU bf16 autocast, in the faster layout."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return float(_torch_ms(module, x, repeats)["best"])


def onnxruntime_runner(module: nn.Module, x: torch.Tensor) -> Callable[[np.ndarray], np.ndarray] | None:
    """``module`` exported with ``torch.onnx`` (for inputs shaped like ``x``) in an ONNX Runtime CPU
    session with as many intra-op threads as torch uses: ``run(lr) -> sr`` on float32 arrays; None
    when onnxruntime is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter announces its deprecation
        path = os.path.join(tmp, "model.onnx")
        torch.onnx.export(module.eval(), (x,), path, dynamo=False, input_names=["lr"], output_names=["sr"],
                          opset_version=17)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return lambda lr: session.run(None, {"lr": lr})[0]


def native_bf16() -> bool:
    """Whether torch's CPU kernels have native bf16 here (AVX-512-BF16 or AMX, within ONEDNN_MAX_CPU_ISA)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def peer_times(scale: int, lr: torch.Tensor, repeats: int, fp32_ms: float | None = None) -> dict[str, float | None]:
    """How else a user would run the full-precision SRResNet on this CPU: torch fp32 (``fp32_ms`` where
    the caller timed it already) and bf16 autocast (each in its faster layout) and ONNX Runtime.
    None where a peer is not there: onnxruntime not installed, or no native bf16 (emulated bf16 is
    tens of times slower than fp32: nobody runs it)."""
    model = create_model("srresnet", scale).eval()
    ort, feed = onnxruntime_runner(model, lr), lr.numpy()
    return {
        "torch_fp32": fp32_ms if fp32_ms is not None else float(_torch_ms(model, lr, repeats)["best"]),
        "torch_bf16_autocast": round(_bf16_ms(model, lr, repeats), 3) if native_bf16() else None,
        "onnxruntime": round(_median_ms(lambda: ort(feed), repeats), 3) if ort is not None else None,
    }


def app_all_models_seconds(scale: int = 4, side: int = APP_LR_SIDE) -> dict[str, float]:
    """Seconds for the app's comparison (``frb.compare.compare``, LR mode, bitwise backend) of every
    model on one ``side x side`` LR input: the first call (models built and packed) and a second one
    (models warm, as in the app after its start-up warm-up)."""
    from frb.compare import MODE_LR, compare
    from frb.models import MODELS

    image = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    times = []
    for _ in range(2):
        start = time.perf_counter()
        compare(image, list(MODELS), MODE_LR, scale, "bitwise")
        times.append(time.perf_counter() - start)
    return {"first": round(times[0], 2), "warm": round(times[1], 2)}


def random_model(name: str, scale: int, seed: int) -> nn.Module:
    """create_model with small random biases and method parameters on its binary layers."""
    torch.manual_seed(seed)
    model = create_model(name, scale).eval()
    with torch.no_grad():
        for layer in binary_layers(model).values():
            for p in [layer.bias, *layer.input_quantizer.parameters(), *layer.output.parameters()]:
                p.add_(0.02 * torch.randn_like(p))
    return model


def _exact(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    diff = np.abs(to_uint8(a).astype(np.int16) - to_uint8(b).astype(np.int16))
    return {
        "max_level_diff": int(diff.max()),
        "values_differing": int((diff > 0).sum()),
        "fraction": float((diff > 0).mean()),
    }


def _machine() -> dict[str, object]:
    model_name = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model_name = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model_name,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numba": numba.__version__,
        "torch_threads": torch.get_num_threads(),
        "numba_threads": numba.get_num_threads(),
        "load_average_at_start": list(os.getloadavg()),
    }


def _layer_calls(size: int) -> dict[str, Callable[[], object]]:
    """One fused binary body conv (ReActNet unit, then FRB's two bases) on (1, size, size, 64)."""
    calls = {}
    x = np.random.default_rng(0).standard_normal((1, size, size, 64), dtype=np.float32)
    for key, name in (("layer", "reactnet"), ("frb_layer", "frbc")):
        block = random_model(name, 2, 0).body[0]
        l1, l2 = PackedLayer.from_layer(block.conv1), PackedLayer.from_layer(block.conv2)
        bits = ops.input_bits(l2, x, 1)
        calls[key] = lambda l1=l1, l2=l2, bits=bits: ops.conv(l2, bits, x, skip=x, next_layer=l1)
    return calls


def _float_part_call(runner: BitwiseSRResNet, lr: torch.Tensor) -> Callable[[], torch.Tensor]:
    """The bitwise FRBC's head and tail alone (torch fp32), on the body output of ``lr``."""
    with torch.inference_mode():
        head = runner.float_part.forward_head(lr)
    body = torch.from_numpy(runner.body(np.ascontiguousarray(head.permute(0, 2, 3, 1).numpy()))).permute(0, 3, 1, 2)

    def call() -> torch.Tensor:
        with torch.inference_mode():
            runner.float_part.forward_head(lr)
            return runner.float_part.forward_tail(body, lr)

    return call


def _file_bytes(save: Callable[[str], None]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.safetensors")
        save(path)
        return os.path.getsize(path)


def benchmark(repeats: int = 7, size: int = 128, app: bool = True, threads: int | None = None) -> dict[str, object]:
    """All measurements as one JSON-ready dict (see the module docstring); ``app`` adds ``app_all_models_s``;
    ``threads`` sets the threads of torch and of the kernels (ONNX Runtime follows torch's)."""
    if threads is not None:
        torch.set_num_threads(threads)
        numba.set_num_threads(threads)
    machine = _machine()
    compile_s = warmup(["reactnet", "frbc"])
    speedups: dict[str, float] = {}
    ms: dict[str, object] = {}
    conv_times, conv = _best_torch(nn.Conv2d(64, 64, 3, 1, 1), torch.randn(1, 64, size, size), repeats)
    ms["torch_conv"] = conv_times
    for key, call in _layer_calls(size).items():
        pair = paired(conv, call, repeats)
        ms[key], speedups[f"{key}_speedup"] = pair["ms"], pair["speedup"]

    feat = torch.randn(1, 64, size, size)
    body_times, torch_body = _best_torch(create_model("srresnet", 2).body, feat, repeats)
    ms["torch_body"] = body_times
    feat_nhwc = np.ascontiguousarray(feat.permute(0, 2, 3, 1).numpy())
    for name, key in (("reactnet", "body_speedup"), ("frbc", "frb_body_speedup")):
        body = BitwiseSRResNet(random_model(name, 2, 0))
        pair = paired(torch_body, lambda body=body: body.body(feat_nhwc), repeats)
        ms[f"body_{name}"], speedups[key] = pair["ms"], pair["speedup"]

    lr = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    exact: dict[str, object] = {}
    layouts = {}
    peers: dict[int, dict[str, float | None]] = {}
    for scale in (2, 4):
        teacher_times, teacher_call = _best_torch(create_model("srresnet", scale), lr, repeats)
        peers[scale] = peer_times(scale, lr, repeats, fp32_ms=float(teacher_times["best"]))
        model = random_model("frbc", scale, 1)
        bitwise, fake = make_runner(model, "bitwise"), make_runner(model, "torch")
        pair = paired(teacher_call, lambda: bitwise(lr), repeats)
        ms[f"srresnet_x{scale}_paired"], ms[f"frbc_x{scale}"] = pair["baseline_ms"], pair["ms"]
        speedups[f"model_x{scale}_speedup"] = pair["speedup"]
        bound = paired(teacher_call, _float_part_call(bitwise, lr), repeats)
        ms[f"frbc_x{scale}_head_tail"], speedups[f"model_x{scale}_bound"] = bound["ms"], bound["speedup"]
        ms[f"srresnet_x{scale}"] = teacher_times
        reference = fake(lr)
        exact[f"x{scale}"] = _exact(bitwise(lr), reference)
        with torch.inference_mode():
            cl = model.to(memory_format=torch.channels_last)(lr.contiguous(memory_format=torch.channels_last))
        layouts[f"x{scale}"] = _exact(cl, reference)
        model.to(memory_format=torch.contiguous_format)
        if scale == 4:
            fakequant_times, fakequant = _best_torch(model, lr, repeats)
            ms["fakequant_frbc_x4"] = fakequant_times
            speedups["fakequant_x4_speedup"] = paired(fakequant, lambda: bitwise(lr), repeats)["speedup"]
    exact["ok"] = all(e["max_level_diff"] <= 1 and e["fraction"] <= 1e-3 for e in exact.values())
    exact["torch_layouts"] = layouts

    frbc_x4 = random_model("frbc", 4, 1)
    sizes = {
        "packed_frbc_bytes": _file_bytes(lambda p: save_packed(frbc_x4, p)),
        "packed_frbc_lossless_bytes": _file_bytes(lambda p: save_packed(frbc_x4, p, float_dtype="float32")),
        "fp32_srresnet_bytes": _file_bytes(lambda p: save_file(create_model("srresnet", 4).state_dict(), p)),
    }
    sizes["packed_ratio"] = round(sizes["packed_frbc_bytes"] / sizes["fp32_srresnet_bytes"], 4)

    fastest = {scale: min((v, k) for k, v in p.items() if v is not None) for scale, p in peers.items()}
    app_s = app_all_models_seconds() if app else None
    result: dict[str, object] = {
        **speedups,
        **{f"peers_x{scale}": peers[scale] for scale in peers},
        **{f"fastest_peer_x{scale}": fastest[scale][1] for scale in peers},
        **{f"model_x{scale}_speedup_vs_fastest": round(fastest[scale][0] / ms[f"frbc_x{scale}"], 2) for scale in peers},
        "app_all_models_s": app_s["warm"] if app_s else None,
        "app_all_models_first_call_s": app_s["first"] if app_s else None,
        "exact": exact,
        **sizes,
        "ms_median": ms,
        "lr_size": size,
        "repeats": repeats,
        "compile_or_cache_load_s": round(compile_s, 2),
        "cpu_flags": {
            "isa": SETTINGS.isa,  # what the kernels were compiled for: the host, or FRB_ISA's target
            "popcount": SETTINGS.popcount,
            "avx512": SETTINGS.avx512,
            "avx512_vpopcntdq": SETTINGS.vpopcntdq,
            "prefer_256_bit_disabled": SETTINGS.cpu_features.endswith("-prefer-256-bit"),
            "threading_layer": numba.threading_layer(),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "host"),
            "torch_native_bf16": native_bf16(),
        },
        "machine": {**machine, "load_average_at_end": list(os.getloadavg())},
    }
    targets = TARGETS[target_isa()]
    below = [k for k, target in targets.items() if result[k] < target]
    if sizes["packed_ratio"] > MAX_SIZE_RATIO:
        below.append("packed_ratio")
    result["targets"] = {**targets, "packed_ratio_max": MAX_SIZE_RATIO}
    result["targets_for"] = target_isa()
    result["below_target"] = below
    return result


def model_speedups(
    models: dict[str, nn.Module], scale: int, size: int = 96, repeats: int = 3
) -> dict[str, float]:
    """Whole-model speed-up of each binarized model's bitwise engine over its full-precision teacher in
    torch fp32 (best layout), on one ``size x size`` LR input on this machine: ``{name: teacher ms /
    bitwise ms}``. ``models`` maps public names to loaded models (e.g. the shipped weights); models the
    engine cannot run are left out."""
    from frb.models import get_spec

    lr = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    teacher_ms: dict[str, float] = {}
    out = {}
    for name, model in models.items():
        spec = get_spec(name)
        if not spec.binary:
            continue
        try:
            runner = make_runner(model, "bitwise")
        except (NotImplementedError, ValueError, TypeError):
            continue
        if spec.teacher not in teacher_ms:
            teacher_ms[spec.teacher] = _torch_ms(create_model(spec.teacher, scale), lr, repeats)["best"]
        out[name] = round(teacher_ms[spec.teacher] / _median_ms(lambda: runner(lr), repeats), 2)
    return out
