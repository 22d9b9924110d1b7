"""Find, verify and load trained weights; fall back to a randomly initialised model with a notice.

Weights are described by ``assets/weights/manifest.json``::

    {"models": [{"name": "frbc", "scale": 4, "file": "frbc_x4.safetensors", "sha256": "...",
                 "metrics": {"Set5": {"psnr": 31.9, "ssim": 0.89}},    # optional
                 "bitwise_speedup": 3.1}]}                             # optional

A file is looked up first next to the manifest ("bundled"), then in the local Hugging Face cache
of :data:`HUB_REPO_ID` ("Hub"); nothing is downloaded. Models are built once per (name, scale)
and cached for the life of the process.
"""
from __future__ import annotations

import hashlib
import json
import threading
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from frb.models import create_model, get_spec

#: Placeholder Hub model repository holding the trained weights (also named in the Space's front matter).
HUB_REPO_ID = "frb-sr/frb-sr-weights"

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "assets" / "weights"
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class WeightsInfo:
    """Where the weights of one model come from: ``source`` is "bundled", "Hub" or "none"."""

    name: str
    scale: int
    source: str
    path: Path | None = None
    entry: dict = field(default_factory=dict)

    @property
    def size_bytes(self) -> int | None:
        return self.path.stat().st_size if self.path is not None else None


def _hub_cached(filename: str) -> Path | None:
    """A file of HUB_REPO_ID already in the local Hugging Face cache (no network access)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(HUB_REPO_ID, filename)
    return Path(found) if isinstance(found, str) else None


def read_manifest(weights_dir: Path | None = None) -> tuple[dict, ...]:
    """The manifest's model entries (bundled manifest first, else a Hub-cached one); () when none."""
    return _read_manifest(weights_dir or WEIGHTS_DIR)


@lru_cache(maxsize=None)
def _read_manifest(weights_dir: Path) -> tuple[dict, ...]:
    path = weights_dir / MANIFEST_NAME
    if not path.is_file():
        path = _hub_cached(MANIFEST_NAME)
    if path is None:
        return ()
    try:
        entries = json.loads(path.read_text(encoding="utf-8")).get("models", [])
    except (OSError, ValueError, AttributeError):
        return ()
    return tuple(e for e in entries if isinstance(e, dict) and {"name", "scale", "file"} <= e.keys())


def find_weights(name: str, scale: int, weights_dir: Path | None = None) -> WeightsInfo:
    """Locate the weights file of ``name`` at ``scale`` (default folder: WEIGHTS_DIR) without loading it."""
    weights_dir = weights_dir or WEIGHTS_DIR
    for entry in read_manifest(weights_dir):
        if entry["name"] != name or int(entry["scale"]) != scale:
            continue
        local = weights_dir / entry["file"]
        if local.is_file():
            return WeightsInfo(name, scale, "bundled", local, entry)
        cached = _hub_cached(entry["file"])
        if cached is not None:
            return WeightsInfo(name, scale, "Hub", cached, entry)
        return WeightsInfo(name, scale, "none", None, entry)
    return WeightsInfo(name, scale, "none")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _random_model(name: str, scale: int) -> nn.Module:
    """A randomly initialised model, the same in every process (seeded from its name and scale)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(zlib.crc32(f"{name}x{scale}".encode()))
        return create_model(name, scale)


def _load_file(model: nn.Module, info: WeightsInfo) -> str:
    """Load ``info.path`` into ``model``; return "" on success, else why it was not used."""
    from safetensors.torch import load_file

    expected = info.entry.get("sha256")
    if expected and _sha256(info.path) != expected.lower():
        return f"checksum mismatch for {info.path.name}"
    try:
        model.load_state_dict(load_file(str(info.path)), strict=True)
    except (OSError, RuntimeError, ValueError) as exc:
        return f"{info.path.name} does not fit the model ({str(exc).splitlines()[0]})"
    return ""


def _weights_notice(model: nn.Module, info: WeightsInfo) -> str:
    """Load the trained weights into ``model`` if possible; the notice to show when not."""
    if info.path is None:
        return f"no trained weights bundled for {info.name} x{info.scale}: showing a randomly initialised model"
    problem = _load_file(model, info)
    if problem:
        return f"{problem} ({info.name} x{info.scale}): showing a randomly initialised model"
    return ""


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
                spec = get_spec(name)
                model = _random_model(name, scale)
            except ValueError as exc:
                return None, str(exc)
            notice = "" if spec.arch == "bicubic" else _weights_notice(model, find_weights(name, scale))
            model.eval().requires_grad_(False)
            _cache[key] = (model, notice)
        return _cache[key]
