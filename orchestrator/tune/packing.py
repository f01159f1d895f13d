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
    it from Ray's key-value store (one key per trial, :func:`stops_key`), read after its reports, so that it
    stops training the member's rows. Both reach it through this driver's sinks (driver.py). A key-value
    write, not an actor: nothing to start before the first trial (an actor is a worker process, seconds).
    """

    def __init__(self, key: str) -> None:
        self.key = key
        self._new: dict[str, set[int]] = {}
        self._all: dict[str, set[int]] = {}

    @property
    def prefix(self) -> str:
        """What the trials' keys start with (TrialSettings.stop_board)."""
        return f"scalesweep-stops:{self.key}:"

    def stop(self, trial_id: str, index: int) -> None:
        from ray.experimental.internal_kv import _internal_kv_put

        self._new.setdefault(trial_id, set()).add(index)
        stopped = self._all.setdefault(trial_id, set())
        stopped.add(index)
        _internal_kv_put(stops_key(self.prefix, trial_id), encode_stops(stopped), overwrite=True)

    def take(self, trial_id: str) -> set[int]:
        """Members of ``trial_id`` stopped since the last call."""
        return self._new.pop(trial_id, set())

    def forget(self, trial_id: str) -> None:
        """The trial ended: its key goes (a long-lived cluster keeps its store)."""
        if self._all.pop(trial_id, None) is not None:
            from ray.experimental.internal_kv import _internal_kv_del

            _internal_kv_del(stops_key(self.prefix, trial_id))


def stops_key(prefix: str, trial_id: str) -> str:
    return prefix + trial_id


def encode_stops(indices: set[int]) -> bytes:
    return ",".join(map(str, sorted(indices))).encode()


def decode_stops(value: bytes | None) -> set[int]:
    return {int(i) for i in value.decode().split(",")} if value else set()
