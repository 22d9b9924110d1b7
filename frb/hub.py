"""Trained weights: where they come from, checked by sha256, and how they are published.

Resolution order for a model name and scale (``resolve``):

1. bundled: ``assets/weights/<file>`` of this checkout (the offline default);
2. the local Hugging Face cache of the Hub repository (no network);
3. ``hf_hub_download`` from the Hub repository, unless ``HF_HUB_OFFLINE`` is set.

The repository id comes from the ``repo_id`` argument, else ``$FRB_HUB_REPO_ID``, else
``DEFAULT_REPO_ID``; the revision from ``revision``, ``$FRB_HUB_REVISION``, the commit the
manifest is pinned to (``hub_pin``, written by ``push``; ignored once a newer file ships), or
``DEFAULT_REVISION``. ``assets/weights/manifest.json`` lists every shipped file with its
sha256; a file whose checksum differs is refused and the next source tried. Nothing is ever
unpickled: full-precision models are safetensors state dicts, binary models the packed format of
``frb.bitwise.export``.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_REPO_ID = "frb-sr/frb-sr-weights"
DEFAULT_REVISION = "main"
REPO_ID_ENV = "FRB_HUB_REPO_ID"
REVISION_ENV = "FRB_HUB_REVISION"
ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets" / "weights"
MANIFEST_NAME = "manifest.json"
#: The manifest key that pins the Hub commit the weights were published at (written by ``push``).
PIN_KEY = "hub_pin"


class WeightsError(ValueError):
    """No usable weights for a model: the message says what was tried and what to do."""


#: How each ``Resolved.source`` is shown to people.
SOURCE_LABELS = {"bundled": "bundled", "hub-cache": "Hub", "hub": "Hub", "file": "file", "builtin": "none needed",
                 "random": "random", "none": "none"}


@dataclass(frozen=True)
class Resolved:
    """Where one model's weights came from. ``source``: "bundled", "hub-cache", "hub", "file" (a path
    given by the caller), "builtin" (a model without parameters), "random" (none found; a seeded
    random model was asked for) or "none"."""

    name: str
    scale: int
    source: str
    path: Path | None
    entry: dict
    notices: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return SOURCE_LABELS[self.source]

    @property
    def size_bytes(self) -> int | None:
        return self.path.stat().st_size if self.path is not None else None


def repo_id(explicit: str | None = None) -> str:
    return explicit or os.environ.get(REPO_ID_ENV) or DEFAULT_REPO_ID


def revision(explicit: str | None = None, repo: str | None = None, assets: Path | None = None) -> str:
    """The Hub revision to download from: ``explicit``, else ``$FRB_HUB_REVISION``, else the commit the
    manifest is pinned to (:func:`pinned_revision`, when it pins ``repo``), else ``DEFAULT_REVISION``."""
    return explicit or os.environ.get(REVISION_ENV) or pinned_revision(repo_id(repo), assets) or DEFAULT_REVISION


def _assets(assets: Path | None) -> Path:
    """The weights folder: the given one, else the module's ASSETS_DIR (read at call time)."""
    return Path(assets) if assets is not None else ASSETS_DIR


def read_manifest(assets: Path | None = None) -> list[dict]:
    """The manifest's model entries; [] when there is no manifest."""
    path = _assets(assets) / MANIFEST_NAME
    if not path.is_file():
        return []
    try:
        models = json.loads(path.read_text(encoding="utf-8"))["models"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"{path} is not a valid weights manifest ({exc})") from None
    return [m for m in models if isinstance(m, dict) and {"name", "scale", "file", "sha256"} <= m.keys()]


def manifest_entry(name: str, scale: int, assets: Path | None = None) -> dict | None:
    for entry in read_manifest(assets):
        if entry["name"] == name and int(entry["scale"]) == scale:
            return entry
    return None


def files_digest(entries: list[dict]) -> str:
    """A sha256 over the manifest's (file, sha256) pairs: what a Hub commit must hold to serve them."""
    return hashlib.sha256("\n".join(sorted(f"{e['file']} {e['sha256']}" for e in entries)).encode()).hexdigest()


def read_pin(assets: Path | None = None) -> dict | None:
    """The manifest's ``hub_pin``: ``{"repo_id", "revision", "files_sha256"}`` written by :func:`push`."""
    path = _assets(assets) / MANIFEST_NAME
    if not path.is_file():
        return None
    pin = json.loads(path.read_text(encoding="utf-8")).get(PIN_KEY)
    return pin if isinstance(pin, dict) and {"repo_id", "revision", "files_sha256"} <= pin.keys() else None


def pinned_revision(repo: str, assets: Path | None = None) -> str | None:
    """The Hub commit the manifest was published at, if it is for ``repo`` and still current: a weights
    file shipped after the push (its sha256 changed the manifest) makes the pin stale, and then None."""
    pin = read_pin(assets)
    if pin is None or pin["repo_id"] != repo or pin["files_sha256"] != files_digest(read_manifest(assets)):
        return None
    return pin["revision"]


