"""Training configuration: one dataclass, presets per model, every field a command-line flag.

``config_from_args(argv)`` starts from the preset of ``--model`` / ``--scale`` and applies the
flags that were given, so ``python -m train --model frbc --steps 1000 --no-dbt`` is the FRBC
preset with two fields changed. Field ``foo_bar`` is flag ``--foo-bar``; booleans also get
``--no-foo-bar``; list fields take several values (``--data DIR1 DIR2``).
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from frb.models import MODELS, SCALES, get_spec

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TRAIN_SETS = ("T91", "BSD200", "BSDS500_test200")


def _opt(default: Any, help: str) -> Any:
    """A dataclass field with its command-line help text (lists get a default factory)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    model: str = _opt("srresnet", "public model name: " + ", ".join(n for n, s in MODELS.items() if s.needs_weights))
    scale: int = _opt(4, "upscaling factor (2, 3 or 4)")
    num_block: int = _opt(0, "residual blocks (SRResNet) or RSTBs (SwinIR); 0 = the architecture's default")
    srb: bool = _opt(True, "FRB only: second-order residual binarization (off = first-order vanilla weights)")
    dbt: bool = _opt(False, "distillation-guided binarization training from the frozen --teacher")
    dbt_weight: float = _opt(1.0, "lambda in loss = L1 + lambda * loss_dbt")
    teacher: str = _opt("", "full-precision safetensors weights: initialise a binary student, DBT teacher")
    init: str = _opt("", "start from these safetensors weights, tensor by tensor where name and shape match "
                         "(another scale's upsampler keeps its initialisation); a binary student takes them "
                         "over its teacher's")
    data: list[str] = _opt([str(SHARED_DATA / "train" / s) for s in TRAIN_SETS], "folders of HR training images")
    holdout_every: int = _opt(0, "keep about 1 in N training images out of training, chosen by a hash of their "
                                 "names (train.data.held_out), for validation (0 = train on all)")
    val_data: str = _opt(str(SHARED_DATA / "benchmark" / "Set5" / "HR"), "HR folder for validation ('' = none)")
    lr_patch: int = _opt(48, "LR patch side; HR crops are lr_patch * scale")
    batch: int = _opt(16, "global batch size, split evenly over distributed ranks")
    lr: float = _opt(2e-4, "peak Adam learning rate")
    latent_lr_scale: float = _opt(1.0, "binary layers' latent weights train at lr * latent_lr_scale")
    min_lr: float = _opt(1e-7, "cosine: final learning rate (scaled like the peak for latent weights)")
    warmup_steps: int = _opt(0, "linear warm-up from lr / warmup_steps to lr")
    schedule: str = _opt("cosine", "cosine or multistep")
    milestones: list[float] = _opt([0.5, 0.8, 0.9, 0.95], "multistep: fractions of the steps where lr *= gamma")
    gamma: float = _opt(0.5, "multistep: decay factor")
    steps: int = _opt(300_000, "optimizer steps in the whole run (the schedule spans them)")
    ema: float = _opt(0.999, "EMA decay of exported weights (0 = off)")
    seed: int = _opt(0, "seed of the model initialisation and of the data (each rank adds its rank)")
    bf16: bool = _opt(True, "bf16 autocast of forward passes")
    channels_last: bool = _opt(True, "channels-last memory format")
    compile: bool = _opt(False, "torch.compile the model and the DBT teacher (CPU: inductor with the system C compiler)")
    device: str = _opt("", "cpu, cuda, ...; default cuda when available (cuda:LOCAL_RANK under torchrun)")
    val_every: int = _opt(5000, "validate every N steps and at the end (0 = only at the end)")
    save_every: int = _opt(1000, "write the resumable checkpoint every N steps")
    checkpoint_minutes: float = _opt(0.0, "also write it whenever this many minutes passed since the last one (0 = off)")
    log_every: int = _opt(100, "append a row to <out_dir>/log.csv every N steps")
    out_dir: str = _opt("", "output folder; default runs/<model>_x<scale>[_nosrb][_nodbt]")
    max_minutes: float = _opt(0.0, "stop cleanly and save after this many minutes (0 = no limit)")
    stop_at: int = _opt(0, "stop cleanly and save after this step, e.g. to split a run (0 = run to steps)")
    resume: bool = _opt(False, "continue from <out_dir>/last.pt")
    start_step: int = _opt(0, "a new run that takes up a schedule at this step from --init weights whose "
                              "checkpoint was lost: lr schedule and IR-Net's progress go on from there, Adam's "
                              "moments start anew, so the lr ramps back up over its first REWARM_STEPS steps")

    def __post_init__(self) -> None:
        spec = get_spec(self.model)
        if not spec.needs_weights:
            raise ValueError(f"{self.model} has nothing to train")
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {self.scale}")
        if self.schedule not in ("cosine", "multistep"):
            raise ValueError(f"schedule must be cosine or multistep, got {self.schedule!r}")
        if not self.srb and spec.method != "frb":
            raise ValueError("--no-srb applies to the FRB models (frbc, frbt) only")
        if self.dbt and not spec.binary:
            raise ValueError(f"DBT trains a binarized student; {self.model} is full precision")
        if self.dbt and not self.teacher:
            raise ValueError("DBT needs --teacher (full-precision weights of the same architecture)")
        if not 0 <= self.start_step < self.steps:
            raise ValueError(f"--start-step {self.start_step} must lie in [0, --steps {self.steps})")
        if self.start_step and not self.init:
            raise ValueError("--start-step takes up a schedule from trained weights: give them with --init")
        if not self.out_dir:
            suffix = "" if self.srb else "_nosrb"
            if self.dbt != (spec.method == "frb"):  # DBT is on by default for FRB only
                suffix += "_dbt" if self.dbt else "_nodbt"
            self.out_dir = f"runs/{self.model}_x{self.scale}{suffix}"


