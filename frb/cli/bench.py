"""``python -m frb bench``: the bitwise engine against torch on this machine (``frb.bench``), as a table or JSON."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from frb.bench import TARGETS, benchmark
from frb.bitwise import SETTINGS
from frb.bitwise.config import ISA_TARGETS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="time the bitwise engine against torch fp32 on this machine")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (median; default 5)")
    p.add_argument("--size", type=int, default=128, help="side of the LR input / feature map (default 128)")
    p.add_argument("--isa", choices=("host", *ISA_TARGETS), default=None,
                   help="compile the kernels for this target (avx2: an AVX2-only CPU, on any x86 host); "
                        "default: $FRB_ISA or the host")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.repeats < 1 or args.size < 1:
        raise SystemExit("--repeats and --size must be positive")
    if args.isa is not None and args.isa != SETTINGS.isa:
        # The target is fixed when the engine is imported: measure in a fresh process compiled for it.
        argv = ["bench", "--repeats", str(args.repeats), "--size", str(args.size)] + (["--json"] if args.json else [])
        return subprocess.run([sys.executable, "-m", "frb", *argv], env={**os.environ, "FRB_ISA": args.isa}).returncode
    result = benchmark(args.repeats, args.size)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for key in (*TARGETS, "frb_body_speedup", "fakequant_x4_speedup"):
        print(f"{key:<26} {result[key]:>7.2f}x")
    print(f"{'packed / fp32 bytes':<26} {result['packed_ratio']:>7.3f}  "
          f"({result['packed_frbc_bytes']:,} / {result['fp32_srresnet_bytes']:,})")
    print(f"exact: {result['exact']}; kernels compiled for: {result['cpu_flags']['isa']}, popcount {result['cpu_flags']['popcount']}")
    print(f"below target: {result['below_target'] or 'none'}")
    return 0
