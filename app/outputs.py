"""Write a run's images as PNG files for download, one folder per run; old folders are removed."""
from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

OUTPUT_ROOT = Path(tempfile.gettempdir()) / "frb-sr-outputs"
KEEP_SECONDS = 3600


def _remove_old(root: Path, keep_seconds: float) -> None:
    cutoff = time.time() - keep_seconds
    for folder in root.glob("run-*"):
        try:
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
        except FileNotFoundError:
            pass


def new_run_folder(root: Path = OUTPUT_ROOT) -> Path:
    """A fresh folder for one run's files; folders older than KEEP_SECONDS are removed first."""
    root.mkdir(parents=True, exist_ok=True)
    _remove_old(root, KEEP_SECONDS)
    folder = root / f"run-{uuid.uuid4().hex[:12]}"
    folder.mkdir()
    return folder


def save_pngs(images: dict[str, np.ndarray], root: Path = OUTPUT_ROOT) -> dict[str, Path]:
    """Save each ``{file stem: HxWx3 or HxWx4 uint8}`` as ``<stem>.png`` in a fresh folder; returns the paths."""
    folder = new_run_folder(root)
    paths = {}
    for stem, img in images.items():
        paths[stem] = folder / f"{stem}.png"
        Image.fromarray(img).save(paths[stem], format="PNG", compress_level=3)
    return paths
