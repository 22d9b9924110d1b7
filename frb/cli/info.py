"""``python -m frb info``: the binarization methods and every model's size and cost."""
from __future__ import annotations

import argparse
import json

from frb.binarize import METHODS
from frb.cost import BBCU_INPUT_HW, model_costs
from frb.models import SCALES


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("info", help="list binarization methods and model costs (BBCU convention)")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    p.add_argument("--scale", type=int, choices=SCALES, action="append", help="only these scales (repeatable)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows = model_costs(tuple(args.scale) if args.scale else SCALES)
    if args.json:
        print(json.dumps({"methods": list(METHODS), "input_hw": list(BBCU_INPUT_HW), "models": rows}, indent=2))
        return 0
    print("binarization methods:", ", ".join(METHODS))
    print(f"costs on a {BBCU_INPUT_HW[1]}x{BBCU_INPUT_HW[0]} LR input (binary params /32, binary ops /64)")
    print(f"{'model':<10} {'scale':>5} {'params':>10} {'params_K':>10} {'ops_G':>8}")
    for r in rows:
        print(f"{r['name']:<10} {r['scale']:>5} {r['params']:>10,} {r['params_K']:>10.1f} {r['ops_G']:>8.2f}")
    return 0
