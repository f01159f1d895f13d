"""Ctrl-C and SIGTERM stop a sweep cleanly: Tune saves its state, Parquet is flushed, nothing claims the
sweep finished, and the process exits 130 or 143 with one line saying how to resume.

Tune's own Ctrl-C handling ends ``fit()`` normally, which reads as a finished sweep, and Ray's driver
turns SIGTERM into an abort; so both signals come here. The first one, while Tune runs, first asks the
running trials to report with a checkpoint (a flag in Ray's key-value store that trials read at their
reports), waits until each has reported or ``CHECKPOINT_GRACE_S`` passed, then asks Tune to stop the way
its SIGUSR1 handler does (one last snapshot of the experiment). Both steps are taken from the driver's
callback, between Tune's steps. Before ``fit()`` starts a signal simply interrupts; a second signal
interrupts at once.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)
CHECKPOINT_GRACE_S = 10.0


class SweepInterrupted(KeyboardInterrupt):
    """A sweep stopped by a signal before it finished; ``resume`` continues it."""

    def __init__(self, signum: int, results_dir: Path, recorded: int, total: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.results_dir = results_dir
        self.recorded = recorded
        self.total = total

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def __str__(self) -> str:
        name = signal.Signals(self.signum).name
        return (
            f"stopped by {name} with {self.recorded} of {self.total} trials recorded; continue with "
            f"`scalesweep resume {self.results_dir}`"
        )


class Interrupt:
    """The first stop signal this driver got, and how far stopping the running Tune run has got."""

    def __init__(self, flag: str | None = None) -> None:
        self.signum: int | None = None
        self.fitting = False
        self._flag = flag  # the key trials read (trial.py); None: stop without asking them
        self._asked_at: float | None = None
        self._reported: set[str] = set()
        self._forwarded = False

    def clear(self) -> None:
        """Before a Tune run: no flag left from a stopped driver on a long-lived cluster."""
        if self._flag is not None:
            from ray.experimental.internal_kv import _internal_kv_del

            _internal_kv_del(self._flag)

    def reported(self, trial_id: str) -> None:
        """A trial's report reached the driver (after a stop was asked: with its checkpoint)."""
        if self._asked_at is not None:
            self._reported.add(trial_id)

    def step(self, running: list[str]) -> None:
        """Between Tune's steps: ask the ``running`` trials to checkpoint, then stop Tune once they have
        (or the grace period is over)."""
        if self.signum is None or not self.fitting or self._forwarded:
            return
        if self._asked_at is None and self._flag is not None and running:
            from ray.experimental.internal_kv import _internal_kv_put

            _internal_kv_put(self._flag, b"1", overwrite=True)
            self._asked_at = time.monotonic()
            return
        waited = time.monotonic() - (self._asked_at or 0.0)
        if set(running) <= self._reported or waited > CHECKPOINT_GRACE_S:
            self._forwarded = True
            os.kill(os.getpid(), signal.SIGUSR1)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
            if self.fitting:
                return  # step(), between Tune's steps, stops the run
        raise KeyboardInterrupt


@contextmanager
def catching_stop_signals(flag: str | None = None) -> Iterator[Interrupt]:
    """Within: SIGINT and SIGTERM are recorded on the yielded :class:`Interrupt` (main thread only: a
    sweep run from another thread leaves signals to its host); ``flag``: the key running trials read to
    checkpoint before the stop."""
    interrupt = Interrupt(flag)
    if threading.current_thread() is not threading.main_thread():
        yield interrupt
        return
    previous = {s: signal.signal(s, interrupt._handle) for s in SIGNALS}
    try:
        yield interrupt
    finally:  # a None handler was set outside Python (Ray's) and cannot be restored
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
