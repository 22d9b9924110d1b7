"""Backbones: the contract a network meets to be binarized, distilled, tiled and trained, and their registry.

A backbone is an ``nn.Module`` class (SRResNet, SwinIR_S, bicubic) that implements
:class:`Backbone` and registers one :class:`BackboneSpec` in its own file, e.g. at the end of
``frb/models/srresnet.py``::

    register_backbone(BackboneSpec(name="srresnet", build=_build, teacher="srresnet", ...))

Everything that depends on the architecture reads the spec: ``create_model`` builds with
``spec.build``, a binarized model distils from ``spec.teacher``, training starts from
``spec.recipe``, kernel warm-up and tests use ``spec.tiny_depth``. Adding a backbone is one file
(the module, its Protocol methods, its spec) plus one import line in ``frb/models/registry.py``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from torch import Tensor, nn


@runtime_checkable
class Backbone(Protocol):
    """What ``frb.layers.binarize``, DBT distillation and tiling ask of a network.

    * ``scale``: the upscaling factor.
    * ``binary_layer_names()``: qualified names of the Conv2d / Linear layers a binarized twin
      makes binary (stride 1, groups 1 for convolutions).
    * ``activations_before_binary()``: activations directly in front of a binary layer that the
      twin must drop (under sign(0) = +1, sign(ReLU(x)) is +1 everywhere).
    * ``feature_blocks()``: the blocks whose outputs DBT aligns between student and teacher.
    * ``forward_distilled(x)``: the forward pass as far as the last feature block.
    * ``receptive_radius``: LR pixels of context an output pixel depends on (``None`` where the
      whole image is context, e.g. shifted-window attention); ``frb.tiling`` pads tiles by it.
    """

    scale: int

    def binary_layer_names(self) -> list[str]: ...

    def activations_before_binary(self) -> list[str]: ...

    def feature_blocks(self) -> list[nn.Module]: ...

    def forward_distilled(self, x: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class BackboneSpec:
    """One registered backbone.

    name: the architecture name public models refer to (``ModelSpec.arch``).
    build: ``build(scale, depth)`` -> a randomly initialised module; ``depth`` 0 is the published
        depth, a positive one shortens the body (residual blocks, RSTBs) for quick runs and tests.
    teacher: the public full-precision model a binarized twin starts from and distils from;
        ``None`` for a backbone without weights (bicubic).
    tiny_depth: the smallest depth that still holds every kind of layer (kernel warm-up, tests).
    recipe: training defaults (``train.presets`` fields) of the full-precision model and its
        binarized twins; empty for a backbone with nothing to train.
    suite_lr: the peak learning rate of its full-precision model in ``train.suite``'s short runs.
    """

    name: str
    build: Callable[[int, int], nn.Module]
    teacher: str | None
    tiny_depth: int = 1
    recipe: Mapping[str, Any] = field(default_factory=dict)
    suite_lr: float = 2e-4

    @property
    def has_weights(self) -> bool:
        """Whether models of this backbone have trained weights (bicubic has none)."""
        return self.teacher is not None


BACKBONES: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Add ``spec`` to :data:`BACKBONES` (a name registered twice is an error)."""
    if spec.name in BACKBONES:
        raise ValueError(f"backbone {spec.name!r} is already registered")
    BACKBONES[spec.name] = spec
    return spec


def get_backbone(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}") from None
