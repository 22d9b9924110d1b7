"""The ``python -m frb`` command line (also installed as ``frb``)."""
from __future__ import annotations

import argparse
import sys

from frb import bench, evaluate, figure, hub, info, kernels_cli, upscale


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="frb", description="Binarized image super-resolution (FRB and compared methods)")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in (info, evaluate, bench, hub, upscale, kernels_cli, figure):
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
