"""CellScheduler: ASHA rungs kept per cell, behind Ray Tune's TrialScheduler seam.

One global ASHA would compare a trial trained on 16 samples with one trained on 2048 and stop
every small-data trial; a scaling curve needs early stopping *within* a cell only.
"""
from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from ray.tune.experiment import Trial
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler

from .cells import cell_key
from .plan import SweepPlan
from .results import load_metrics, load_trials

if TYPE_CHECKING:
    from ray.tune.execution.tune_controller import TuneController

TIME_ATTR = "epoch"


class CellScheduler(FIFOScheduler):
    """Routes each trial's results to its cell's ASHA; stops trials whose every seed diverged.

    A resumed sweep gets a scheduler unpickled from its start, with empty rungs; each cell's ASHA
    therefore replays the per-epoch results of the cell's finished trials from Parquet when it is
    first needed, so early stopping after a resume compares against the same trials as before.
    """

    def __init__(self, plan: SweepPlan, results_dir: Path) -> None:
        super().__init__()
        self._plan = plan
        self._results_dir = results_dir.resolve()
        self._history: dict[str, list[tuple[str, list[tuple[int, float]]]]] | None = None
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
            self._replay(key, self._by_cell[key])
        return self._by_cell[key]

    def _replay(self, key: str, asha: AsyncHyperBandScheduler) -> None:
        if self._history is None:
            self._history = self._load_history()
        for trial_id, series in self._history.get(key, []):
            stub = SimpleNamespace(trial_id=trial_id)
            asha.on_trial_add(None, stub)
            for epoch, value in series:
                if asha.on_trial_result(None, stub, {TIME_ATTR: epoch, self._plan.metric: value}) != self.CONTINUE:
                    break
            asha.on_trial_remove(None, stub)

    def _load_history(self) -> dict[str, list[tuple[str, list[tuple[int, float]]]]]:
        """Seed-mean metric per epoch of every finished trial, grouped by cell (empty on a fresh sweep)."""
        trials, metrics = load_trials(self._results_dir), load_metrics(self._results_dir)
        if trials.empty or metrics.empty:
            return {}
        means = metrics.groupby(["trial_id", "epoch"])[self._plan.metric].mean().dropna()
        series = {tid: [(int(e), float(v)) for (_, e), v in s.items()] for tid, s in means.groupby(level=0)}
        history: dict[str, list[tuple[str, list[tuple[int, float]]]]] = {}
        finished = trials[trials.status.isin(["completed", "pruned"])]
        for trial_id, cell in zip(finished.trial_id, finished.cell):
            if trial_id in series:
                history.setdefault(cell, []).append((trial_id, series[trial_id]))
        return history

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
