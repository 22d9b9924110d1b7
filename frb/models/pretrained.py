"""Trained weights into a model: the loading half of ``frb.models.create_model``.

A weights file is safetensors, either the packed format of ``frb.bitwise.export`` (binarized
models: sign bits and scales, no latent weights; the file names its model, scale and method
options) or a full-precision state dict, loaded strictly. ``pretrained=True`` takes the verified
shipped file that ``frb.hub.resolve`` finds (bundled, the Hugging Face cache, then the Hub unless
offline). When there is none, ``WeightsError`` says what was tried and what to do, unless
``on_missing="random"`` asks for a seeded random model instead (the reason then travels in the
model's ``weights_origin.notices``): nothing ever passes a random network off as a trained one.
"""
from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

from frb import hub
from frb.bitwise.export import FORMAT, PackedFileError, install_packed, read_packed
from frb.models.registry import build, get_spec

ON_MISSING = ("error", "random")


def weights_metadata(path: Path) -> dict[str, str]:
    """The safetensors metadata of a weights file; ``WeightsError`` when it is no safetensors file."""
    try:
        with safe_open(str(path), "pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise hub.WeightsError(f"{path} is not a readable safetensors file ({exc})") from None


def load_weights_file(path: str | os.PathLike, name: str, scale: int, depth: int = 0, **method_options: object) -> nn.Module:
    """``name`` x``scale`` built from the weights file ``path`` (packed or a float state dict), in eval mode.

    Raises ``WeightsError`` (or ``frb.bitwise.export.PackedFileError``) naming what does not fit.
    """
    path = Path(path)
    metadata = weights_metadata(path)
    if metadata.get("format") == FORMAT:
        tensors, meta = read_packed(path)
        if meta["model"] != name or meta["scale"] != str(scale):
            raise PackedFileError(f"{path} holds {meta['model']} x{meta['scale']}, not {name} x{scale}")
        model = build(name, scale, **json.loads(meta["method_options"]))
        return install_packed(model, tensors, path)
    model = build(name, scale, depth, **method_options)
    try:
        state = {k: v.float() for k, v in load_file(str(path)).items()}
    except SafetensorError as exc:
        raise hub.WeightsError(f"{path} is not a readable safetensors file ({exc})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        shortened = metadata.get("num_block", "0")
        hint = f" (they are of a shortened model, num_block={shortened})" if shortened not in ("0", str(depth)) else ""
        raise hub.WeightsError(f"{path.name} does not fit {name} x{scale}{hint}: {str(exc).splitlines()[0]}") from None
    return model.eval()


def seeded_random(name: str, scale: int, depth: int = 0, **method_options: object) -> nn.Module:
    """A randomly initialised model, the same in every process (seeded from its name and scale)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(zlib.crc32(f"{name}x{scale}".encode()))
        return build(name, scale, depth, **method_options)


def _why_unavailable(found: hub.Resolved) -> str:
    why = "; ".join(found.notices) or f"no trained weights bundled for {found.name} x{found.scale}"
    if not found.entry:
        scales = hub.shipped_scales(found.name)
        why += (f" ({found.name} has trained weights at {', '.join(f'x{s}' for s in scales)})" if scales
                else " (nor at any scale)")
    return why


def load_pretrained(
    name: str,
    scale: int,
    pretrained: bool | str | os.PathLike,
    local_files_only: bool = False,
    on_missing: str = "error",
    depth: int = 0,
    **method_options: object,
) -> nn.Module:
    """The model with trained weights (``pretrained`` True: the shipped ones; a path: that file).

    Sets ``model.weights_origin`` (a ``frb.hub.Resolved``). See ``frb.models.create_model``.
    """
    if on_missing not in ON_MISSING:
        raise ValueError(f"on_missing must be one of {ON_MISSING}, got {on_missing!r}")
    spec = get_spec(name)
    if not spec.needs_weights:
        model = build(name, scale).eval()
        model.weights_origin = hub.Resolved(name, scale, "builtin", None, {})
        return model
    if pretrained is not True:
        model = load_weights_file(pretrained, name, scale, depth, **method_options)
        model.weights_origin = hub.Resolved(name, scale, "file", Path(pretrained), {})
        return model
    found = hub.resolve(name, scale, local_files_only=local_files_only)
    if found.path is not None:
        try:
            model = load_weights_file(found.path, name, scale, depth, **method_options)
            model.weights_origin = found
            return model
        except (ValueError, RuntimeError, OSError) as exc:
            why = f"{found.path.name} could not be loaded ({exc})"
    else:
        why = _why_unavailable(found)
    if on_missing == "random":
        model = seeded_random(name, scale, depth, **method_options).eval()
        notice = f"{why}: showing a randomly initialised {name} x{scale} (--allow-random)"
        model.weights_origin = hub.Resolved(name, scale, "random", None, found.entry, (notice,))
        return model
    raise hub.WeightsError(
        f"{name} x{scale} is unavailable: {why}. Restore assets/weights from the repository (git checkout "
        f"assets/weights), or fetch the file with `frb --online hub resolve --model {name} --scale {scale}`"
    )
