"""The app's and the command line's models: verified trained weights through ``frb.hub``, or none.

``frb.hub`` finds verified weights (bundled ``assets/weights`` first, then the local Hugging Face
cache; the app runs offline, so nothing is downloaded). A model whose weights are missing or fail
their checksum is *unavailable*: ``load_model`` returns no model and says why (the checksum that
failed, what to do), so nothing ever shows a random network's output as a result. Only an explicit
``allow_random=True`` (the CLI's ``--allow-random``) builds a seeded random model instead, with a
notice. Models are built once per (name, scale, allow_random) and cached for the life of the process.
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


def _unavailable(name: str, scale: int, why: str) -> str:
    return (f"{name} x{scale} is unavailable: {why}. Restore assets/weights from the repository (git checkout "
            f"assets/weights), or fetch the file with `frb --online hub resolve --model {name} --scale {scale}`")


def _build(name: str, scale: int, allow_random: bool) -> tuple[nn.Module | None, str]:
    if get_spec(name).arch == "bicubic":
        return create_model(name, scale), ""
    info = find_weights(name, scale)
    if info.path is not None:
        try:
            return hub.load_weights_file(info.path, name, scale), "; ".join(info.notices)
        except (ValueError, RuntimeError, OSError) as exc:
            why = f"{info.path.name} could not be loaded ({exc})"
    else:
        why = "; ".join(info.notices) or f"no trained weights bundled for {name} x{scale}"
        if not info.entry:
            scales = hub.shipped_scales(name)
            why += f" ({name} has trained weights at {', '.join(f'x{s}' for s in scales)})" if scales else " (nor at any scale)"
    if allow_random:
        return _random_model(name, scale), f"{why}: showing a randomly initialised {name} x{scale} (--allow-random)"
    return None, _unavailable(name, scale, why)


_lock = threading.Lock()
_cache: dict[tuple[str, int, bool], tuple[nn.Module | None, str]] = {}


def load_model(name: str, scale: int, allow_random: bool = False) -> tuple[nn.Module | None, str]:
    """The model ``name`` at ``scale`` in eval mode and a notice ("" when its trained weights loaded cleanly).

    ``(None, why)`` for an unknown name or scale, and for a model without usable trained weights
    (missing, failing its sha256 check, unreadable) unless ``allow_random``, which returns a seeded
    random model and a notice saying so. Bicubic needs no weights.
    """
    key = (name, scale, allow_random)
    with _lock:
        if key not in _cache:
            try:
                model, notice = _build(name, scale, allow_random)
            except ValueError as exc:
                return None, str(exc)
            if model is not None:
                model.eval().requires_grad_(False)
            _cache[key] = (model, notice)
        return _cache[key]
