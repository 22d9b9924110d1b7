"""The training campaign: ``python -m train.campaign --hours H``, compute that accumulates across runs.

Model quality here comes from many CPU sessions of a few hours, each of which may be killed at
any second. The driver reads the plan (``train/plan.toml``: stages in order of value) and, until
its budget is spent:

1. picks the first stage that is not finished and whose teacher is shipped;
2. trains it for one chunk with ``train.loop.train``: resumed bit-exactly from the stage's
   ``last.pt`` (written atomically every ``checkpoint_minutes``), or, for a new stage, warm-started
   from the best weights known for the model: the export of an earlier stage of the same model and
   scale, else the shipped file (a packed binary file gives its latent weights back as
   W = sum_i alpha_i B_i); an x2 stage with ``start = "x4-body"`` and no earlier x2 stage takes
   what fits of the x4 model's weights instead (a binary student its binary body, over the x2
   teacher's head and tail; a full-precision model every x4 tensor that fits at x2, over its own
   best x2 weights);
   ``start = "teacher"`` starts from the teacher alone (ablations);
3. ships the run's weights the way ``train.release`` does into a candidate file, scores it on the
   images held out of the training folders (``holdout_every``; never a reported benchmark) and
   replaces the shipped file only when the candidate scores higher (and, for a binarized model,
   the packed engine users run scores it on Set5 as the torch backend does, to
   ``frb.evaluate.BACKEND_AGREEMENT_DB``); then scores the new shipped file on Set5 / Set14 / B100
   and writes its manifest entry, compute ledger included;
4. marks the stage finished when its schedule is done. A stage with ``ship = false`` (the paper's
   ablation) never replaces a shipped file: when it finishes, its packed weights are scored on the
   benchmarks and bundled under ``assets/weights/ablation`` (``frb.ablation``).

A **recipe sweep** is a stage with ``sweep = [models]`` instead of ``model``: every flag given as a
list is a grid axis, and each model gets one short trial per point of the grid (``steps`` each,
all from the sweep's ``start``: the model's best known weights, or its teacher alone for a sweep
that tunes what matters from the teacher, such as the DBT weight of the ablation), never shipped
and scored on the held-out images only. A later stage with ``recipe = "<sweep name>"`` takes the
swept flags of its model's best trial; the choice is made once, when the stage starts, and kept
in its ``recipe.json``. The models of one sweep are tuned alike: same grid, same steps, same
start rule.

Run state lives outside the repository, in ``--runs`` (default ``$FRB_RUNS_DIR`` or
``~/.cache/frb-sr/runs``): one folder per stage with ``last.pt``, ``log.csv``, the export, the
teacher it learns from and ``stage.json`` (chunks, validation history, what was shipped). One
driver at a time holds ``campaign.lock``.

What the campaign *learned* also goes beside the shipped weights, in
``assets/weights/campaign_journal.json`` (committed with them): every stage's record and every
recipe choice. On a machine whose run folder is gone, the driver reads the journal: finished
stages and sweeps stay finished, a chosen recipe stays chosen, and a stage that was under way is
taken up from its shipped weights at the step they reached (``--start-step``: the same schedule
from there, with fresh Adam moments) instead of being trained again.
"""
from __future__ import annotations

import argparse
import fcntl
import itertools
import json
import os
import shutil
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from frb import hub
from frb.ablation import ablation_dir
from frb.binarize import channel_mean_abs
from frb.bitwise.export import FORMAT as PACKED_FORMAT
from frb.evaluate import (
    BACKEND_AGREEMENT_DB, Pair, default_data_dirs, evaluate_model, evaluate_pairs, image_files, load_pairs, set_name,
    weights_file_name,
)
from frb.imaging import load_image, make_lr
from frb.layers import binary_layers
from frb.ledger import describe, ledger_total, segment_from_summary
from frb.models import create_model, get_spec
from frb.models.pretrained import weights_metadata
from train.checkpoint import copy_file, write_json
from train.data import held_out
from train.loop import TrainingDiverged, train
from train.presets import TrainConfig, config_from_args
from train.release import keep_ablation, manifest_entry, ship, write_manifest

PLAN = Path(__file__).resolve().parent / "plan.toml"
STAGE_KEYS = ("name", "model", "scale", "steps", "start", "ship", "sweep", "recipe")
STARTS = ("best", "x4-body", "teacher")
JOURNAL_NAME = "campaign_journal.json"
EVAL_RESERVE_MINUTES = 6.0  # left at the end of the budget for validating, shipping and scoring
MIN_CHUNK_MINUTES = 3.0
CURVE_SET = "Set5"  # scored after every chunk for the learning curves (reported, never used to choose)


