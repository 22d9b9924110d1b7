"""Bundled example images: scikit-image's sample photographs, written once as PNG files."""
from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import skimage.data
from PIL import Image

EXAMPLES = ("astronaut", "chelsea", "coffee", "rocket")
EXAMPLE_DIR = Path(tempfile.gettempdir()) / "frb-sr-examples"


def example_path(name: str) -> Path:
    """PNG file of ``skimage.data.<name>()`` (created on first use)."""
    if name not in EXAMPLES:
        raise ValueError(f"unknown example {name!r}; choose one of {EXAMPLES}")
    path = EXAMPLE_DIR / f"{name}.png"
    if not path.is_file():
        EXAMPLE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{name}-{uuid.uuid4().hex}.tmp")  # concurrent first uses don't collide
        Image.fromarray(getattr(skimage.data, name)()).save(tmp, format="PNG")
        tmp.replace(path)
    return path
