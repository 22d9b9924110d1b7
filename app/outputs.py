"""Write the images an event returns as PNG files, one folder per call; old folders are removed.

Every image a handler returns reaches Gradio as a path to a file written here, never as an array.
Gradio stores an array under a hash of its encoded bytes by rewriting that file in place
(``processing_utils.save_pil_to_cache``, gradio 6.31), so two requests with the same output (an
example image, the default kernel view) rewrite the very file a third is downloading, and that
download arrives cut short: 2 of 64 concurrent identical /kernels calls did. A path is copied into
Gradio's cache under a temporary name and renamed into place, which no reader can catch half-written.
"""
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
