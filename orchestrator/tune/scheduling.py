"""CellScheduler: ASHA rungs kept per cell, behind Ray Tune's TrialScheduler seam.

One global ASHA would compare a trial trained on 16 samples with one trained on 2048 and stop
every small-data trial; a scaling curve needs early stopping *within* a cell only.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np
from ray.tune.experiment import Trial
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler

from orchestrator.spec.plan import SweepPlan
from orchestrator.store.checkpoints import relocate
from orchestrator.store.results import load_metrics, load_trials
from orchestrator.tune.driver import attached
from orchestrator.tune.packing import Member, member_reports
from trainables import MEMBERS, Report

if TYPE_CHECKING:
    from ray.tune.execution.tune_controller import TuneController

TIME_ATTR = "epoch"


def rung_epochs(plan: SweepPlan) -> tuple[float, ...]:
    """The epochs at which each cell's ASHA decides, as Ray's ASHA places its rungs for the spec's settings:
    a trial sends the first report at or past each of them at once, and may hold the others back."""
    asha = plan.spec.scheduler.asha
    if asha is None:
        return ()
    count = int(np.log(plan.epochs / asha.grace_period) / np.log(asha.reduction_factor) + 1)
    return tuple(asha.grace_period * asha.reduction_factor**k for k in range(count))


def _asha_result(epoch: int, metric: str, value: float) -> dict[str, float]:
    """What ASHA reads of a member's report: its time and its seed-mean metric."""
    return {TIME_ATTR: epoch, metric: value}


