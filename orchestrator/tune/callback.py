"""The driver-side Tune Callback: every trial result goes to Parquet, MLflow and the progress display,
split into the results of its members when the Tune trial is a pack (packing.py). It pickles as its
sweep's key and finds this driver's live sinks by it (driver.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.progress_reporter import TrialProgressCallback

from orchestrator.store.checkpoints import delete_checkpoints
from orchestrator.store.tracking import epoch_metrics
from orchestrator.tune import timeline
from orchestrator.tune.driver import DriverSinks, attached
from orchestrator.tune.packing import Member, member_reports
from trainables import EARLIER, ROWS


def _error_line(trial: Trial) -> str:
    """The last line of the trial's traceback: usually the exception and its message."""
    path = trial.error_file
    text = Path(path).read_text(errors="replace") if path and Path(path).exists() else ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "trial failed (no error message recorded)"


class QuietTrialProgress(TrialProgressCallback):
    """Tune's per-trial console lines, silenced: the progress display is the sweep's one voice on the
    console. Given to Tune, so that it adds no printing one of its own (it does even at verbose=0)."""

    def _print(self, msg: str) -> None:
        pass


class SweepCallback(Callback):
    def __init__(self, key: str) -> None:
        self._key = key

    @property
    def sinks(self) -> DriverSinks:
        return attached(self._key)

    def on_trial_start(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        timeline.trial_started(trial.trial_id)
        s = self.sinks
        cell, members = s.pack(trial)
        for member in members:
            if (
                member.trial_id not in s.writer.finished
            ):  # a pack restored after some members were recorded
                s.writer.trial_running(member.trial_id, cell)
                s.progress.trial_started(member.trial_id, cell, member.config)
                if s.tracker:
                    s.tracker.trial_started(member.trial_id, cell, member.config)

    def on_step_end(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        s = self.sinks
        s.writer.tick()  # trials.parquet and running.json lag by at most a second, even when idle
        s.interrupt.step([t.trial_id for t in trials if t.status == Trial.RUNNING])

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any
    ) -> None:
        if ROWS not in result:
            return
        s = self.sinks
        s.interrupt.reported(trial.trial_id)
        members = self._members(trial)
        current = member_reports(result)
        for reports in [*(member_reports(r) for r in result.get(EARLIER, ())), current]:
            for index, own in reports.items():
                member = members[index]
                if member.trial_id in s.writer.finished:
                    continue
                s.writer.record_epoch(member.trial_id, own)
                s.progress.trial_epoch(member.trial_id, own.epoch, own.mean(s.plan.metric))
                if s.tracker:
                    s.tracker.trial_epoch(member.trial_id, own.epoch, epoch_metrics(own))
        for index in sorted(s.stops.take(trial.trial_id)):  # by the scheduler, at this report
            self._finish(
                trial,
                members[index],
                s.plan.trial_status(members[index].config, current.get(index)),
            )

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        last = trial.last_result
        reports = member_reports(last) if last and ROWS in last else {}
        for member in self._members(trial):
            self._finish(
                trial,
                member,
                self.sinks.plan.trial_status(member.config, reports.get(member.index)),
            )
        self._end(trial)

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        error = _error_line(trial)
        for member in self._members(trial):
            self._finish(trial, member, "errored", error)
        self._end(trial)

    def _members(self, trial: Trial) -> list[Member]:
        return self.sinks.pack(trial)[1]

    def _finish(self, trial: Trial, member: Member, status: str, error: str | None = None) -> None:
        """Record a member once: Parquet first, then its study, MLflow and the display. A packed member's
        seconds are its share of its pack's."""
        s = self.sinks
        if member.trial_id in s.writer.finished:
            return
        seconds = float(trial.last_result.get("time_total_s", 0.0)) if trial.last_result else 0.0
        row = s.writer.finish_trial(
            member.trial_id, member.config, status, seconds / len(self._members(trial)), error
        )
        s.studies.tell(row)  # after the Parquet write: a study never holds a result Parquet lacks
        if s.tracker:
            s.tracker.trial_finished(member.trial_id, status, error)
        s.progress.trial_finished(row)

    def _end(self, trial: Trial) -> None:
        timeline.trial_ended(trial.trial_id, (trial.last_result or {}).get("pid"))
        delete_checkpoints(trial)
        self.sinks.packs.pop(trial.trial_id, None)
        self.sinks.stops.forget(trial.trial_id)
