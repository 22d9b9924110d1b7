"""One shared, trained instance per model for the app and the command line (a cache over ``create_model``).

``shared_model(name, scale)`` builds ``create_model(name, scale, pretrained=True)`` once per process
and keeps it in eval mode without gradients, so every request and every image reuses it. A model
without usable weights (missing, failing its sha256 check, unreadable) comes back as ``None``
with the reason, so nothing shows a random network's output as a result; only an explicit
``allow_random=True`` (the CLI's ``--allow-random``) gives a seeded random model, with a notice.
"""
from __future__ import annotations

import threading

from torch import nn

from frb.hub import WeightsError
from frb.models import create_model

_lock = threading.Lock()
_cache: dict[tuple[str, int, bool], tuple[nn.Module | None, str]] = {}


def shared_model(name: str, scale: int, allow_random: bool = False) -> tuple[nn.Module | None, str]:
    """The model ``name`` at ``scale`` and a notice ("" when its trained weights loaded cleanly).

    ``(None, why)`` for an unknown name or scale and for a model without usable trained weights
    unless ``allow_random``. Where it came from: ``model.weights_origin``.
    """
    key = (name, scale, allow_random)
    with _lock:
        if key not in _cache:
            try:
                model = create_model(name, scale, pretrained=True, on_missing="random" if allow_random else "error")
            except ValueError as exc:  # WeightsError, PackedFileError, unknown name or scale
                return None, str(exc)
            _cache[key] = (model.requires_grad_(False), "; ".join(model.weights_origin.notices))
        return _cache[key]


__all__ = ["WeightsError", "shared_model"]
