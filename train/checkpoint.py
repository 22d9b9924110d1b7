"""Local training checkpoints (torch.save, atomic), RNG states, and the shipped exports.

``last.pt`` holds everything a resumed run needs to continue bit for bit: model, EMA and
optimizer states, the step, and per rank the python / numpy / torch (/ CUDA) RNG states and
the data sampler's generator. The learning-rate schedule is a pure function of the step, so the
step is its whole state. Exports are safetensors weights plus a JSON summary.
"""
from __future__ import annotations

import json
import os
import platform
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn


def _atomic_write(path: Path, write: Any) -> None:
    """``write(tmp_path)``, fsync, then rename over ``path``: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def copy_file(source: str | Path, target: str | Path) -> None:
    """Copy ``source`` over ``target`` atomically (a kill never leaves half a file there)."""
    _atomic_write(Path(target), lambda tmp: shutil.copyfile(source, tmp))


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    _atomic_write(Path(path), lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint this package wrote (it holds RNG states, hence weights_only=False)."""
    return torch.load(path, map_location="cpu", weights_only=False)


def rng_state() -> dict[str, Any]:
    """This process's python, numpy and torch (and CUDA) generator states."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def export_weights(model: nn.Module, path: str | Path, metadata: dict[str, str]) -> None:
    """The model's state dict as contiguous CPU tensors in a safetensors file."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _atomic_write(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def write_json(path: str | Path, obj: Any) -> None:
    _atomic_write(Path(path), lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2) + "\n"))


def hardware(device: torch.device, world_size: int) -> dict[str, Any]:
    """Device name, processes, threads and library versions, for the run summary."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
        cpuinfo = Path("/proc/cpuinfo")
        if cpuinfo.is_file():
            models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
            name = models[0] if models else name
    return {
        "device": str(device),
        "device_name": name,
        "world_size": world_size,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
