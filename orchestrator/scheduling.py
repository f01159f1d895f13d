"""CellScheduler: ASHA rungs kept per cell, behind Ray Tune's TrialScheduler seam.

One global ASHA would compare a trial trained on 16 samples with one trained on 2048 and stop
every small-data trial; a scaling curve needs early stopping *within* a cell only.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ray.tune.experiment import Trial
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler

from .cells import cell_key
from .plan import SweepPlan

if TYPE_CHECKING:
    from ray.tune.execution.tune_controller import TuneController

TIME_ATTR = "epoch"


class CellScheduler(FIFOScheduler):
    """Routes each trial's results to its cell's ASHA; stops trials whose every seed diverged."""

    def __init__(self, plan: SweepPlan) -> None:
        super().__init__()
        self._plan = plan
        self._by_cell: dict[str, AsyncHyperBandScheduler] = {}
        self._cell_of: dict[str, str] = {}
        self._in_asha: set[str] = set()  # trials added to an ASHA and not yet completed or removed

    def _asha(self, trial: Trial) -> AsyncHyperBandScheduler | None:
        asha = self._plan.spec.scheduler.asha
        if asha is None:
            return None
        key = self._cell_of.setdefault(trial.trial_id, cell_key(trial.config, self._plan.axes))
        if key not in self._by_cell:
            self._by_cell[key] = AsyncHyperBandScheduler(
                time_attr=TIME_ATTR, metric=self._plan.metric, mode=self._plan.mode, max_t=self._plan.epochs,
                grace_period=asha.grace_period, reduction_factor=asha.reduction_factor,
                stop_last_trials=False,  # a trial ends at its own last epoch as "completed", not pruned
            )
        return self._by_cell[key]

    def on_trial_add(self, tune_controller: "TuneController", trial: Trial) -> None:
        if asha := self._asha(trial):
            asha.on_trial_add(tune_controller, trial)
            self._in_asha.add(trial.trial_id)

    def on_trial_result(self, tune_controller: "TuneController", trial: Trial, result: dict) -> str:
        value = result.get(self._plan.metric)
        if value is None or not math.isfinite(value):
            return TrialScheduler.STOP
        if trial.trial_id not in self._in_asha:
            return TrialScheduler.CONTINUE
        return self._asha(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller: "TuneController", trial: Trial, result: dict) -> None:
        if trial.trial_id in self._in_asha:
            self._in_asha.discard(trial.trial_id)
            self._asha(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: "TuneController", trial: Trial) -> None:
        if trial.trial_id in self._in_asha:
            self._in_asha.discard(trial.trial_id)
            self._asha(trial).on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return f"CellScheduler: ASHA in {len(self._by_cell)} cells"
