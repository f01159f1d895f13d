"""The driver-side Tune Callback: every trial result goes to Parquet, MLflow and the progress display.

Tune pickles its callbacks into ``tuner.pkl`` so that an experiment can be restored, but the
objects a callback feeds (a writer buffering rows, a tracking thread, a live progress bar) belong to
one driver process. So the callback pickles as a key, and each driver attaches its own live
:class:`DriverSinks` under that key before ``fit()``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ray.tune import Callback
from ray.tune.experiment import Trial

from .cells import cell_key
from .plan import SweepPlan
from .progress import Progress
from .results import ResultsWriter
from .search import Studies
from .storage import delete_checkpoints
from .tracking import Tracker, epoch_metrics


@dataclass
class DriverSinks:
    plan: SweepPlan
    writer: ResultsWriter
    tracker: Tracker | None
    progress: Progress
    studies: Studies


def _error_line(trial: Trial) -> str:
    """The last line of the trial's traceback: usually the exception and its message."""
    path = trial.error_file
    text = Path(path).read_text(errors="replace") if path and Path(path).exists() else ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "trial failed (no error message recorded)"


class SweepCallback(Callback):
    _sinks: ClassVar[dict[str, DriverSinks]] = {}

    def __init__(self, key: str) -> None:
        self._key = key

    @classmethod
    def attach(cls, key: str, sinks: DriverSinks) -> "SweepCallback":
        cls._sinks[key] = sinks
        return cls(key)

    @property
    def sinks(self) -> DriverSinks:
        return self._sinks[self._key]

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        s = self.sinks
        cell = cell_key(trial.config, s.plan.axes)
        s.writer.trial_running(trial.trial_id, cell)
        s.progress.trial_started(trial.trial_id, cell)
        if s.tracker:
            s.tracker.trial_started(trial.trial_id, cell, trial.config)

    def on_step_end(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        self.sinks.writer.tick()  # trials.parquet and running.json lag by at most a second, even when idle

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any) -> None:
        if "seed_metrics" not in result:
            return
        s = self.sinks
        base_seed = int(trial.config.get("seed", 0))
        for report in [*result.get("replayed", ()), result]:  # replayed: reports lost with a killed driver
            s.writer.record_epoch(trial.trial_id, report)
            if s.tracker:
                s.tracker.trial_epoch(trial.trial_id, int(report["epoch"]),
                                      epoch_metrics(report, list(s.plan.modes), base_seed))

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._finish(trial, self.sinks.plan.trial_status(trial.config, trial.last_result))

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._finish(trial, "errored", _error_line(trial))

    def _finish(self, trial: Trial, status: str, error: str | None = None) -> None:
        s = self.sinks
        seconds = float(trial.last_result.get("time_total_s", 0.0)) if trial.last_result else 0.0
        row = s.writer.finish_trial(trial.trial_id, trial.config, status, seconds, error)
        s.studies.tell(row)  # after the Parquet write: a study never holds a result Parquet lacks
        delete_checkpoints(trial)
        if s.tracker:
            s.tracker.trial_finished(trial.trial_id, status, error)
        s.progress.trial_finished(row)
