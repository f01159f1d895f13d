"""The trial side of Tune: a trainable's ``train(config, report)`` run as a Tune function trainable.

Reports are time-based too: each one sent costs the driver a few milliseconds and stalls the trial until
the driver takes it, so a trial sends at most one every ``report_every_s`` and holds the others back,
to go with the next one it sends (``earlier``). It sends at once a report the driver decides on: the
first at or past each ASHA rung (``rungs``) and one where a row diverged; early stopping therefore sees
what it would see report by report, and Parquet and MLflow get every epoch, only later.

Checkpoints are time-based (at most one every ``checkpoint_every_s``): a 5-second trial never pays
for serialisation, an hour-long one loses at most that much work when its worker dies. A checkpoint
also holds the reports made so far; a trial restored from it sends them once more (``earlier``)
with its first new report, so a driver that crashed and lost them in memory still records every epoch.
It is a state file (orchestrator.store.statefile), data that runs no code when a trial resumes from it.

The driver imports this module (for :func:`tune_function`) and never torch; a trial
imports torch only when its trainable does.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ray import tune
from ray.experimental.internal_kv import _internal_kv_get

from orchestrator.store.statefile import StateFileError, read_state, write_state
from orchestrator.tune.packing import decode_stops, stops_key
from orchestrator.tune.shipping import Shipped
from trainables import EARLIER, MEMBERS, ROWS, Report, Reporter, run_trainable
from trainables.api import StateFn
from trainables.stacked.process import prepare_worker

STATE_FILE = "state.npz"
LEGACY_STATE_FILE = "state.pkl"  # a pickle, written before state files: never loaded
FLAG_POLL_S = 0.5


class TuneReporter(Reporter):
    def __init__(
        self,
        checkpoint_every_s: float,
        report_every_s: float = 0.0,
        rungs: tuple[float, ...] = (),
        board: str | None = None,
        metric: str | None = None,
        stopping_flag: str | None = None,
    ) -> None:
        super().__init__()
        self._metric = metric
        self._stopping_flag = stopping_flag
        self._flag_checked = 0.0
        self._every = checkpoint_every_s
        self._last = self._sent_at = time.monotonic()
        self._report_every = report_every_s
        self._rungs = sorted(rungs)
        self._diverged: list[bool] = []
        self._history: list[dict[str, Any]] = []
        self._unsent: list[dict[str, Any]] = []  # held back, or replayed after a restore
        self._board = board
        self._board_checked = 0.0
        self._stopped: set[int] = set()

    def __call__(self, report: Report, state: StateFn | None = None) -> None:  # type: ignore[override]
        metrics = report.to_wire()
        self._history.append(metrics)
        now = time.monotonic()
        decisive = self._decisive(report)  # first: it tracks the rungs passed and the rows diverged
        stopping = self._driver_stopping(now)
        checkpoint = state is not None and (now - self._last >= self._every or stopping)
        if checkpoint or decisive or stopping or now - self._sent_at >= self._report_every:
            self._send(metrics, state if checkpoint else None)
        else:
            self._unsent.append(metrics)

    def _driver_stopping(self, now: float) -> bool:
        """Whether the driver got a stop signal since this trial last looked (at most twice a second, one
        read of Ray's key-value store): then it reports now, with a checkpoint, so that a resume goes on
        from here. Answered once: the driver stops the trial right after."""
        if self._stopping_flag is None or now - self._flag_checked < FLAG_POLL_S:
            return False
        self._flag_checked = now
        if not _internal_kv_get(self._stopping_flag):
            return False
        self._stopping_flag = None
        return True

    def check_metric(self) -> None:
        """Raise when the trial ended without ever reporting the sweep's metric: a trial that has nothing to be
        ranked by is an error the researcher must see, not a NaN row."""
        reported = {m for wire in self._history for *_, values, _ in wire[ROWS] for m in values}
        if self._metric is not None and self._metric not in reported:
            shown = ", ".join(sorted(reported)) or "no numeric metric"
            raise ValueError(
                f"the trainable never reported the metric {self._metric!r} (it reported: {shown}); "
                f"report it, or set metric.name in the spec to one of those"
            )

    def flush(self) -> None:
        """Send what is held back: the trainable has returned."""
        if self._unsent:
            self._send(self._unsent.pop(), None)

    def _decisive(self, report: Report) -> bool:
        """The first report at or past a rung not yet passed, or one with a newly diverged row."""
        passed = bool(self._rungs) and report.epoch >= self._rungs[0]
        self._rungs = [r for r in self._rungs if r > report.epoch]
        diverged = [row.diverged for row in report.rows]
        changed = any(diverged) and diverged != self._diverged
        self._diverged = diverged
        return passed or changed

    def _send(self, metrics: dict[str, Any], state: StateFn | None) -> None:
        if self._unsent:
            metrics, self._unsent = {**metrics, EARLIER: self._unsent}, []
        if state is None:
            tune.report(metrics)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                write_state(
                    os.path.join(tmp, STATE_FILE), {"state": state(), "history": self._history}
                )
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))
            self._last = time.monotonic()
        self._sent_at = time.monotonic()

    def stopped(self) -> set[int]:
        """The members the driver stopped, read from Ray's key-value store after a report went out since
        the last read (the driver decides on reports), and at most every FLAG_POLL_S otherwise: the answer
        lags the decision by a report or half a second, one store read each."""
        if self._board is None:
            return set()
        if (
            self._board_checked < self._sent_at
            or time.monotonic() - self._board_checked >= FLAG_POLL_S
        ):
            self._board_checked = time.monotonic()
            key = stops_key(self._board, tune.get_context().get_trial_id())
            self._stopped |= decode_stops(_internal_kv_get(key))
        return self._stopped

    def restored_state(self) -> dict[str, Any] | None:
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as directory:
            if not os.path.exists(os.path.join(directory, STATE_FILE)) and os.path.exists(
                os.path.join(directory, LEGACY_STATE_FILE)
            ):
                raise StateFileError(
                    f"checkpoint {directory}: holds a {LEGACY_STATE_FILE} from an earlier scalesweep, "
                    f"a pickle, which is never loaded (it could run code); run the sweep afresh in a "
                    f"new results directory"
                )
            saved = read_state(os.path.join(directory, STATE_FILE))
        self._history = list(saved["history"])
        self._unsent = list(saved["history"])
        return saved["state"]


@dataclass(frozen=True)
class TrialSettings:
    """How every trial of a sweep runs: what it trains and how it reports (from the spec)."""

    trainable: Shipped
    seeds: int
    metric: str
    cpus: float
    checkpoint_every_s: float
    report_every_s: float = 0.0
    rungs: tuple[float, ...] = ()
    stop_board: str | None = None
    """The key prefix under which packed trials find their stopped members (packing.MemberStops)."""
    stopping_flag: str | None = None
    """The key in Ray's key-value store the driver sets when a signal stops it (interrupts.py)."""
    hidden: tuple[str, ...] = ()
    """Config keys that name a cell but are not the trainable's (a variants axis)."""


def tune_function(settings: TrialSettings) -> Callable[[dict[str, Any]], None]:
    """A Tune function trainable running the sweep's trainable on a trial's config, its seeds as the trainable
    wants them (trainables.replicas), reporting as :class:`TuneReporter` says. A trainable using torch gets
    one torch thread per CPU the trial holds."""
    threads = max(1, int(settings.cpus))

    def run_trial(config: dict[str, Any]) -> None:
        trainable = settings.trainable.load()
        prepare_worker(trainable, threads)
        board = settings.stop_board if MEMBERS in config else None
        reporter = TuneReporter(
            settings.checkpoint_every_s,
            settings.report_every_s,
            settings.rungs,
            board,
            settings.metric,
            settings.stopping_flag,
        )
        own = {k: v for k, v in config.items() if k not in settings.hidden}
        try:
            run_trainable(trainable, own, settings.seeds, reporter)
        except (
            Exception
        ):  # the epochs held back are recorded with the error (not on Tune's stop: SystemExit)
            reporter.flush()
            raise
        reporter.flush()
        reporter.check_metric()

    run_trial.__name__ = "trial"
    return run_trial