class CellScheduler(FIFOScheduler):
    """Routes each member's results to its cell's ASHA; stops members whose every seed diverged.

    The rungs hold members (packing.py), not Tune trials: a member that ASHA stops leaves its pack (told
    to the callback and the trial through the driver's ``MemberStops``), and the pack stops once none is
    left.
    A resumed sweep gets a scheduler unpickled from its start, with empty rungs; each cell's ASHA
    therefore replays the per-epoch results of the cell's finished trials from Parquet when it is
    first needed, so early stopping after a resume compares against the same trials as before.
    """

    def __init__(self, plan: SweepPlan, key: str) -> None:
        super().__init__()
        self._plan = plan
        self._key = key  # the sweep's, to reach this driver's sinks (driver.py)
        self._history: dict[str, list[tuple[str, list[tuple[int, float]]]]] | None = None
        self._done: set[str] = set()  # members recorded in Parquet or stopped by this scheduler
        self._by_cell: dict[str, AsyncHyperBandScheduler] = {}
        self._in_asha: set[str] = set()  # members added to an ASHA and not yet completed or removed

    def _asha(self, cell: str) -> AsyncHyperBandScheduler | None:
        asha = self._plan.spec.scheduler.asha
        if asha is None:
            return None
        if cell not in self._by_cell:
            self._by_cell[cell] = AsyncHyperBandScheduler(
                time_attr=TIME_ATTR,
                metric=self._plan.metric,
                mode=self._plan.mode,
                max_t=self._plan.epochs,
                grace_period=asha.grace_period,
                reduction_factor=asha.reduction_factor,
                stop_last_trials=False,  # a trial ends at its own last epoch as "completed", not pruned
            )
            self._replay(cell, self._by_cell[cell])
        return self._by_cell[cell]

    def _replay(self, key: str, asha: AsyncHyperBandScheduler) -> None:
        for trial_id, series in self._load()[0].get(key, []):
            stub = SimpleNamespace(trial_id=trial_id)
            asha.on_trial_add(None, stub)
            for epoch, value in series:
                if (
                    asha.on_trial_result(None, stub, _asha_result(epoch, self._plan.metric, value))
                    != self.CONTINUE
                ):
                    break
            asha.on_trial_remove(None, stub)

    def _load(self) -> tuple[dict[str, list[tuple[str, list[tuple[int, float]]]]], set[str]]:
        """Once per driver: the seed-mean metric per epoch of every finished trial, grouped by cell, and
        the ids of every recorded trial (both empty on a fresh sweep)."""
        if self._history is None:
            self._history = {}
            root = attached(self._key).root
            trials, metrics = load_trials(root), load_metrics(root)
            self._done |= set(attached(self._key).writer.finished)  # recorded by this driver too
            if not trials.empty and self._plan.metric in metrics:
                values = metrics[
                    self._plan.metric
                ]  # finite values only, as seed_mean averages them
                finite = metrics.assign(**{self._plan.metric: values.where(np.isfinite(values))})
                means = finite.groupby(["trial_id", "epoch"])[self._plan.metric].mean().dropna()
                series = {
                    t: [(int(e), float(v)) for (_, e), v in s.items()]
                    for t, s in means.groupby(level=0)
                }
                finished = trials[trials.status.isin(["completed", "pruned"])]
                for trial_id, cell in zip(finished.trial_id, finished.cell):
                    if trial_id in series:
                        self._history.setdefault(cell, []).append((trial_id, series[trial_id]))
        return self._history, self._done

    def _leave(
        self, tune_controller: "TuneController", cell: str, member: str, result: dict | None = None
    ) -> None:
        """Take a member out of its cell's ASHA: completed with its last ``result``, else removed."""
        if member in self._in_asha:
            self._in_asha.discard(member)
            stub = SimpleNamespace(trial_id=member)
            asha = self._asha(cell)
            if result is None:
                asha.on_trial_remove(tune_controller, stub)
            else:
                asha.on_trial_complete(tune_controller, stub, result)

    def _release(self, trial: Trial) -> tuple[str, list[Member]]:
        """The trial's cell and members, forgotten by the driver: Tune is done with the trial."""
        sinks = attached(self._key)
        pack = sinks.pack(trial)
        del sinks.packs[trial.trial_id]
        sinks.queued.pop(trial.trial_id, None)
        return pack

    def on_trial_add(self, tune_controller: "TuneController", trial: Trial) -> None:
        done = self._load()[1]
        sinks = attached(self._key)
        relocate(trial, sinks.store)
        cell, members = sinks.pack(trial)
        if trial.status == Trial.PENDING:  # to run (a restore also adds finished ones, not pending)
            sinks.queued[trial.trial_id] = (cell, members)
        if asha := self._asha(cell):
            for member in members:
                if member.trial_id not in done:
                    asha.on_trial_add(tune_controller, SimpleNamespace(trial_id=member.trial_id))
                    self._in_asha.add(member.trial_id)

    def choose_trial_to_run(self, tune_controller: "TuneController") -> Trial | None:
        """First in, first out; but a trial Tune restored to run again whose every member Parquet has
        recorded since Tune's snapshot is ended instead (its checkpoints are gone with its recording)."""
        done, sinks = self._load()[1], attached(self._key)
        for trial in tune_controller.get_trials():
            if trial.status == Trial.PENDING and all(
                m.trial_id in done for m in sinks.pack(trial)[1]
            ):
                tune_controller.stop_trial(trial)
        return super().choose_trial_to_run(tune_controller)

    def on_trial_result(self, tune_controller: "TuneController", trial: Trial, result: dict) -> str:
        done = self._load()[1]
        sinks = attached(self._key)
        (cell, members), packed = sinks.pack(trial), MEMBERS in trial.config
        stops = sinks.stops
        for index, report in member_reports(result).items():
            member = members[index]
            if (
                member.trial_id in done
                or self._decide(tune_controller, cell, member, report) == self.STOP
            ):
                done.add(member.trial_id)
                if packed:
                    stops.stop(trial.trial_id, index)
        return self.STOP if all(m.trial_id in done for m in members) else self.CONTINUE

    def _decide(
        self, tune_controller: "TuneController", cell: str, member: Member, report: Report
    ) -> str:
        """ASHA's decision on the member's seed mean; a member whose every seed diverged stops, one whose
        report lacks the metric (not evaluated at this epoch) goes on."""
        value = report.mean(self._plan.metric)
        if value is not None and not math.isfinite(value):
            decision = self.STOP
        elif value is None or member.trial_id not in self._in_asha:
            return self.CONTINUE
        else:
            decision = self._asha(cell).on_trial_result(
                tune_controller,
                SimpleNamespace(trial_id=member.trial_id),
                _asha_result(report.epoch, self._plan.metric, value),
            )
        if decision == self.STOP:
            self._leave(tune_controller, cell, member.trial_id)
        return decision

    def on_trial_complete(
        self, tune_controller: "TuneController", trial: Trial, result: dict
    ) -> None:
        cell, members = self._release(trial)
        reports = member_reports(result) if result else {}
        for member in members:
            report = reports.get(member.index)
            value = report.mean(self._plan.metric) if report else None
            self._leave(
                tune_controller,
                cell,
                member.trial_id,
                _asha_result(report.epoch, self._plan.metric, value)
                if report and value is not None
                else {},
            )

    def on_trial_remove(self, tune_controller: "TuneController", trial: Trial) -> None:
        cell, members = self._release(trial)
        for member in members:
            self._leave(tune_controller, cell, member.trial_id)

    def debug_string(self) -> str:
        return f"CellScheduler: ASHA in {len(self._by_cell)} cells"
