"""The app's models: trained weights through ``frb.hub``, else a seeded random model with a notice.

``frb.hub`` finds verified weights (bundled ``assets/weights`` first, then the local Hugging Face
cache; the app runs offline, so nothing is downloaded). Models are built once per (name, scale)
and cached for the life of the process.
"""
from __future__ import annotations

import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from frb import hub
from frb.models import create_model, get_spec

SOURCE_LABELS = {"bundled": "bundled", "hub-cache": "Hub", "hub": "Hub", "none": "none"}


@dataclass(frozen=True)
class WeightsInfo:
    """Where the weights of one model come from: ``source`` is "bundled", "Hub" or "none"."""

    name: str
    scale: int
    source: str
    path: Path | None = None
    entry: dict = field(default_factory=dict)
    notices: tuple[str, ...] = ()

    @property
    def size_bytes(self) -> int | None:
        return self.path.stat().st_size if self.path is not None else None


def find_weights(name: str, scale: int, weights_dir: Path | None = None) -> WeightsInfo:
    """Locate and verify the weights of ``name`` at ``scale`` without loading them."""
    found = hub.resolve(name, scale, assets=weights_dir or hub.ASSETS_DIR)
    return WeightsInfo(name, scale, SOURCE_LABELS[found.source], found.path, found.entry, found.notices)


def _random_model(name: str, scale: int) -> nn.Module:
    """A randomly initialised model, the same in every process (seeded from its name and scale)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(zlib.crc32(f"{name}x{scale}".encode()))
        return create_model(name, scale)


def _build(name: str, scale: int) -> tuple[nn.Module, str]:
    if get_spec(name).arch == "bicubic":
        return create_model(name, scale), ""
    info = find_weights(name, scale)
    fallback = f"showing a randomly initialised {name} x{scale}"
    if info.path is None:
        why = "; ".join(info.notices) or f"no trained weights bundled for {name} x{scale}"
        return _random_model(name, scale), f"{why}: {fallback}"
    try:
        return hub.load_weights_file(info.path, name, scale), "; ".join(info.notices)
    except (ValueError, RuntimeError, OSError) as exc:
        return _random_model(name, scale), f"{info.path.name} could not be loaded ({exc}): {fallback}"


_lock = threading.Lock()
_cache: dict[tuple[str, int], tuple[nn.Module, str]] = {}


def load_model(name: str, scale: int) -> tuple[nn.Module | None, str]:
    """The model ``name`` at ``scale`` in eval mode, and a notice ("" when trained weights were loaded).

    Without usable trained weights the model is still returned, randomly initialised (so the demo
    shows the pipeline, runtime and backend), and the notice says so. Bicubic needs no weights.
    Returns ``(None, message)`` only for an unknown name or scale.
    """
    key = (name, scale)
    with _lock:
        if key not in _cache:
            try:
                model, notice = _build(name, scale)
            except ValueError as exc:
                return None, str(exc)
            model.eval().requires_grad_(False)
            _cache[key] = (model, notice)
        return _cache[key]
