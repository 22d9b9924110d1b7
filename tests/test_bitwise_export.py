"""Packed model files: round trips reproduce outputs, damaged files fail with clear errors."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from frb.bitwise.export import PackedFileError, pack_model, read_packed, save_packed
from frb.bitwise.packing import FrozenBases
from frb.bitwise.runner import make_runner
from frb.imaging import to_uint8
from frb.layers import binary_layers
from frb.bench import random_model
from frb.models import create_model

pytestmark = pytest.mark.engine  # run again with the kernels compiled for AVX2 (.ci/run)


def _model(name: str, scale: int = 2) -> torch.nn.Module:
    return random_model(name, scale, seed=0)


@pytest.fixture(scope="module")
def frbc_file(tmp_path_factory) -> tuple[torch.nn.Module, str]:
    model = _model("frbc")
    path = str(tmp_path_factory.mktemp("packed") / "frbc_x2.safetensors")
    save_packed(model, path, float_dtype="float32")
    return model, path


def test_packed_file_holds_bits_scales_and_metadata(frbc_file):
    model, path = frbc_file
    tensors, meta = read_packed(path)
    assert meta["model"] == "frbc" and meta["scale"] == "2" and meta["method"] == "frb"
    assert meta["format"] == "frb-packed" and meta["format_version"] == "1"
    bits = tensors["body.0.conv1.weight_bits"]
    assert bits.dtype == np.uint64 and bits.shape == (2, 9, 1, 64)
    assert tensors["body.0.conv1.weight_scales"].shape == (2, 64)
    assert "body.0.conv1.input_quantizer.threshold" in tensors and "body.0.conv1.output.shift_out" in tensors
    assert not any(k.startswith("body.") and k.endswith(".weight") for k in tensors), "no latent weights"
    assert "conv_first.weight" in tensors


@pytest.mark.parametrize("backend", ["torch", "bitwise"])
def test_round_trip_reproduces_the_outputs_exactly(frbc_file, backend):
    model, path = frbc_file
    loaded = create_model("frbc", 2, pretrained=path)
    assert all(isinstance(l.weight_quantizer, FrozenBases) for l in binary_layers(loaded).values())
    x = torch.rand(1, 3, 20, 17)
    assert torch.equal(make_runner(loaded, backend)(x), make_runner(model, backend)(x))


def test_repacking_a_loaded_model_gives_the_same_tensors(frbc_file):
    _, path = frbc_file
    tensors, _ = read_packed(path)
    again = pack_model(create_model("frbc", 2, pretrained=path), float_dtype="float32")
    assert tensors.keys() == again.keys()
    assert all(np.array_equal(tensors[k], again[k]) for k in tensors)


def test_frbt_round_trip_with_half_precision_tail(tmp_path):
    model = _model("frbt")
    path = tmp_path / "frbt.safetensors"
    save_packed(model, path)
    loaded = create_model("frbt", 2, pretrained=path)
    x = torch.rand(1, 3, 16, 16)
    bitwise, torch_out = make_runner(loaded, "bitwise")(x), make_runner(loaded, "torch")(x)
    assert torch.allclose(bitwise, torch_out, atol=1e-4)
    diff = np.abs(to_uint8(torch_out).astype(int) - to_uint8(make_runner(model, "torch")(x)).astype(int))
    assert diff.max() <= 1, "float16 storage of the full-precision parts changes little"


def test_half_precision_stores_only_the_full_precision_parts_in_float16(frbc_file, tmp_path):
    model, path32 = frbc_file
    save_packed(model, tmp_path / "half.safetensors")
    tensors, meta = read_packed(tmp_path / "half.safetensors")
    assert meta["float_dtype"] == "float16"
    assert tensors["upconv1.weight"].dtype == np.float16
    assert tensors["body.3.conv2.weight_scales"].dtype == np.float32
    assert tensors["body.3.conv2.input_quantizer.threshold"].dtype == np.float32
    assert (tmp_path / "half.safetensors").stat().st_size < os.path.getsize(path32)


def test_truncated_file_gives_a_clear_error(frbc_file, tmp_path):
    _, path = frbc_file
    data = open(path, "rb").read()
    bad = tmp_path / "truncated.safetensors"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(PackedFileError, match="not a readable packed model file"):
        read_packed(bad)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        create_model("frbc", 2, pretrained=bad)


def test_damaged_bytes_fail_the_checksum(frbc_file, tmp_path):
    _, path = frbc_file
    data = bytearray(open(path, "rb").read())
    data[-100] ^= 0xFF
    bad = tmp_path / "damaged.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(PackedFileError, match="checksum"):
        create_model("frbc", 2, pretrained=bad)


def test_other_files_and_other_models_are_refused(frbc_file, tmp_path):
    _, path = frbc_file
    with pytest.raises(PackedFileError, match="holds frbc x2, not bnn x2"):
        create_model("bnn", 2, pretrained=path)
    with pytest.raises(PackedFileError, match="holds frbc x2, not frbc x4"):
        create_model("frbc", 4, pretrained=path)
    plain = tmp_path / "plain.safetensors"
    save_file(create_model("srresnet", 2).state_dict(), str(plain))
    with pytest.raises(PackedFileError, match="not an frb-packed file"):
        read_packed(plain)
    with pytest.raises(PackedFileError):
        read_packed(tmp_path / "missing.safetensors")


def test_only_binarized_registry_models_can_be_saved(tmp_path):
    with pytest.raises(ValueError, match="binarized"):
        save_packed(create_model("srresnet", 2), tmp_path / "x.safetensors")
