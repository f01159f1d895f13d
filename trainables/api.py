"""The contract between a trainable and whoever runs it (Ray Tune, the CLI, tests).

A trainable is a plain function ``train(config, report)``; everything the orchestrator needs to
know about it *before* Ray starts (which keys it accepts, which metrics it reports and in which
direction they improve) lives on its :class:`TrainableDef`, so a bad spec fails in milliseconds.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Mode = Literal["min", "max"]
StateFn = Callable[[], dict[str, Any]]


class ConfigError(ValueError):
    """A config key is unknown or has a bad value; the message names the key and what was expected."""

    def __init__(self, key: str, expected: str) -> None:
        super().__init__(f"{key}: {expected}")
        self.key = key
        self.expected = expected


class Reporter:
    """Receives one report per evaluation and may persist checkpoints.

    ``report(metrics, state)``: ``metrics`` holds ``epoch``, the mean over members of every declared
    metric, ``seed_metrics`` ({metric: [value per member]}) and ``diverged`` ([bool per member]);
    ``state`` is a zero-argument callable returning the whole training state, called only when the
    runner decides to checkpoint (so trainables never pay for serialisation they do not need).
    """

    def __init__(self, fn: Callable[[dict[str, Any]], None] | None = None) -> None:
        self._fn = fn

    def __call__(self, metrics: dict[str, Any], state: StateFn | None = None) -> None:
        if self._fn is not None:
            self._fn(metrics)

    def restored_state(self) -> dict[str, Any] | None:
        """The state saved by the last checkpoint of this trial, or None on a fresh start."""
        return None


@dataclass(frozen=True)
class TrainableDef:
    """A registered trainable: its training function plus what the orchestrator validates against."""

    name: str
    train: Callable[[dict[str, Any], Reporter], None]
    resolve: Callable[[Mapping[str, Any]], dict[str, Any]]
    """Returns the full config (defaults filled in); raises ConfigError on an unknown key or bad value."""
    metrics: Callable[[Mapping[str, Any]], dict[str, Mode]]
    """The metrics a resolved config reports, each with the direction in which it improves."""
    horizon: str = "epochs"
    """The config key holding a trial's length in the units of its reports' ``epoch`` (ASHA's time):
    ``epochs`` for the template trainable, ``steps`` for incontext."""
    curves: Callable[[Mapping[str, Any]], dict[str, str]] | None = None
    """Per-position curves a resolved config adds to its final report (``seed_curves``), each with
    the scalar metric that is its mean; None for trainables without any."""
