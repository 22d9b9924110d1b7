"""Shared fixtures: the benchmark and training images live in ../shared/data (never copied into the repo)."""
from __future__ import annotations

from pathlib import Path

import pytest

DATA_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not DATA_ROOT.is_dir():
        pytest.skip(f"benchmark data not found at {DATA_ROOT}")
    return DATA_ROOT


@pytest.fixture(scope="session")
def set5_dir(data_root: Path) -> Path:
    return data_root / "benchmark" / "Set5" / "HR"