def default_runs_dir() -> Path:
    return Path(os.environ.get("FRB_RUNS_DIR") or Path.home() / ".cache" / "frb-sr" / "runs")


# --------------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One cosine schedule of one model: ``steps`` steps with ``flags`` on top of its preset.

    A trial of a recipe sweep names its ``sweep`` and the ``grid`` values it tries (also in
    ``flags``); a stage with a ``recipe`` takes the swept flags of that sweep's best trial.
    """

    name: str
    model: str
    scale: int
    steps: int
    start: str = "best"
    ship: bool = True
    flags: dict[str, Any] = field(default_factory=dict)
    sweep: str = ""
    grid: dict[str, Any] = field(default_factory=dict)
    recipe: str = ""

    @property
    def teacher(self) -> str | None:
        return get_spec(self.model).teacher


@dataclass(frozen=True)
class Plan:
    settings: dict[str, Any]
    stages: list[Stage]


def _is_trial_for(trial: Stage, stage: Stage) -> bool:
    """Whether ``trial`` is a trial of ``stage``'s recipe sweep for its model and scale."""
    return bool(stage.recipe) and trial.sweep == stage.recipe and (trial.model, trial.scale) == (stage.model, stage.scale)


def _sweep_trials(entry: dict[str, Any], flags: dict[str, Any], path: Path) -> list[Stage]:
    """The trial stages of a sweep entry: one per model and point of the grid (list-valued flags)."""
    axes = [k for k, v in flags.items() if isinstance(v, list)]
    if not axes or not entry["sweep"]:
        raise ValueError(f"{path}: sweep {entry['name']!r} needs models and at least one flag with a list of values")
    fixed = {k: v for k, v in flags.items() if k not in axes}
    trials = []
    for model in entry["sweep"]:
        for values in itertools.product(*(flags[k] for k in axes)):
            grid = dict(zip(axes, values))
            name = f"{entry['name']}.{model}." + ",".join(f"{k}={v}" for k, v in grid.items())
            trials.append(Stage(name, model, int(entry["scale"]), int(entry["steps"]), entry.get("start", "best"), False,
                                {**fixed, **grid}, sweep=entry["name"], grid=grid))
    return trials


def load_plan(path: Path = PLAN) -> Plan:
    """Parse and check a plan file: unknown flags, models, starts, recipes and duplicate names are errors."""
    raw = tomllib.loads(Path(path).read_text())
    settings = raw.get("settings", {})
    stages: list[Stage] = []
    names: set[str] = set()
    valid_flags = set(TrainConfig.__dataclass_fields__)
    for entry in raw.get("stage", []):
        flags = {k: v for k, v in entry.items() if k not in STAGE_KEYS}
        unknown = sorted(set(flags) - valid_flags)
        if unknown:
            raise ValueError(f"{path}: stage {entry.get('name')!r} has unknown flags {unknown}")
        if "sweep" in entry:
            new = _sweep_trials(entry, flags, path)
        else:
            new = [Stage(entry["name"], entry["model"], int(entry["scale"]), int(entry["steps"]),
                         entry.get("start", "best"), bool(entry.get("ship", True)), flags, recipe=entry.get("recipe", ""))]
        for stage in new:
            get_spec(stage.model)
            if stage.start not in STARTS:
                raise ValueError(f"{path}: stage {stage.name!r}: start must be one of {STARTS}")
            if stage.name in names:
                raise ValueError(f"{path}: stage name {stage.name!r} appears twice")
            if stage.recipe and not any(_is_trial_for(t, stage) for t in stages):
                raise ValueError(f"{path}: stage {stage.name!r}: no earlier sweep {stage.recipe!r} tries "
                                 f"{stage.model} x{stage.scale}")
            names.add(stage.name)
            stages.append(stage)
    return Plan(settings, stages)


def _flags(values: dict[str, Any]) -> list[str]:
    """``{"lr": 2e-4, "dbt": False, "data": [a, b]}`` -> ``--lr 0.0002 --no-dbt --data a b``."""
    out: list[str] = []
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            out.append(flag if value else "--no-" + key.replace("_", "-"))
        elif isinstance(value, list):
            out += [flag, *map(str, value)]
        else:
            out += [flag, str(value)]
    return out


# --------------------------------------------------------------------------------------------
# Stage state
# --------------------------------------------------------------------------------------------