def shipped_scales(name: str | None = None, assets: Path | None = None) -> tuple[int, ...]:
    """The scales with an entry in the manifest: for the model ``name``, or for any model."""
    return tuple(sorted({int(e["scale"]) for e in read_manifest(assets) if name is None or e["name"] == name}))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hub_file(entry: dict, repo: str, rev: str, local_only: bool) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo, entry["file"], revision=rev, local_files_only=local_only))


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def resolve(
    name: str,
    scale: int,
    repo: str | None = None,
    rev: str | None = None,
    assets: Path | None = None,
    local_files_only: bool = False,
) -> Resolved:
    """Find verified weights for ``name`` at ``scale``; never raises for a missing or bad file.

    ``local_files_only`` (or ``HF_HUB_OFFLINE``) skips the download: bundled and cached copies only.
    """
    assets = _assets(assets)
    entry = manifest_entry(name, scale, assets)
    if entry is None:
        return Resolved(name, scale, "none", None, {}, (f"no trained weights bundled for {name} x{scale}",))
    repo, rev = repo_id(repo), revision(rev, repo, assets)
    notices: list[str] = []

    def verified(path: Path, where: str) -> bool:
        if sha256_file(path) == entry["sha256"].lower():
            return True
        notices.append(f"{where} copy of {entry['file']} fails its sha256 check and was refused")
        return False

    bundled = Path(assets) / entry["file"]
    if bundled.is_file() and verified(bundled, "bundled"):
        return Resolved(name, scale, "bundled", bundled, entry, tuple(notices))
    offline = local_files_only or _offline()
    attempts = [("hub-cache", True)] + ([] if offline else [("hub", False)])
    for source, local_only in attempts:
        try:
            path = _hub_file(entry, repo, rev, local_only)
        except Exception as exc:  # network, missing cache entry, unknown repo: all mean "not here"
            if not local_only:
                notices.append(f"could not download {entry['file']} from {repo}@{rev}: {type(exc).__name__}")
            continue
        if verified(path, "Hub"):
            return Resolved(name, scale, source, path, entry, tuple(notices))
    if offline:
        notices.append(f"{entry['file']} is neither bundled nor in the Hugging Face cache (offline mode)")
    return Resolved(name, scale, "none", None, entry, tuple(notices))


MODEL_CARD_BODY = """# frb-sr weights

Weights of the frb-sr project (Flexible Residual Binarization, Zhang, Qin et al., ICML 2024, and the
binarization methods it is compared with, on SRResNet and SwinIR-S). Full-precision models are
safetensors state dicts; binary models use frb-sr's packed format (sign bits and per-channel scales,
no latent weights). `manifest.json` lists every file with its sha256, training summary and measured
PSNR/SSIM (Y channel, border crop = scale, MATLAB-style bicubic LR).

Training data: T91, BSD200 and BSDS500-test200 (no DIV2K); the compute column is what each model got.

| model | scale | file | Set5 | Set14 | B100 | compute |
|---|---|---|---|---|---|---|
{rows}
"""
BENCHMARKS = ("Set5", "Set14", "B100")


def compute_used(entry: dict) -> str:
    """The compute in a manifest entry's ledger, e.g. '12,400 steps (198,400 samples), 3.1 h on CPU (6.0 CPU-h), 2 runs'."""
    from frb.ledger import describe, ledger_total

    runs = (entry.get("ledger") or {}).get("runs") or []
    return describe(ledger_total(runs)) if runs else "-"


def model_card(entries: list[dict]) -> str:
    """The weights repository's README: ``huggingface_hub.ModelCard`` metadata with one ``EvalResult``
    per model, scale, benchmark and metric (so the Hub shows the scores), and a table with the compute."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    rows, results = [], []
    for e in entries:
        metrics = e.get("metrics", {})
        scores = [f"{metrics[s]['psnr']:.2f} / {metrics[s]['ssim']:.4f}" if s in metrics else "-" for s in BENCHMARKS]
        rows.append(f"| {e['name']} | x{e['scale']} | {e['file']} | {' | '.join(scores)} | {compute_used(e)} |")
        for bench in (b for b in BENCHMARKS if b in metrics):
            for metric in ("psnr", "ssim"):
                results.append(EvalResult(
                    task_type="image-to-image", task_name=f"Image super-resolution x{e['scale']}",
                    dataset_type=bench.lower(), dataset_name=bench, metric_type=metric,
                    metric_name=f"{e['name']} x{e['scale']} {metric.upper()} (Y, border {e['scale']})",
                    metric_value=round(float(metrics[bench][metric]), 4 if metric == "ssim" else 2),
                ))
    data = ModelCardData(
        library_name="pytorch", license="mit", tags=["super-resolution", "binary-neural-network", "frb"],
        model_name="frb-sr", eval_results=results or None,
    )
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n" + MODEL_CARD_BODY.format(rows="\n".join(rows))))


def push(repo: str | None = None, assets: Path | None = None, token: str | None = None) -> str:
    """Publish ``assets`` (weights, manifest, model card) to a Hub model repo; returns the commit id and
    pins it in the local manifest (``hub_pin``), so that this checkout downloads exactly that commit."""
    from huggingface_hub import HfApi

    assets = _assets(assets)
    entries = read_manifest(assets)
    if not entries:
        raise WeightsError(f"nothing to publish: {Path(assets) / MANIFEST_NAME} lists no weights")
    for e in entries:
        path = Path(assets) / e["file"]
        if not path.is_file() or sha256_file(path) != e["sha256"]:
            raise WeightsError(f"{path} is missing or does not match its manifest sha256")
    (Path(assets) / "README.md").write_text(model_card(entries), encoding="utf-8")
    api = HfApi(token=token)
    target = repo_id(repo)
    api.create_repo(target, repo_type="model", exist_ok=True)
    info = api.upload_folder(repo_id=target, folder_path=str(assets), commit_message="Upload frb-sr weights")
    path = Path(assets) / MANIFEST_NAME
    data = json.loads(path.read_text(encoding="utf-8"))
    data[PIN_KEY] = {"repo_id": target, "revision": info.oid, "files_sha256": files_digest(entries)}
    tmp = path.with_suffix(".json.partial")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return info.oid
