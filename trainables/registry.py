"""Trainables by name: the only way the orchestrator reaches the science."""
from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

from .api import Reporter, TrainableDef

_REGISTRY: dict[str, TrainableDef] = {}


def register(definition: TrainableDef) -> TrainableDef:
    _REGISTRY[definition.name] = definition
    return definition


def get_trainable(name: str) -> TrainableDef:
    """The trainable registered as ``name``; KeyError names the known ones."""
    _load_builtin()
    if name not in _REGISTRY:
        raise KeyError(f"unknown trainable {name!r}; expected one of {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def trainable_names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def _load_builtin() -> None:
    """Import the built-in trainables lazily so that importing the registry stays cheap."""
    from . import incontext, synthetic, template  # noqa: F401  (each registers itself)


def deferred_train(module: str) -> Callable[[dict[str, Any], Reporter], None]:
    """``module``'s ``train``, imported at the first call: registering a trainable, and so validating a spec,
    must not import torch (seconds and ~300 MB that a driver or ``scalesweep validate`` never uses)."""

    def train(config: dict[str, Any], report: Reporter) -> None:
        import_module(module).train(config, report)

    return train
