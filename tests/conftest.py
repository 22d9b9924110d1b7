"""Shared fixtures: the benchmark and training images live in ../shared/data (never copied into the repo)."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch

DATA_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not DATA_ROOT.is_dir():
        pytest.skip(f"benchmark data not found at {DATA_ROOT}")
    return DATA_ROOT


@pytest.fixture(scope="session")
def set5_dir(data_root: Path) -> Path:
    return data_root / "benchmark" / "Set5" / "HR"


@pytest.fixture(scope="session")
def url():
    """The demo app launched once on a free loopback port, for API and browser tests."""
    pytest.importorskip("gradio")
    from app.ui import build_demo

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = build_demo()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, mcp_server=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture
def one_thread():
    """One intra-op thread: on shared cores, two OpenMP threads stall each other for seconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
