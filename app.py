"""Start the frb-sr demo: ``python app.py`` (also the entry point of the Hugging Face Space).

Listens on 127.0.0.1:7860 unless GRADIO_SERVER_NAME / GRADIO_SERVER_PORT say otherwise; never
reaches the network (see ``app/__init__.py``: Hub offline mode, no analytics).
"""
from __future__ import annotations

import os

import app  # noqa: F401  (first: makes the Hub offline and turns analytics off before gradio loads)
from app.ui import build_demo
from frb.compare import warm_up


def main() -> None:
    demo = build_demo()
    for notice in warm_up():
        print(f"note: {notice}")
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        mcp_server=True,  # /upscale, /compare, /kernels and /models as MCP tools (gradio[mcp])
    )


if __name__ == "__main__":
    main()
