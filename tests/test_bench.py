"""frb.bench's peers and targets (values and names; timings are reported, never asserted)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from frb import bench
from frb.models import create_model


def test_the_onnxruntime_peer_computes_the_same_model():
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = create_model("srresnet", 2, depth=1).eval()
    x = torch.rand(1, 3, 20, 24)
    run = bench.onnxruntime_runner(model, x)
    with torch.inference_mode():
        expected = model(x).numpy()
    assert run(x.numpy()).shape == expected.shape
    assert np.abs(run(x.numpy()) - expected).max() < 1e-4


def test_peer_times_name_every_peer_of_the_full_precision_model():
    times = bench.peer_times(2, torch.rand(1, 3, 16, 16), repeats=1)
    assert set(times) == {"torch_fp32", "torch_bf16_autocast", "onnxruntime"}
    assert all(v is None or v > 0 for v in times.values()) and times["torch_fp32"] > 0


def test_targets_follow_the_isa_the_kernels_were_compiled_for(monkeypatch):
    for vpopcntdq, isa in ((True, "avx512_vpopcntdq"), (False, "avx2")):
        monkeypatch.setattr(bench, "SETTINGS", dataclasses.replace(bench.SETTINGS, vpopcntdq=vpopcntdq))
        assert bench.target_isa() == isa
    assert bench.TARGETS["avx2"]["layer_speedup"] < bench.TARGETS["avx512_vpopcntdq"]["layer_speedup"]


def test_paired_speedup_is_the_median_of_ratios_of_alternated_calls(monkeypatch):
    calls = []
    durations = iter([2.0, 1.0, 0.5, 4.0, 3.0, 1.0])  # timed calls in the order they are made
    monkeypatch.setattr(bench, "_seconds", lambda fn: (fn(), next(durations))[1])
    result = bench.paired(lambda: calls.append("b"), lambda: calls.append("c"), repeats=3)
    # one untimed call each, then pairs with the order swapped every pair
    assert calls == ["b", "c", "b", "c", "c", "b", "b", "c"]
    # pairs (baseline, candidate): (2, 1), (4, 0.5), (3, 1) -> ratios 2, 8, 3
    assert result == {"baseline_ms": 3000.0, "ms": 1000.0, "speedup": 3.0}


def test_the_bound_times_the_head_and_tail_of_the_same_computation():
    """model_x*_bound times the bitwise model without its body: head and tail on the body's output
    must give the whole model's output."""
    from frb.bitwise.runner import make_runner

    torch.manual_seed(0)
    runner = make_runner(create_model("frbc", 2, depth=2).eval(), "bitwise")
    lr = torch.rand(1, 3, 12, 10)
    assert torch.equal(bench._float_part_call(runner, lr)(), runner(lr))
