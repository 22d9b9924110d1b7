"""The Hugging Face Space files: front matter, Debian packages, weights that are real files."""
from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest

from frb import hub

ROOT = Path(__file__).resolve().parents[1]


def front_matter() -> dict[str, object]:
    """The README's YAML front matter, read as the flat keys and lists it uses."""
    text = (ROOT / "README.md").read_text().split("---\n")[1]
    values: dict[str, object] = {}
    key = None
    for line in text.splitlines():
        if line.startswith("  - ") and key:
            values.setdefault(key, [])
            values[key].append(line[4:].strip())  # type: ignore[union-attr]
        elif ":" in line:
            key, _, value = line.partition(":")
            values[key.strip()] = value.strip().strip('"') if value.strip() else []
    return values


def test_front_matter_has_what_a_space_reads():
    meta = front_matter()
    for key in ("title", "sdk", "sdk_version", "app_file", "license", "short_description", "suggested_hardware", "tags"):
        assert meta.get(key), key
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and (ROOT / "app.py").is_file()
    requirements = (ROOT / "requirements.txt").read_text()
    assert f"gradio[mcp]=={meta['sdk_version']}" in requirements  # the MCP server needs the extra
    assert len(str(meta["short_description"])) <= 60  # the Hub's limit
    assert hub.DEFAULT_REPO_ID in meta["models"]


def test_space_installs_the_openmp_runtime():
    assert "libgomp1" in (ROOT / "packages.txt").read_text().split()


@pytest.mark.parametrize("entry", hub.read_manifest(), ids=lambda e: e["file"])
def test_bundled_weights_are_real_safetensors_not_lfs_pointers(entry):
    data = (hub.ASSETS_DIR / entry["file"]).read_bytes()
    assert not data.startswith(b"version https://git-lfs"), "an LFS pointer: install the file, not the pointer"
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    assert "__metadata__" in header and len(data) == entry["bytes"]


def test_the_pinned_hub_revision_agrees_with_the_front_matter_and_the_manifest():
    pin = hub.read_pin()
    if pin is None:
        pytest.skip("the manifest pins no Hub commit: nothing has been pushed yet (`frb hub push` writes the pin)")
    assert pin["repo_id"] in front_matter()["models"]
    assert re.fullmatch("[0-9a-f]{40}", pin["revision"])
    assert hub.pinned_revision(pin["repo_id"]) == pin["revision"], "a weights file shipped after the push: push again"
