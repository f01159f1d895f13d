"""Member packing: several configs of one cell trained as one stacked Tune trial, each still its own trial.

Ray Tune sees a *pack*: one trial whose config carries ``members`` ([{lr: ...}, ...], the keys the
trainable declares stackable), trained as one stacked model. Everything else sees its *members*, each
with its own id ``<Tune trial id>-m<k>``: a row in trials.parquet and a run in MLflow, a trial of its
cell's Optuna study, a trial in its cell's ASHA rungs. A member that ASHA stops leaves the pack at once
(recorded as pruned; the trial drops its rows when it next asks, see :class:`MemberStops`). A config
without ``members`` is a pack of one whose member id is the Tune trial id, so unpacked sweeps read the same.

Why: a 1-second trial spends most of its life in Tune's and Optuna's bookkeeping, and a small model
leaves most of a core (and nearly all of a GPU) idle; one pack of K members pays the bookkeeping once
and trains K models in the kernels of one (benchmarks/packing.py). How large a cell's packs are is the
plan's decision (spec/packs.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trainables import MEMBERS, Report


@dataclass(frozen=True)
class Member:
    trial_id: str
    """Its id in trials.parquet, MLflow and its Optuna study."""
    index: int
    """Its position in its pack's ``members``."""
    config: dict[str, Any]
    """The config it would train with alone."""


def member_id(trial_id: str, index: int) -> str:
    return f"{trial_id}-m{index}"


def members_of(trial_id: str, config: Mapping[str, Any]) -> list[Member]:
    """The members of a Tune trial: one per entry of ``members``, or the trial itself."""
    if MEMBERS not in config:
        return [Member(trial_id, 0, dict(config))]
    base = {k: v for k, v in config.items() if k != MEMBERS}
    return [
        Member(member_id(trial_id, i), i, {**base, **params})
        for i, params in enumerate(config[MEMBERS])
    ]


def member_reports(result: Mapping[str, Any]) -> dict[int, Report]:
    """Each member's own report (by its index in the pack) from one report of its Tune trial, as the member
    alone would have reported it (the rows say which member and seed they are)."""
    return Report.from_wire(result).members()


class MemberStops:
    """The members the scheduler stopped early, per Tune trial, in one driver.

    The scheduler writes (it decides at a report), the callback reads right after (Tune calls the scheduler,
    then the callbacks, for each report) to record the member as pruned at that epoch, and the trial learns
    it from a Ray actor it polls after each report, so that it stops training the member's rows. Both
    reach it through this driver's sinks (driver.py).
    """

    def __init__(self, key: str) -> None:
        self.key = key
        self._new: dict[str, set[int]] = {}
        self._actor: Any = None

    @property
    def actor_name(self) -> str:
        return f"scalesweep-stops:{self.key}"

    def start_actor(self) -> None:
        """The actor trials poll (no CPU; dies with the driver, whose successor starts a fresh one). Waits
        until it answers: a trial's first question would otherwise wait out the actor's start-up (~1 s)."""
        import ray

        from orchestrator.tune.trial import StopBoard

        self._actor = StopBoard.options(name=self.actor_name, get_if_exists=True).remote()
        ray.get(self._actor.stopped.remote(""))

    def stop(self, trial_id: str, index: int) -> None:
        self._new.setdefault(trial_id, set()).add(index)
        if self._actor is not None:
            self._actor.stop.remote(trial_id, index)

    def take(self, trial_id: str) -> set[int]:
        """Members of ``trial_id`` stopped since the last call."""
        return self._new.pop(trial_id, set())