class Campaign:
    """A plan, its run folder and the shipped weights it improves."""

    def __init__(self, plan: Plan, runs: Path, assets: Path, data: list[str] | None = None,
                 benchmarks: list[Path] | None = None, device: str = "cpu") -> None:
        self.plan, self.runs, self.assets = plan, Path(runs), Path(assets)
        self.data = data or TrainConfig.__dataclass_fields__["data"].default_factory()
        self.benchmarks = benchmarks if benchmarks is not None else default_data_dirs()
        self.device = device
        self.holdout_every = int(plan.settings.get("holdout_every", 40))
        self._pairs: dict[int, list[Pair]] = {}

    # -- paths and records ---------------------------------------------------------------

    def folder(self, stage: Stage) -> Path:
        return self.runs / stage.name

    def export(self, stage: Stage) -> Path:
        return self.folder(stage) / weights_file_name(stage.model, stage.scale)

    def record(self, stage: Stage) -> dict[str, Any]:
        """The stage's ``stage.json``, else its record in the journal (run folder lost), else a new one."""
        path = self.folder(stage) / "stage.json"
        if path.is_file():
            return json.loads(path.read_text())
        return self.journal()["stages"].get(stage.name) or {"finished": False, "chunks": []}

    def save_record(self, stage: Stage, record: dict[str, Any]) -> None:
        write_json(self.folder(stage) / "stage.json", record)
        self._journal_put("stages", stage.name, record)

    def journal(self) -> dict[str, dict[str, Any]]:
        """``assets/weights/campaign_journal.json``: every stage's record and recipe choice by name."""
        path = self.assets / JOURNAL_NAME
        journal = json.loads(path.read_text()) if path.is_file() else {}
        return {"stages": journal.get("stages", {}), "recipes": journal.get("recipes", {})}

    def _journal_put(self, part: str, name: str, value: dict[str, Any]) -> None:
        journal = self.journal()
        journal[part][name] = value
        self.assets.mkdir(parents=True, exist_ok=True)
        write_json(self.assets / JOURNAL_NAME, journal)

    def redo(self, names: list[str]) -> list[str]:
        """Forget what stages did so that the next run trains them again (e.g. after a fix that makes
        their results stale): their run folders, records and recipe choices go, here and in the
        journal. ``names`` are stage names, sweep names (all their trials) or ``<sweep>.<model>``
        (``recipe_x4_others.bnn``: one model's trials).
        Refused for a stage that shipped weights (they stay shipped, with their ledger), an ablation
        stage whose result is bundled, and trials whose sweep already chose a later stage's recipe.
        Returns the stages forgotten."""
        def matches(stage: Stage, name: str) -> bool:
            return stage.name == name or bool(stage.sweep) and name in (stage.sweep, f"{stage.sweep}.{stage.model}")
        unknown = [n for n in names if not any(matches(s, n) for s in self.plan.stages)]
        if unknown:
            raise ValueError(f"no stage, sweep or <sweep>.<model> of the plan is named {', '.join(unknown)}")
        chosen = [s for s in self.plan.stages if any(matches(s, n) for n in names)]
        shipped = [s.name for s in chosen
                   if any(c.get("shipped") for c in self.record(s)["chunks"]) or self.shipped_segments(s)]
        if shipped:
            raise ValueError(f"{', '.join(shipped)} shipped weights and cannot be redone")
        bundled = [s.name for s in chosen if (ablation_dir(self.assets) / f"{s.name}.safetensors").exists()]
        if bundled:
            raise ValueError(f"{', '.join(bundled)} is bundled in {ablation_dir(self.assets)}: remove it and its "
                             "manifest entry first")
        for stage in self.plan.stages:
            choice = self.recipe_choice(stage) if stage.recipe and stage not in chosen else None
            if choice is not None and any(t.name == choice["trial"] for t in chosen):
                raise ValueError(f"{stage.name} already took its recipe from {choice['trial']}; redo it too or neither")
        journal = self.journal()
        for stage in chosen:
            if self.folder(stage).exists():
                shutil.rmtree(self.folder(stage))
            journal["stages"].pop(stage.name, None)
            journal["recipes"].pop(stage.name, None)
        write_json(self.assets / JOURNAL_NAME, journal)
        return [s.name for s in chosen]

    def shipped_path(self, name: str, scale: int) -> Path | None:
        entry = hub.manifest_entry(name, scale, self.assets)
        path = self.assets / entry["file"] if entry else None
        return path if path is not None and path.is_file() else None

    # -- choosing work --------------------------------------------------------------------

    def next_stage(self) -> Stage | None:
        """The first stage of the plan not finished whose teacher (if any) is shipped and whose recipe
        sweep (if any) has finished every trial of its model."""
        for stage in self.plan.stages:
            if self.record(stage)["finished"]:
                continue
            if stage.teacher and self.shipped_path(stage.teacher, stage.scale) is None:
                continue
            if not all(self.record(t)["finished"] for t in self.trials(stage)):
                continue
            return stage
        return None

    # -- recipes --------------------------------------------------------------------------

    def trials(self, stage: Stage) -> list[Stage]:
        """The trials of the stage's recipe sweep for its model and scale (none without a recipe)."""
        return [t for t in self.plan.stages if _is_trial_for(t, stage)]

    def recipe_choice(self, stage: Stage) -> dict[str, Any] | None:
        """The stage's ``recipe.json`` (sweep, trial, its held-out PSNR, flags), else the journal's copy;
        None before it starts."""
        path = self.folder(stage) / "recipe.json"
        return json.loads(path.read_text()) if path.is_file() else self.journal()["recipes"].get(stage.name)

    def choose_recipe(self, stage: Stage) -> dict[str, Any]:
        """The swept flags of the best finished trial (held-out PSNR), chosen once, when the stage
        starts, and kept in its ``recipe.json``; empty (the stage's own flags) if no trial scored."""
        choice = self.recipe_choice(stage)
        if choice is not None:
            return dict(choice["flags"])
        scored = []
        for trial in self.trials(stage):
            chunks = self.record(trial)["chunks"]
            if chunks:
                scored.append((chunks[-1]["held_out_psnr"], trial.name, trial.grid))
        best = max(scored, key=lambda item: item[0]) if scored else (None, None, {})
        choice = {"sweep": stage.recipe, "trial": best[1], "held_out_psnr": best[0], "flags": best[2]}
        write_json(self.folder(stage) / "recipe.json", choice)
        self._journal_put("recipes", stage.name, choice)
        return dict(best[2])

    def recipe(self, stage: Stage) -> dict[str, Any]:
        """The flags ``choose_recipe`` fixed for this stage (empty before it starts or without a recipe)."""
        choice = self.recipe_choice(stage)
        return dict(choice["flags"]) if choice is not None else {}

    # -- warm starts ----------------------------------------------------------------------

    def _earlier_stage(self, model: str, scale: int, before: Stage | None) -> Stage | None:
        """The latest stage before ``before`` (any, if None) of this model and scale that has an export."""
        found = None
        for stage in self.plan.stages:
            if stage == before:
                break
            if stage.model == model and stage.scale == scale and stage.ship and self.export(stage).is_file():
                found = stage
        return found

    def best_latent(self, model: str, scale: int, before: Stage | None) -> tuple[dict[str, torch.Tensor], list] | None:
        """Latent float weights and ledger of the best known weights of a model, or None.

        An earlier stage's export (latent weights, more than a packed file keeps) unless its last
        held-out score was below the shipped file's; then the shipped file.
        """
        earlier = self._earlier_stage(model, scale, before)
        shipped = self.shipped_path(model, scale)
        if earlier is not None:
            chunks = self.record(earlier)["chunks"]
            score = chunks[-1]["held_out_psnr"] if chunks else None
            if shipped is None or score is None or score >= round(self.shipped_score(model, scale), 4):
                summary = self.folder(earlier) / "summary.json"
                ledger = json.loads(summary.read_text()).get("ledger", []) if summary.is_file() else []
                return load_file(str(self.export(earlier))), ledger
        return self.shipped_latent(model, scale)

    def shipped_latent(self, model: str, scale: int) -> tuple[dict[str, torch.Tensor], list] | None:
        """Latent float weights rebuilt from the shipped file and its ledger, or None if none is shipped."""
        shipped = self.shipped_path(model, scale)
        if shipped is None:
            return None
        teacher = get_spec(model).teacher
        teacher_path = self.shipped_path(teacher, scale) if teacher else None
        return (latent_from_shipped(shipped, model, scale, teacher_path),
                shipped_ledger(hub.manifest_entry(model, scale, self.assets)))

    def prepare(self, stage: Stage) -> tuple[list[str], list]:
        """Flags for the stage's teacher and warm start (files written into its folder once), and its ledger."""
        folder = self.folder(stage)
        folder.mkdir(parents=True, exist_ok=True)
        if stage.recipe:
            self.choose_recipe(stage)
        flags: list[str] = []
        if stage.teacher:
            teacher = folder / "teacher.safetensors"
            if not teacher.is_file():
                shutil.copyfile(self.shipped_path(stage.teacher, stage.scale), teacher)
            flags += ["--teacher", str(teacher)]
        init, ledger = folder / "init.safetensors", []
        ledger_file = folder / "init_ledger.json"
        if init.is_file():
            return flags + ["--init", str(init)], json.loads(ledger_file.read_text())
        start = None
        if self.taken_up_at(stage):  # run state lost: go on from what the stage shipped
            start = self.shipped_latent(stage.model, stage.scale)
        elif stage.start != "teacher":
            start = self.best_latent(stage.model, stage.scale, stage)
            if stage.start == "x4-body" and self._earlier_stage(stage.model, stage.scale, stage) is None:
                x4 = self.best_latent(stage.model, 4, None)
                if x4 is not None:
                    start = x4_start(stage, x4, start)
        if start is None:
            return flags, []
        tensors, ledger = start
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(init))
        write_json(ledger_file, ledger)
        return flags + ["--init", str(init)], ledger

    def shipped_segments(self, stage: Stage) -> list[dict[str, Any]]:
        """The ledger segments of the shipped file's lineage that this stage trained."""
        entry = hub.manifest_entry(stage.model, stage.scale, self.assets)
        return [seg for seg in shipped_ledger(entry) if seg.get("run") == stage.name]

    def taken_up_at(self, stage: Stage) -> int:
        """The step at which a stage under way whose checkpoint is gone (a new machine) goes on: the
        step its shipped weights reached (at most its last step, which is then trained again to close
        the stage); 0 for a stage with a checkpoint, not started, or that shipped nothing (it starts over)."""
        if stage.sweep or (self.folder(stage) / "last.pt").is_file() or not self.record(stage)["chunks"]:
            return 0
        return min(stage.steps - 1, max((seg["steps_to"] for seg in self.shipped_segments(stage)), default=0))

    def config(self, stage: Stage, minutes: float, start_flags: list[str]) -> TrainConfig:
        s = self.plan.settings
        base = {"model": stage.model, "scale": stage.scale, "steps": stage.steps, "batch": s.get("batch", 16),
                "lr_patch": s.get("lr_patch", 32), "ema": 0.0, "val_data": "", "val_every": 0,
                "save_every": 10**9, "log_every": 50, "checkpoint_minutes": s.get("checkpoint_minutes", 4),
                "holdout_every": self.holdout_every, "compile": s.get("compile", False), "device": self.device,
                "data": list(self.data), "out_dir": str(self.folder(stage)), "max_minutes": minutes,
                "resume": (self.folder(stage) / "last.pt").is_file(), "start_step": self.taken_up_at(stage)}
        return config_from_args(_flags({**base, **stage.flags, **self.recipe(stage)}) + start_flags)

    # -- validation and shipping ----------------------------------------------------------

    def validation_pairs(self, scale: int) -> list[Pair]:
        """The held-out training images as HR/LR pairs (the same set every session)."""
        if scale not in self._pairs:
            files = held_out(image_files(self.data), self.holdout_every)
            if not files:
                raise ValueError(f"holdout_every={self.holdout_every} holds out no image of {self.data}")
            self._pairs[scale] = [Pair(p.name, *make_lr(load_image(p), scale)) for p in files]
        return self._pairs[scale]

    def validate(self, model: torch.nn.Module, scale: int) -> float:
        """Y-PSNR of a model (loaded from a shipped-format file) on the held-out images."""
        return evaluate_pairs(model, self.validation_pairs(scale), scale, torch.device(self.device), ssim=False)["psnr"]

    def shipped_score(self, name: str, scale: int) -> float | None:
        """Held-out score of the shipped file, cached by its sha256 in ``<runs>/shipped_scores.json``."""
        path = self.shipped_path(name, scale)
        if path is None:
            return None
        cache_file = self.runs / "shipped_scores.json"
        cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
        key = f"{hub.sha256_file(path)}|holdout{self.holdout_every}"
        if key not in cache:
            cache[key] = self.validate(create_model(name, scale, pretrained=path), scale)
            write_json(cache_file, cache)
        return cache[key]

    def consider(self, stage: Stage, summary: dict[str, Any]) -> dict[str, Any]:
        """Ship the run's export as a candidate, validate it, and ship it if it beats the shipped file."""
        candidates = self.folder(stage) / "candidate"
        candidates.mkdir(exist_ok=True)
        options = {"second_order": False} if stage.flags.get("srb") is False else {}
        candidate = ship(stage.model, stage.scale, self.export(stage), candidates, **options)
        model = create_model(stage.model, stage.scale, pretrained=candidate)  # exactly what would ship
        score = self.validate(model, stage.scale)
        outcome = {"step": summary["steps"], "held_out_psnr": round(score, 4), "shipped": False}
        if stage.sweep:  # a recipe trial: the held-out score is all it is for
            return outcome
        curve = [b for b in self.benchmarks if set_name(b) == CURVE_SET]
        pairs = load_pairs(curve[0], stage.scale) if curve else []
        if pairs:  # a learning-curve point for the README; never used to choose what ships
            outcome[f"{CURVE_SET}_psnr"] = round(evaluate_pairs(model, pairs, stage.scale, torch.device(self.device), ssim=False)["psnr"], 4)
        validation = {"held_out_psnr": round(score, 4), "images": len(self.validation_pairs(stage.scale)),
                      "holdout_every": self.holdout_every}
        if not stage.ship:  # an ablation stage: bundled under assets/weights/ablation once finished
            if summary["finished"]:
                outcome["metrics"] = evaluate_model(model, self.benchmarks, stage.scale, torch.device(self.device))
                outcome["ledger"] = ledger_total(summary["ledger"])
                keep_ablation(stage.name, candidate, summary, outcome["metrics"], validation, self.assets)
            return outcome
        before = self.shipped_score(stage.model, stage.scale)
        outcome["shipped_held_out_psnr"] = None if before is None else round(before, 4)
        if before is not None and score <= before:
            return outcome
        refused = self.backends_disagree(model, stage, pairs, outcome.get(f"{CURVE_SET}_psnr"))
        if refused:
            outcome["refused"] = refused
            return outcome
        metrics = evaluate_model(model, self.benchmarks, stage.scale, torch.device(self.device))
        entry = manifest_entry(stage.model, stage.scale, candidate, summary, metrics)
        entry["validation"] = validation
        # the minutes of scoring are done before the shipped file changes: a kill between the two
        # writes below is the only way left to leave a file its manifest entry does not describe
        copy_file(candidate, self.assets / candidate.name)
        write_manifest(self.assets, [entry])
        outcome.update(shipped=True, metrics={k: round(v["psnr"], 3) for k, v in metrics.items()})
        return outcome

    def backends_disagree(self, model: torch.nn.Module, stage: Stage, pairs: list[Pair], torch_psnr: float | None) -> str:
        """Why a binarized candidate that validates better must not ship ('' when it may): the packed
        engine, which the app and ``frb upscale`` run, scores it on Set5 more than
        ``BACKEND_AGREEMENT_DB`` away from the torch backend (``torch_psnr``), which scores the
        manifest. Its output then hangs on float rounding, and no table could say what users get."""
        if not get_spec(stage.model).binary or torch_psnr is None:
            return ""
        engine = evaluate_pairs(model, pairs, stage.scale, torch.device("cpu"), ssim=False, backend="bitwise")["psnr"]
        if abs(engine - torch_psnr) <= BACKEND_AGREEMENT_DB:
            return ""
        return (f"the packed engine scores {engine:.3f} dB on {CURVE_SET}, the torch backend {torch_psnr:.3f}: "
                "its output hangs on float rounding")

    # -- one chunk ------------------------------------------------------------------------

    def run_chunk(self, stage: Stage, minutes: float, log=print) -> dict[str, Any]:
        start_flags, ledger = self.prepare(stage)
        cfg = self.config(stage, minutes, start_flags)
        action = ("resuming" if cfg.resume else f"taking up (run state lost) at step {cfg.start_step} of" if cfg.start_step
                  else "starting")
        log(f"{stage.name}: {action} {stage.model} x{stage.scale} for up to {minutes:.0f} min of its {stage.steps} steps")
        record = self.record(stage)
        try:
            result = train(cfg, ledger=ledger)
        except TrainingDiverged as exc:
            record.update(finished=True, failed=str(exc))
            self.save_record(stage, record)
            log(f"{stage.name}: {exc}; stage abandoned")
            return record
        outcome = self.consider(stage, result.summary)
        outcome["time"] = time.strftime("%Y-%m-%d %H:%M:%S")
        outcome["cpu_hours"] = ledger_total(result.summary["ledger"])["cpu_hours"]
        record["chunks"].append(outcome)
        record["finished"] = result.finished
        record["ledger"] = ledger_total(result.summary["ledger"])
        record["segments"] = [seg for seg in result.summary["ledger"] if seg.get("run") == stage.name]
        self.save_record(stage, record)
        if stage.sweep:
            verdict = ": a recipe trial, never shipped"
        else:
            result = ("shipped" if outcome["shipped"] else f"not shipped: {outcome['refused']}" if outcome.get("refused")
                      else "kept the shipped file")
            verdict = f"(shipped {outcome.get('shipped_held_out_psnr')}): {result}"
        log(f"{stage.name}: step {outcome['step']}/{stage.steps}, held-out {outcome['held_out_psnr']:.3f} dB "
            f"{verdict}; {describe(record['ledger'])}")
        return record

    def own_segments(self, stage: Stage) -> list[dict[str, Any]]:
        """The ledger segments the stage's own run added (not those of the weights it started from):
        from its run summary, else (run folder lost) its record, else the shipped file's lineage."""
        summary = self.folder(stage) / "summary.json"
        if summary.is_file():
            return [seg for seg in json.loads(summary.read_text()).get("ledger", []) if seg.get("run") == stage.name]
        return self.record(stage).get("segments") or self.shipped_segments(stage)

    def step_rate(self, stage: Stage) -> float | None:
        """Training steps per second of the stage's model and scale on this campaign's machines: its
        own ledger segments (wall time with pauses left out), else those of the latest other stage of
        the same model and scale; None before either has trained."""
        for other in [stage] + [s for s in reversed(self.plan.stages) if (s.model, s.scale) == (stage.model, stage.scale)]:
            own = [seg for seg in self.own_segments(other) if seg.get("seconds", 0) > 0]
            if own:
                return sum(seg["steps_to"] - seg["steps_from"] for seg in own) / sum(seg["seconds"] for seg in own)
        return None

    def status(self) -> list[str]:
        """One line per stage (state, step, held-out score, time left at its measured rate), then the
        time left of the whole plan."""
        lines, hours_left, unmeasured = [], 0.0, []
        for stage in self.plan.stages:
            record = self.record(stage)
            last = record["chunks"][-1] if record["chunks"] else None
            state = "finished" if record["finished"] else ("started" if last else "waiting")
            detail = f", step {last['step']}/{stage.steps}, held-out {last['held_out_psnr']:.3f} dB" if last else ""
            if not record["finished"]:
                rate = self.step_rate(stage)
                if rate is None:
                    unmeasured.append(stage.name)
                else:
                    left = (stage.steps - (last["step"] if last else 0)) / rate / 3600
                    hours_left += left
                    detail += f", ~{left:.1f} h left at {rate:.2f} steps/s"
            lines.append(f"{stage.name:22s} {state}{detail}")
        lines.append(f"left: ~{hours_left:.1f} h of training for the stages with a measured step rate"
                     + (f"; {len(unmeasured)} stage(s) not measured yet" if unmeasured else ""))
        return lines


