"""The one place the science meets Ray: wraps ``train(config, report)`` as a Tune function trainable.

Reports are time-based too: each one sent costs the driver a few milliseconds and stalls the trial until
the driver takes it, so a trial sends at most one every ``report_every_s`` and holds the others back,
to go with the next one it sends (``earlier``). It sends at once a report the driver decides on: the
first at or past each ASHA rung (``rungs``) and one where a row diverged; early stopping therefore sees
what it would see report by report, and Parquet and MLflow get every epoch, only later.

Checkpoints are time-based (at most one every ``checkpoint_every_s``): a 5-second trial never pays
for serialisation, an hour-long one loses at most that much work when its worker dies. A checkpoint
also holds the reports made so far; a trial restored from it sends them once more (``earlier``)
with its first new report, so a driver that crashed and lost them in memory still records every epoch.

The driver imports this module (for :func:`tune_function` and :class:`StopBoard`) and never torch: only a
trial's worker imports it, where it trains.
"""
from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

import ray
from ray import tune

from .api import EARLIER, MEMBERS, Reporter, StateFn
from .registry import get_trainable

STATE_FILE = "state.pt"


@ray.remote(num_cpus=0)
class StopBoard:
    """Pack members the driver's scheduler stopped, per Tune trial: the driver writes, packed trials poll."""

    def __init__(self) -> None:
        self._stopped: dict[str, set[int]] = {}

    def stop(self, trial_id: str, index: int) -> None:
        self._stopped.setdefault(trial_id, set()).add(index)

    def stopped(self, trial_id: str) -> set[int]:
        return self._stopped.get(trial_id, set())


class TuneReporter(Reporter):
    def __init__(self, checkpoint_every_s: float, report_every_s: float = 0.0, rungs: tuple[float, ...] = (),
                 board: str | None = None) -> None:
        super().__init__()
        self._every = checkpoint_every_s
        self._last = self._sent_at = time.monotonic()
        self._report_every = report_every_s
        self._rungs = sorted(rungs)
        self._diverged: list[bool] = []
        self._history: list[dict[str, Any]] = []
        self._unsent: list[dict[str, Any]] = []  # held back, or replayed after a restore
        self._board = board
        self._handle: Any = None
        self._asked: ray.ObjectRef | None = None
        self._stopped: set[int] = set()

    def __call__(self, metrics: dict[str, Any], state: StateFn | None = None) -> None:
        self._history.append(metrics)
        now = time.monotonic()
        decisive = self._decisive(metrics)  # first: it tracks the rungs passed and the rows diverged
        checkpoint = state is not None and now - self._last >= self._every
        if checkpoint or decisive or now - self._sent_at >= self._report_every:
            self._send(metrics, state if checkpoint else None)
        else:
            self._unsent.append(metrics)

    def flush(self) -> None:
        """Send what is held back: the trainable has returned."""
        if self._unsent:
            self._send(self._unsent.pop(), None)

    def _decisive(self, metrics: dict[str, Any]) -> bool:
        """The first report at or past a rung not yet passed, or one with a newly diverged row."""
        passed = bool(self._rungs) and metrics["epoch"] >= self._rungs[0]
        self._rungs = [r for r in self._rungs if r > metrics["epoch"]]
        diverged = list(metrics.get("diverged", ()))
        changed = any(diverged) and diverged != self._diverged
        self._diverged = diverged
        return passed or changed

    def _send(self, metrics: dict[str, Any], state: StateFn | None) -> None:
        if self._unsent:
            metrics, self._unsent = {**metrics, EARLIER: self._unsent}, []
        if state is None:
            tune.report(metrics)
        else:
            import torch

            with tempfile.TemporaryDirectory() as tmp:
                torch.save({"state": state(), "history": self._history}, os.path.join(tmp, STATE_FILE))
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))
            self._last = time.monotonic()
        self._sent_at = time.monotonic()

    def stopped(self) -> set[int]:
        """Polled without waiting: the answer to the previous call's question, and a new question. The
        driver decides before this trial's report returns, so the answer lags by at most one report."""
        if self._board is None:
            return set()
        if self._asked is not None and ray.wait([self._asked], timeout=0)[0]:
            self._stopped |= ray.get(self._asked)
            self._asked = None
        if self._asked is None:
            if self._handle is None:
                self._handle = ray.get_actor(self._board)
            self._asked = self._handle.stopped.remote(tune.get_context().get_trial_id())
        return self._stopped

    def restored_state(self) -> dict[str, Any] | None:
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        import torch

        with checkpoint.as_directory() as directory:
            saved = torch.load(os.path.join(directory, STATE_FILE), weights_only=False)
        self._history = list(saved["history"])
        self._unsent = list(saved["history"])
        return saved["state"]


def tune_function(name: str, cpus: float, checkpoint_every_s: float, report_every_s: float = 0.0,
                  rungs: tuple[float, ...] = (), stop_board: str | None = None) -> Callable[[dict[str, Any]], None]:
    """A Tune function trainable running the registered trainable ``name`` with one torch thread per CPU,
    reporting as :class:`TuneReporter` says; packed trials learn which of their members were stopped from
    the named :class:`StopBoard` actor."""
    threads = max(1, int(cpus))

    def run_trial(config: dict[str, Any]) -> None:
        import torch

        torch.set_num_threads(threads)
        definition = get_trainable(name)
        board = stop_board if MEMBERS in config else None
        reporter = TuneReporter(checkpoint_every_s, report_every_s, rungs, board)
        try:
            definition.train(definition.resolve(config), reporter)
        except Exception:  # the epochs held back are recorded with the error (not on Tune's stop: SystemExit)
            reporter.flush()
            raise
        reporter.flush()

    run_trial.__name__ = name
    return run_trial
