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
MEMBERS = "members"
"""The config key of a packed trial: [{key: value}, ...], one entry per member (see members.py)."""
EARLIER = "earlier"
"""The key of a report sent to the driver that carries reports made before it and not yet sent: held back
to save the driver's time, or sent before a restore and perhaps lost with a killed driver (tune_adapter.py)."""
StateFn = Callable[[], dict[str, Any]]


class ConfigError(ValueError):
    """A config key is unknown or has a bad value; the message names the key and what was expected."""

    def __init__(self, key: str, expected: str) -> None:
        super().__init__(f"{key}: {expected}")
        self.key = key
        self.expected = expected


class Reporter:
    """Receives one report per evaluation and may persist checkpoints.

    ``report(metrics, state)``: ``metrics`` holds ``epoch``, the mean over live rows of every declared
    metric, ``seed_metrics`` ({metric: [value per row]}), ``diverged`` ([bool per row]) and, for a packed
    config, ``members`` (the pack member of each group of ``seeds`` rows, in order; see members.py);
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

    def stopped(self) -> set[int]:
        """Pack members the runner has stopped early (e.g. by ASHA): the trainable drops them from its stack
        and ends once none is left. Asked after each report; may lag the runner's decision by a report."""
        return set()


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
    stackable: frozenset[str] = frozenset()
    """Keys that the members of one packed trial (``members: [{key: value}, ...]``) may set differently:
    hyper-parameters that change no tensor shape. Empty: the trainable does not pack."""
    step_cost: Callable[[Mapping[str, Any]], float] | None = None
    """Multiply-adds of one training step of one member of a resolved config: how the orchestrator sizes
    packs (small models gain most from stacking many members). None: packs of one."""
