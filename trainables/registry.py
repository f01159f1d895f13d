"""Trainables by name: the only way the orchestrator reaches the science."""
from __future__ import annotations

from .api import TrainableDef

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
