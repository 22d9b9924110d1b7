"""``python -m frb bench``: the bitwise engine against torch fp32 on this machine.

Every figure is the median of ``--repeats`` timed calls after one untimed call. Each torch
baseline is timed in NCHW and in channels_last and the faster one is used, so speedups are
against the best torch layout. Models carry random weights (with small random biases, RSign
thresholds and RPReLU parameters, as a trained model has); speed does not depend on values.

Speedups: ``layer`` (one fused single-base 64->64 3x3 binary conv: scale, bias, RPReLU,
shortcut, block identity and the next layer's bits) and ``frb_layer`` (the same with FRB's two
bases) against one fp32 conv2d of that shape; ``body`` (the 32 single-base binary convs of the
ReActNet body) and ``frb_body`` (FRBC's two-base body) against the float SRResNet body;
``model_x2`` / ``model_x4`` (whole bitwise FRBC) against the full-precision SRResNet;
``fakequant_x4`` against the torch (fake-quantised) FRBC. Sizes are bytes of safetensors files.

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

TARGETS = {
    "layer_speedup": 8.0,
    "frb_layer_speedup": 4.5,
    "body_speedup": 8.0,
    "model_x2_speedup": 2.0,
    "model_x4_speedup": 1.5,
}
MAX_SIZE_RATIO = 0.25


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _torch_ms(module: nn.Module, x: torch.Tensor, repeats: int) -> dict[str, float]:
    """Median ms of ``module(x)`` in NCHW and in channels_last (the module is converted)."""
    module.eval()
    with torch.inference_mode():
        nchw = _median_ms(lambda: module(x), repeats)
        module.to(memory_format=torch.channels_last)
        xcl = x.contiguous(memory_format=torch.channels_last)
        cl = _median_ms(lambda: module(xcl), repeats)
        module.to(memory_format=torch.contiguous_format)
    return {"nchw": round(nchw, 3), "channels_last": round(cl, 3), "best": round(min(nchw, cl), 3)}


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


def _layer_times(size: int, repeats: int) -> dict[str, float]:
    """One fused binary body conv (ReActNet unit, then FRB's two bases) on (1, size, size, 64)."""
    out = {}
    for key, name in (("layer", "reactnet"), ("frb_layer", "frbc")):
        block = random_model(name, 2, 0).body[0]
        l1, l2 = PackedLayer.from_layer(block.conv1), PackedLayer.from_layer(block.conv2)
        x = np.random.default_rng(0).standard_normal((1, size, size, 64), dtype=np.float32)
        bits = ops.input_bits(l2, x, 1)
        out[key] = round(_median_ms(lambda: ops.conv(l2, bits, x, skip=x, next_layer=l1), repeats), 3)
    return out


def _file_bytes(save: Callable[[str], None]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.safetensors")
        save(path)
        return os.path.getsize(path)


def benchmark(repeats: int = 5, size: int = 128) -> dict[str, object]:
    """All measurements as one JSON-ready dict (see the module docstring)."""
    machine = _machine()
    compile_s = warmup(["reactnet", "frbc"])
    ms: dict[str, object] = {"torch_conv": _torch_ms(nn.Conv2d(64, 64, 3, 1, 1), torch.randn(1, 64, size, size), repeats)}
    ms.update(_layer_times(size, repeats))

    feat = torch.randn(1, 64, size, size)
    ms["torch_body"] = _torch_ms(create_model("srresnet", 2).body, feat, repeats)
    feat_nhwc = np.ascontiguousarray(feat.permute(0, 2, 3, 1).numpy())
    for name in ("frbc", "reactnet"):
        body = BitwiseSRResNet(random_model(name, 2, 0))
        ms[f"body_{name}"] = round(_median_ms(lambda: body.body(feat_nhwc), repeats), 3)

    lr = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    exact: dict[str, object] = {}
    layouts = {}
    for scale in (2, 4):
        ms[f"srresnet_x{scale}"] = _torch_ms(create_model("srresnet", scale), lr, repeats)
        model = random_model("frbc", scale, 1)
        bitwise, fake = make_runner(model, "bitwise"), make_runner(model, "torch")
        ms[f"frbc_x{scale}"] = round(_median_ms(lambda: bitwise(lr), repeats), 3)
        reference = fake(lr)
        exact[f"x{scale}"] = _exact(bitwise(lr), reference)
        with torch.inference_mode():
            cl = model.to(memory_format=torch.channels_last)(lr.contiguous(memory_format=torch.channels_last))
        layouts[f"x{scale}"] = _exact(cl, reference)
        model.to(memory_format=torch.contiguous_format)
        if scale == 4:
            ms["fakequant_frbc_x4"] = _torch_ms(model, lr, repeats)
    exact["ok"] = all(e["max_level_diff"] <= 1 and e["fraction"] <= 1e-3 for e in exact.values())
    exact["torch_layouts"] = layouts

    frbc_x4 = random_model("frbc", 4, 1)
    sizes = {
        "packed_frbc_bytes": _file_bytes(lambda p: save_packed(frbc_x4, p)),
        "packed_frbc_lossless_bytes": _file_bytes(lambda p: save_packed(frbc_x4, p, float_dtype="float32")),
        "fp32_srresnet_bytes": _file_bytes(lambda p: save_file(create_model("srresnet", 4).state_dict(), p)),
    }
    sizes["packed_ratio"] = round(sizes["packed_frbc_bytes"] / sizes["fp32_srresnet_bytes"], 4)

    conv, body = ms["torch_conv"]["best"], ms["torch_body"]["best"]
    result: dict[str, object] = {
        "layer_speedup": round(conv / ms["layer"], 2),
        "frb_layer_speedup": round(conv / ms["frb_layer"], 2),
        "body_speedup": round(body / ms["body_reactnet"], 2),
        "frb_body_speedup": round(body / ms["body_frbc"], 2),
        "model_x2_speedup": round(ms["srresnet_x2"]["best"] / ms["frbc_x2"], 2),
        "model_x4_speedup": round(ms["srresnet_x4"]["best"] / ms["frbc_x4"], 2),
        "fakequant_x4_speedup": round(ms["fakequant_frbc_x4"]["best"] / ms["frbc_x4"], 2),
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
        },
        "machine": {**machine, "load_average_at_end": list(os.getloadavg())},
    }
    below = [k for k, target in TARGETS.items() if result[k] < target]
    if sizes["packed_ratio"] > MAX_SIZE_RATIO:
        below.append("packed_ratio")
    result["targets"] = {**TARGETS, "packed_ratio_max": MAX_SIZE_RATIO}
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