def preset(model: str, scale: int = 4) -> dict[str, Any]:
    """Per-model defaults, on top of the dataclass defaults.

    * The backbone's recipe (``BackboneSpec.recipe``): SRResNet and its binary twins take BasicSR's
      MSRResNet recipe (batch 16, Adam 2e-4, cosine), SwinIR-S and FRBT SwinIR's lightweight one
      (batch 64, LR patch 64, multistep halving).
    * Binary students start from the full-precision model of their backbone (the export of its
      default run) and warm up for 2000 steps, with latent weights at half the peak lr: a CPU probe
      from the teacher at lr 2e-4 cosine without warm-up collapsed to 14.7 dB by step 1000.
    * FRBC / FRBT add DBT.
    """
    spec = get_spec(model)
    values: dict[str, Any] = dict(spec.backbone.recipe)
    if spec.binary:
        stem = f"{spec.teacher}_x{scale}"
        values.update(teacher=f"runs/{stem}/{stem}.safetensors", warmup_steps=2000, latent_lr_scale=0.5)
    if spec.method == "frb":
        values.update(dbt=True)
    return values


def _flag_type(f: dataclasses.Field) -> dict[str, Any]:
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    if kind == "bool":
        return {"action": argparse.BooleanOptionalAction}
    if kind.startswith("list["):
        return {"nargs": "+", "type": str if kind == "list[str]" else float}
    return {"type": {"int": int, "float": float, "str": str}[kind]}


def build_parser() -> argparse.ArgumentParser:
    """argparse flags generated from the TrainConfig fields (defaults None = keep the preset)."""
    parser = argparse.ArgumentParser(
        prog="python -m train",
        description="Train a (binarized) SR model; flags left out keep the model's preset.",
    )
    for f in fields(TrainConfig):
        parser.add_argument("--" + f.name.replace("_", "-"), default=None, help=f.metadata["help"], **_flag_type(f))
    return parser


def config_from_args(argv: list[str] | None = None) -> TrainConfig:
    """Preset of --model / --scale, then every flag that was given."""
    parser = build_parser()
    given = {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}
    try:
        return TrainConfig(**{**preset(given.get("model", TrainConfig.model), given.get("scale", TrainConfig.scale)), **given})
    except ValueError as exc:
        parser.error(str(exc))
