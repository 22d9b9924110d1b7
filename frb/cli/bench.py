"""``python -m frb bench``: the bitwise engine against torch on this machine (``frb.bench``), as a table or JSON."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from frb.bench import benchmark
from frb.bitwise import SETTINGS
from frb.bitwise.config import ISA_TARGETS, TORCH_ISA_ENV


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="time the bitwise engine against torch fp32 on this machine")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    p.add_argument("--repeats", type=int, default=7,
                   help="timed calls (pairs, for a speed-up) per measurement; medians (default 7)")
    p.add_argument("--size", type=int, default=128, help="side of the LR input / feature map (default 128)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for torch, the kernels and ONNX Runtime alike (default: torch's and numba's own)")
    p.add_argument("--isa", choices=("host", *ISA_TARGETS), default=None,
                   help="compile the kernels for this target (avx2: an AVX2-only CPU, on any x86 host); "
                        "default: $FRB_ISA or the host")
    p.add_argument("--app", action=argparse.BooleanOptionalAction, default=True,
                   help="also time the app's comparison of all models on a 256x256 LR input (default: on)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.repeats < 1 or args.size < 1 or (args.threads is not None and args.threads < 1):
        raise SystemExit("--repeats, --size and --threads must be positive")
    if args.isa is not None and args.isa != SETTINGS.isa:
        # The target is fixed when the engine and torch are imported: measure in a fresh process, with
        # the kernels compiled for it and torch held to the same ISA.
        argv = ["bench", "--repeats", str(args.repeats), "--size", str(args.size)] + (["--json"] if args.json else [])
        argv += ([] if args.app else ["--no-app"]) + ([] if args.threads is None else ["--threads", str(args.threads)])
        env = {**os.environ, "FRB_ISA": args.isa, **TORCH_ISA_ENV.get(args.isa, {})}
        return subprocess.run([sys.executable, "-m", "frb", *argv], env=env).returncode
    result = benchmark(args.repeats, args.size, app=args.app, threads=args.threads)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for key in (*result["targets"], "frb_body_speedup", "model_x2_bound", "model_x4_bound", "fakequant_x4_speedup"):
        if key in result:
            print(f"{key:<32} {result[key]:>7.2f}x")
    for scale in (2, 4):
        peers = ", ".join(f"{k} {v} ms" for k, v in result[f"peers_x{scale}"].items())
        print(f"x{scale} peers: {peers}; bitwise FRBC {result['ms_median'][f'frbc_x{scale}']} ms, "
              f"{result[f'model_x{scale}_speedup_vs_fastest']:.2f}x the fastest ({result[f'fastest_peer_x{scale}']})")
    if result.get("app_all_models_s") is not None:
        print(f"{'app_all_models_s':<32} {result['app_all_models_s']:>7.2f} s")
    print(f"{'packed / fp32 bytes':<26} {result['packed_ratio']:>7.3f}  "
          f"({result['packed_frbc_bytes']:,} / {result['fp32_srresnet_bytes']:,})")
    print(f"exact: {result['exact']}; kernels compiled for: {result['cpu_flags']['isa']}, popcount {result['cpu_flags']['popcount']}")
    print(f"below target: {result['below_target'] or 'none'}")
    return 0
