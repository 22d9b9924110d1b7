"""The compute ledger: what every model's weights received, run by run.

A ledger is a list of *segments*, one per training session of one run (a process that trained
from one checkpoint to the next stop): the run's name, when it started, the steps it went from
and to, the batch and the samples seen (steps * batch), its wall seconds while computing
(``ActiveClock``: time the process was stopped does not count) and process CPU seconds (all
threads; a 2-core machine busy for an hour gives about 2 CPU-hours), and the hardware.
A run that starts from other weights starts from *their* ledger, so the ledger of a shipped file
is the whole lineage of its weights (a binary student's starts where it left its teacher: the
teacher's own compute is in the teacher's ledger). ``ledger_total`` adds it up; the manifest and
the README show those totals.
"""
from __future__ import annotations

import datetime
import time
from typing import Any

HOUR = 3600.0


class ActiveClock:
    """Wall seconds a run spent computing, for its ledger.

    On the CPU each interval between ticks counts ``min(wall, process CPU)``: a running process with
    one or more busy threads accrues CPU time at least as fast as wall time, so this is its wall time,
    while a process that was stopped (``kill -STOP`` while someone benchmarks, a suspended machine)
    accrues none and the pause does not count. Elsewhere (a GPU, whose work the process CPU time does
    not show) plain wall time. Tick once per training step.
    """

    def __init__(self, cpu_bound: bool) -> None:
        self.cpu_bound = cpu_bound
        self.seconds = 0.0
        self._wall, self._cpu = time.time(), time.process_time()

    def tick(self) -> float:
        wall, cpu = time.time(), time.process_time()
        elapsed = wall - self._wall
        self.seconds += min(elapsed, cpu - self._cpu) if self.cpu_bound else elapsed
        self._wall, self._cpu = wall, cpu
        return self.seconds


def new_segment(run: str, step: int, batch: int, hardware: dict[str, Any]) -> dict[str, Any]:
    """A segment opening at ``step``; ``close_segment`` brings it up to date."""
    return {
        "run": run,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "steps_from": step, "steps_to": step, "batch": batch, "samples": 0,
        "seconds": 0.0, "cpu_seconds": 0.0,
        "device": hardware["device"].split(":")[0], "device_name": hardware["device_name"],
        "cpu_count": hardware["cpu_count"], "world_size": hardware["world_size"],
    }


def close_segment(segment: dict[str, Any], step: int, seconds: float, cpu_seconds: float) -> dict[str, Any]:
    """``segment`` up to ``step``, after ``seconds`` wall and ``cpu_seconds`` of process CPU time."""
    return {
        **segment, "steps_to": step, "samples": (step - segment["steps_from"]) * segment["batch"],
        "seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1),
    }


def segment_from_summary(training: dict[str, Any], run: str) -> dict[str, Any]:
    """One segment for a run recorded before ledgers existed (a manifest's ``training`` summary).

    Only wall time was recorded then: its CPU seconds are wall seconds * torch threads, and the
    segment says ``"estimated_cpu": true``.
    """
    hw = training.get("hardware") or {}
    steps = int(training.get("steps") or 0)
    batch = int((training.get("config") or {}).get("batch") or 0)
    wall = float(training.get("wall_time_s") or 0.0)
    return {
        "run": run, "started": None, "steps_from": 0, "steps_to": steps, "batch": batch, "samples": steps * batch,
        "seconds": round(wall, 1), "cpu_seconds": round(wall * int(hw.get("torch_threads") or 1), 1),
        "estimated_cpu": True, "device": str(hw.get("device", "cpu")).split(":")[0],
        "device_name": hw.get("device_name"), "cpu_count": hw.get("cpu_count"), "world_size": hw.get("world_size", 1),
    }


def ledger_total(ledger: list[dict[str, Any]]) -> dict[str, Any]:
    """Sums over the segments: runs, sessions, steps, samples, CPU wall-hours, CPU-hours, GPU-minutes."""
    cpu = [s for s in ledger if s["device"] == "cpu"]
    gpu = [s for s in ledger if s["device"] != "cpu"]
    return {
        "runs": len({s["run"] for s in ledger}),
        "sessions": len(ledger),
        "steps": sum(s["steps_to"] - s["steps_from"] for s in ledger),
        "samples": sum(s["samples"] for s in ledger),
        "cpu_wall_hours": round(sum(s["seconds"] for s in cpu) / HOUR, 3),
        "cpu_hours": round(sum(s["cpu_seconds"] for s in cpu) / HOUR, 3),
        "gpu_minutes": round(sum(s["seconds"] for s in gpu) / 60.0, 1),
    }


def describe(total: dict[str, Any]) -> str:
    """One line for tables: '12,400 steps (198,400 samples), 3.1 h on CPU (6.0 CPU-h), 4 runs'."""
    parts = [f"{total['steps']:,} steps ({total['samples']:,} samples)"]
    if total["cpu_wall_hours"]:
        parts.append(f"{total['cpu_wall_hours']:.1f} h on CPU ({total['cpu_hours']:.1f} CPU-h)")
    if total["gpu_minutes"]:
        parts.append(f"{total['gpu_minutes']:.0f} GPU-min")
    parts.append(f"{total['runs']} run{'s' if total['runs'] != 1 else ''}")
    return ", ".join(parts)
