"""frb.ledger.ActiveClock: the ledger's wall time leaves out time the process was stopped."""
from __future__ import annotations

from frb import ledger


def fake_clock(monkeypatch, cpu_bound: bool, intervals: list[tuple[float, float]]) -> ledger.ActiveClock:
    """An ActiveClock fed ``(wall seconds, process CPU seconds)`` per tick."""
    wall, cpu = [0.0], [0.0]
    monkeypatch.setattr(ledger.time, "time", lambda: wall[0])
    monkeypatch.setattr(ledger.time, "process_time", lambda: cpu[0])
    clock = ledger.ActiveClock(cpu_bound)
    for dw, dc in intervals:
        wall[0] += dw
        cpu[0] += dc
        clock.tick()
    return clock


def test_a_stopped_process_does_not_count(monkeypatch):
    # two busy threads for 10 s, stopped for 30 min (kill -STOP) within one step, busy again 5 s
    clock = fake_clock(monkeypatch, True, [(10.0, 20.0), (1800.0 + 0.5, 1.0), (5.0, 10.0)])
    assert clock.seconds == 10.0 + 1.0 + 5.0  # the step around the pause counts its CPU time (at most 2x)


def test_one_thread_waiting_counts_its_cpu_time_only(monkeypatch):
    assert fake_clock(monkeypatch, True, [(4.0, 3.0)]).seconds == 3.0


def test_on_a_gpu_wall_time_counts(monkeypatch):
    # the process CPU time does not show the GPU's work
    assert fake_clock(monkeypatch, False, [(60.0, 2.0)]).seconds == 60.0
