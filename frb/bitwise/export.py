"""Packed model files (safetensors): how shipped binary weights are stored.

A packed file holds, for every binary layer ``L``:

    L.weight_bits    uint64 (bases, k*k, words, out)   sign bits of B_i (1 = -1)
    L.weight_scales  float32 (bases, out)              W_b = sum_i scales[i, c] * B_i
    L.bias, L.input_quantizer.*, L.output.*            float32 (thresholds, PReLU/RPReLU)

and every other entry of the model's state dict (head, tail, norms, ...) in ``float_dtype``
(float16 by default: half the bytes, computed in float32 after loading). There are no latent
weights: :func:`install_packed` (through ``frb.models.create_model(name, scale, pretrained=path)``)
gives the binarized model :class:`~frb.bitwise.packing.FrozenBases` weight quantizers that keep
the stored bits, so the bitwise backend runs them as they are and the torch backend computes
exactly the W_b they say. Metadata: format, format_version,
model, arch, scale, method, method_options (JSON), float_dtype and content_sha256 (a hash of
every tensor, checked on load so a damaged file fails loudly).
"""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file
from torch import nn

from frb.bitwise.packing import FrozenBases, num_words, pack_weight_signs
from frb.layers import binary_layers

FORMAT = "frb-packed"
FORMAT_VERSION = "1"
FLOAT_DTYPES = {"float32": np.float32, "float16": np.float16}


class PackedFileError(ValueError):
    """A packed model file that cannot be used (unreadable, damaged, or for another model)."""


def _binary_prefixes(model: nn.Module) -> dict[str, nn.Module]:
    return {f"{name}.": layer for name, layer in binary_layers(model).items()}


def _is_latent(key: str, prefixes: dict[str, nn.Module]) -> bool:
    """Whether a state-dict key is a binary layer's latent weight or weight-quantizer state."""
    return any(key == p + "weight" or key.startswith(p + "weight_quantizer.") for p in prefixes)


def _in_binary_layer(key: str, prefixes: dict[str, nn.Module]) -> bool:
    return any(key.startswith(p) for p in prefixes)


def _content_hash(tensors: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for key in sorted(tensors):
        a = np.ascontiguousarray(tensors[key])
        digest.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def pack_model(model: nn.Module, float_dtype: str = "float16") -> dict[str, np.ndarray]:
    """The tensors of a packed file for a binarized ``model`` (see the module docstring)."""
    if float_dtype not in FLOAT_DTYPES:
        raise ValueError(f"float_dtype must be one of {sorted(FLOAT_DTYPES)}, got {float_dtype!r}")
    prefixes = _binary_prefixes(model)
    if not prefixes:
        raise ValueError("the model has no binary layers to pack")
    tensors: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for prefix, layer in prefixes.items():
            bases = layer.weight_quantizer.bases(layer.weight)
            tensors[prefix + "weight_bits"] = np.stack([pack_weight_signs(sign) for sign, _ in bases])
            tensors[prefix + "weight_scales"] = np.stack([s.reshape(-1).float().numpy() for _, s in bases])
        for key, value in model.state_dict().items():
            if _is_latent(key, prefixes):
                continue
            array = value.detach().cpu().numpy()
            if np.issubdtype(array.dtype, np.floating):
                binary = _in_binary_layer(key, prefixes)
                array = array.astype(np.float32 if binary else FLOAT_DTYPES[float_dtype])
            tensors[key] = np.ascontiguousarray(array)
    return tensors


def save_packed(model: nn.Module, path: str | os.PathLike, float_dtype: str = "float16") -> None:
    """Write ``model`` (built by ``frb.models.create_model`` and binarized) as a packed file."""
    spec = getattr(model, "spec", None)
    if spec is None or not spec.binary:
        raise ValueError("save_packed needs a binarized model built by frb.models.create_model")
    tensors = pack_model(model, float_dtype)
    method = model.binarization_method
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": spec.name,
        "arch": spec.arch,
        "scale": str(model.scale),
        "method": method.name,
        "method_options": json.dumps(vars(method), sort_keys=True),
        "float_dtype": float_dtype,
        "content_sha256": _content_hash(tensors),
    }
    save_file(tensors, str(path), metadata=metadata)


def read_packed(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Tensors and metadata of a packed file, verified; raises :class:`PackedFileError`."""
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise PackedFileError(f"{path}: not a readable packed model file ({err})") from err
    if metadata.get("format") != FORMAT:
        raise PackedFileError(f"{path}: not an {FORMAT} file (metadata format={metadata.get('format')!r})")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise PackedFileError(
            f"{path}: format version {metadata.get('format_version')!r}, this code reads {FORMAT_VERSION!r}"
        )
    if _content_hash(tensors) != metadata.get("content_sha256"):
        raise PackedFileError(f"{path}: content checksum mismatch, the file is damaged")
    return tensors, metadata


def install_packed(model: nn.Module, tensors: dict[str, np.ndarray], source: str | os.PathLike = "packed file") -> nn.Module:
    """Put the tensors of a packed file (:func:`read_packed`) into ``model``, built for the file's model.

    Binary layers get :class:`FrozenBases` quantizers holding the stored bits (the engine packs
    nothing again) and ``weight`` = W_b for the torch path; every other tensor must fit exactly.
    Raises :class:`PackedFileError` naming what does not fit.
    """
    tensors = dict(tensors)
    prefixes = _binary_prefixes(model)
    with torch.no_grad():
        for prefix, layer in prefixes.items():
            try:
                bits, scales = tensors.pop(prefix + "weight_bits"), tensors.pop(prefix + "weight_scales")
            except KeyError as err:
                raise PackedFileError(f"{source}: missing {err.args[0]}") from None
            weight = layer.weight
            taps = weight[0, 0].numel()
            if bits.shape[1:] != (taps, num_words(weight.shape[1]), weight.shape[0]) or scales.shape != (bits.shape[0], weight.shape[0]):
                raise PackedFileError(f"{source}: {prefix}weight_bits {bits.shape} does not fit {tuple(weight.shape)}")
            layer.weight_quantizer = FrozenBases(bits, scales, tuple(weight.shape))
            weight.copy_(layer.weight_quantizer.value())
    state = {
        key: torch.from_numpy(value.astype(np.float32) if value.dtype == np.float16 else value)
        for key, value in tensors.items()
    }
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not _is_latent(k, prefixes)]
    if missing or result.unexpected_keys:
        raise PackedFileError(
            f"{source} does not fit {type(model).__name__}: missing {missing[:8]}, unexpected {result.unexpected_keys[:8]}"
        )
    return model.eval()
