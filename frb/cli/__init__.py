"""The ``python -m frb`` command line (also installed as ``frb``): one module per sub-command.

Nothing reaches the network unless asked: the Hugging Face Hub is offline (``HF_HUB_OFFLINE=1``)
unless the environment says ``HF_HUB_OFFLINE=0`` or the command is given ``--online`` (``frb hub
push`` always is). huggingface_hub reads the variable when it is first imported, which happens
only inside the commands, after :func:`main` has set it.

A command raises ``frb.cli.common.UsageError`` for a command line that cannot be carried out
(printed argparse-style, exit code 2) and ``frb.hub.WeightsError`` for a model without usable
weights (same message, exit code 1); :func:`main` reports both, so no command repeats it.
"""
from __future__ import annotations

import argparse
import os

from frb.cli import bench, common, figure, hub, info, kernels, upscale
from frb.cli import eval as eval_command
from frb.hub import WeightsError

COMMANDS = (info, eval_command, bench, hub, upscale, kernels, figure)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="frb", description="Binarized image super-resolution (FRB and compared methods)")
    parser.add_argument("--online", action="store_true", help="let the Hub be reached for weights (default: offline)")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    online = args.online or getattr(args, "hub_command", None) == "push"
    os.environ["HF_HUB_OFFLINE"] = "0" if online else os.environ.get("HF_HUB_OFFLINE", "1")
    try:
        return args.func(args)
    except common.UsageError as exc:
        return common.usage_error(args.command, exc)
    except WeightsError as exc:
        return common.weights_error(args.command, exc)
