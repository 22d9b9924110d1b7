"""The ``python -m frb`` command line (also installed as ``frb``).

Nothing reaches the network unless asked: the Hugging Face Hub is offline (``HF_HUB_OFFLINE=1``)
unless the environment says ``HF_HUB_OFFLINE=0`` or the command is given ``--online`` (``frb hub
push`` always is). huggingface_hub reads the variable when it is first imported, which happens
only inside the commands, after this module has set it.
"""
from __future__ import annotations

import argparse
import os
import sys

from frb import bench, evaluate, figure, hub, info, kernels_cli, upscale


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="frb", description="Binarized image super-resolution (FRB and compared methods)")
    parser.add_argument("--online", action="store_true", help="let the Hub be reached for weights (default: offline)")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in (info, evaluate, bench, hub, upscale, kernels_cli, figure):
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    online = args.online or getattr(args, "hub_command", None) == "push"
    os.environ["HF_HUB_OFFLINE"] = "0" if online else os.environ.get("HF_HUB_OFFLINE", "1")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
