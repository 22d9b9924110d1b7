"""Training data: random HR crops from folders of images, LR made on the fly.

All images are decoded once and kept in memory as uint8 arrays (the default sets take about
230 MB decoded). A batch is ``batch`` independent draws from a seeded ``numpy`` generator:
an image (uniformly), a crop position (uniformly), and one of the 8 flips / 90-degree rotations.
The generator's state is part of the checkpoint, so a resumed run draws the same crops.

Images smaller than one HR crop are skipped and counted (padding would teach the model
padding artefacts); unreadable files are skipped and reported, never fatal. ``held_out`` picks a
fixed validation subset of the training folders that the sampler then never draws from.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from frb.evaluate import image_files
from frb.imaging import ImageError, imresize_torch, load_image


@dataclass
class LoadReport:
    """What loading skipped: unreadable files (path, reason) and images smaller than a crop."""

    images: int = 0
    held_out: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    too_small: list[str] = field(default_factory=list)

    def describe(self, crop: int) -> str:
        lines = [f"training images: {self.images} usable" + (f", {self.held_out} held out for validation" if self.held_out else "")]
        if self.too_small:
            lines.append(f"skipped {len(self.too_small)} image(s) smaller than a {crop}x{crop} crop")
        if self.unreadable:
            lines.append(f"skipped {len(self.unreadable)} unreadable file(s):")
            lines += [f"  {path}: {reason}" for path, reason in self.unreadable]
        return "\n".join(lines)


def held_out(files: Sequence[Path], every: int) -> list[Path]:
    """The files kept out of training: sha256("<folder>/<file name>") mod ``every`` == 0 (none if every <= 0).

    A hash of the names, not positions, so adding images to a folder never moves another image
    between the training and the held-out sets.
    """
    if every <= 0:
        return []
    digest = lambda p: int.from_bytes(hashlib.sha256(f"{p.parent.name}/{p.name}".encode()).digest()[:8], "big")
    return [p for p in files if digest(p) % every == 0]


class CropSampler:
    """Random ``crop x crop`` uint8 HR patches with random flips / rotations, from cached images."""

    def __init__(self, folders: Sequence[str | Path], crop: int, seed: int | Sequence[int], holdout_every: int = 0) -> None:
        self.crop = crop
        self.report = LoadReport()
        self.images: list[np.ndarray] = []
        files = image_files(folders)
        excluded = set(held_out(files, holdout_every))
        self.report.held_out = len(excluded)
        for path in (p for p in files if p not in excluded):
            try:
                img = load_image(path)
            except ImageError as exc:
                self.report.unreadable.append((str(path), str(exc)))
                continue
            if min(img.shape[:2]) < crop:
                self.report.too_small.append(str(path))
                continue
            self.images.append(img)
        self.report.images = len(self.images)
        if not self.images:
            raise ValueError(f"no usable training images of at least {crop}x{crop} pixels in {list(folders)}")
        self.generator = np.random.default_rng(seed)

    def sample(self, batch: int) -> np.ndarray:
        """``(batch, crop, crop, 3)`` uint8: random image, position and dihedral transform each."""
        g, c = self.generator, self.crop
        out = np.empty((batch, c, c, 3), dtype=np.uint8)
        for i in range(batch):
            img = self.images[g.integers(len(self.images))]
            y = g.integers(img.shape[0] - c + 1)
            x = g.integers(img.shape[1] - c + 1)
            patch = img[y : y + c, x : x + c]
            t = g.integers(8)
            if t & 1:
                patch = patch[:, ::-1]
            if t & 2:
                patch = patch[::-1]
            if t & 4:
                patch = patch.transpose(1, 0, 2)
            out[i] = patch
        return out

    def state_dict(self) -> dict[str, Any]:
        return self.generator.bit_generator.state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.bit_generator.state = state


def make_pair(hr_uint8: np.ndarray, scale: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """HR crops ``(B, P, P, 3)`` uint8 -> ``(lr, hr)`` float tensors ``(B, 3, ., .)`` in [0, 1] on ``device``.

    lr = round(255 * clamp(imresize(hr, 1/scale), 0, 1)) / 255: the project's MATLAB bicubic,
    batched on the training device, then quantised to 8 bits like the stored LR of evaluation.
    """
    hr = torch.from_numpy(hr_uint8).to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
    lr = imresize_torch(hr, 1.0 / scale)
    lr = torch.floor(lr.clamp_(0.0, 1.0).mul_(255.0).add_(0.5)).div_(255.0)
    return lr, hr