# --------------------------------------------------------------------------------------------
# Weights helpers
# --------------------------------------------------------------------------------------------


def latent_from_shipped(path: Path, name: str, scale: int, teacher: Path | None = None) -> dict[str, torch.Tensor]:
    """Float32 latent weights from a shipped file: a float16 state dict as it is, a packed binary
    file with each binary layer's latent weight rebuilt by its weight quantizer from the stored
    bases (``WeightQuantizer.latent``: re-binarizing it gives back the same bases, so training
    resumes from what was shipped). For one basis that is W_b = alpha B itself; a learned scale
    that went negative, as BAM's gamma_c can, comes back as |gamma_c| times -B, the same W_b. FRB's
    two bases need a two-level latent, since W_b would not re-binarize into B1 where alpha2_c > alpha1_c.

    A quantizer without a scale (BNN's sign(W)) stores alpha = 1: latent weights of +/-1 sit
    about 2,500 Adam steps at lr 4e-4 from any sign flip (and its clipped gradient stops beyond
    1), so they would stay frozen. Those layers get instead B times the per-output-channel mean
    |W| of the same layer in ``teacher`` (the full-precision teacher's weights, the kind the
    student started from), which they then require.
    """
    meta = weights_metadata(path)
    if meta.get("format") == PACKED_FORMAT:
        shipped = create_model(name, scale, pretrained=path)
        model = create_model(name, scale, **json.loads(meta["method_options"]))
        model.load_state_dict(shipped.state_dict(), strict=False)
        stored = binary_layers(shipped)
        with torch.no_grad():
            for n, layer in binary_layers(model).items():
                layer.weight.copy_(layer.weight_quantizer.latent(stored[n].weight_quantizer.bases(layer.weight)))
        unscaled = {n: layer for n, layer in binary_layers(model).items() if not layer.weight_quantizer.scaled}
        if unscaled and teacher is None:
            raise ValueError(f"{Path(path).name}: {name}'s weights are sign(W) without a magnitude; rebuilding "
                             "its latent weights needs its teacher's weights")
        reference = load_file(str(teacher)) if unscaled else {}
        with torch.no_grad():
            for n, layer in unscaled.items():
                layer.weight.mul_(channel_mean_abs(reference[f"{n}.weight"].float()))
        for layer in binary_layers(model).values():  # e.g. BAM's learned scale, from W_b
            layer.reset_method_parameters()
        state = model.state_dict()
    else:
        state = load_file(str(path))
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def x4_start(stage: Stage, x4: tuple[dict[str, torch.Tensor], list],
             own: tuple[dict[str, torch.Tensor], list] | None) -> tuple[dict[str, torch.Tensor], list]:
    """The start (tensors, ledger) of an x2 stage with ``start = "x4-body"`` from its x4 twin's
    best weights ``x4``: a binary student takes the tensors of its binary layers alone (latent
    weights and method parameters), over the x2 teacher's head and tail; a full-precision model
    takes every x4 tensor whose name and shape it has at x2 (all but the upsampling layers whose
    shapes depend on the scale) over its own best x2 weights ``own``, and both ledgers."""
    model = create_model(stage.model, stage.scale)
    tensors, ledger = x4
    if get_spec(stage.model).binary:
        prefixes = tuple(f"{n}." for n in binary_layers(model))
        return {k: v for k, v in tensors.items() if k.startswith(prefixes)}, list(ledger)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    fits = {k: v for k, v in tensors.items() if shapes.get(k) == v.shape}
    if own is None:
        return fits, list(ledger)
    return {**own[0], **fits}, list(ledger) + [seg for seg in own[1] if seg not in ledger]


