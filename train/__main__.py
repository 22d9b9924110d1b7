"""``python -m train ...``, alone or under ``torchrun --nproc_per_node N -m train ...``.

Under torchrun (WORLD_SIZE > 1) the process group is initialised with nccl on GPUs and gloo on
CPUs. Exit status: 0 when the run finished or stopped cleanly (--max-minutes, --stop-at),
1 when the loss diverged (the last good checkpoint is kept) or a file is missing / in the way.
"""
from __future__ import annotations

import os
import sys

import torch.distributed as dist

from train.loop import TrainingDiverged, resolve_device, train
from train.presets import config_from_args


def main(argv: list[str] | None = None) -> int:
    cfg = config_from_args(argv)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        dist.init_process_group("nccl" if resolve_device(cfg.device).type == "cuda" else "gloo")
    try:
        train(cfg)
    except (TrainingDiverged, FileNotFoundError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if distributed:
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