def shipped_ledger(entry: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The ledger behind a manifest entry (older entries: one segment from their training summary)."""
    if not entry:
        return []
    if "ledger" in entry:
        return list(entry["ledger"]["runs"])
    return [segment_from_summary(entry.get("training") or {}, f"{entry['name']}_x{entry['scale']}")]


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def add_campaign_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that say which campaign: its plan, run state, shipped weights, data and device."""
    parser.add_argument("--plan", default=str(PLAN))
    parser.add_argument("--runs", default=str(default_runs_dir()), help="run state (default $FRB_RUNS_DIR or ~/.cache/frb-sr/runs)")
    parser.add_argument("--assets", default=str(hub.ASSETS_DIR), help="shipped weights and their manifest")
    parser.add_argument("--data", nargs="+", help="training folders (default: the preset's); validation is held out of them")
    parser.add_argument("--benchmarks", nargs="+", help="HR folders scored after shipping (default Set5, Set14, B100)")
    parser.add_argument("--device", default="cpu")


def campaign_from_args(args: argparse.Namespace) -> Campaign:
    benchmarks = [Path(b) for b in args.benchmarks] if args.benchmarks else None
    return Campaign(load_plan(Path(args.plan)), Path(args.runs), Path(args.assets), args.data, benchmarks, args.device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.campaign", description=__doc__.splitlines()[0],
                                     epilog="The README's tables and learning curves: python -m train.report")
    parser.add_argument("--hours", type=float, help="wall-clock budget of this session of the campaign")
    add_campaign_arguments(parser)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--status", action="store_true", help="print every stage's progress and exit")
    action.add_argument("--redo", nargs="+", metavar="STAGE",
                        help="forget these stages (stage names, sweep names or <sweep>.<model>) so that they "
                             "train again; then --hours, if given")
    args = parser.parse_args(argv)
    campaign = campaign_from_args(args)
    if args.status:
        print("\n".join(campaign.status()))
        return 0
    if not args.hours and not args.redo:
        parser.error("--hours is required (or --status, --redo)")
    campaign.runs.mkdir(parents=True, exist_ok=True)
    with open(campaign.runs / "campaign.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"error: another campaign holds {campaign.runs / 'campaign.lock'}", file=sys.stderr)
            return 1
        if args.redo:
            try:
                forgotten = campaign.redo(args.redo)
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            print(f"forgotten, to be trained again: {', '.join(forgotten)}")
        return drive(campaign, args.hours) if args.hours else 0


def drive(campaign: Campaign, hours: float) -> int:
    """Chunks of the next stage until the budget (minus time to validate and ship) is spent."""
    deadline = time.time() + 3600 * hours
    chunk = float(campaign.plan.settings.get("chunk_minutes", 40))
    log = lambda msg: print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)
    while True:
        minutes = min(chunk, (deadline - time.time()) / 60 - EVAL_RESERVE_MINUTES)
        if minutes < MIN_CHUNK_MINUTES:
            log("budget spent")
            return 0
        stage = campaign.next_stage()
        if stage is None:
            log("every stage of the plan is finished (or waits for a teacher)")
            return 0
        campaign.run_chunk(stage, minutes, log)


if __name__ == "__main__":
    sys.exit(main())
