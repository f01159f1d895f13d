"""Ctrl-C and SIGTERM stop a sweep cleanly: Tune saves its state, Parquet is flushed, nothing claims the
sweep finished, and the process exits 130 or 143 with one line saying how to resume.

Tune's own Ctrl-C handling ends ``fit()`` normally, which reads as a finished sweep, and Ray's driver
turns SIGTERM into an abort; so both signals come here. The first one asks Tune to stop the way its
SIGUSR1 handler does (one last snapshot of the experiment; running trials keep their last checkpoint),
sent from the driver's callback so that it reaches the Tune run in progress; before ``fit()`` starts it
simply interrupts. A second signal interrupts at once.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
    """The first stop signal this driver got, and whether Tune has been asked to stop for it."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.fitting = False
        self._forwarded = False

    def forward_to_tune(self) -> None:
        """Called by the driver's callback between Tune's steps: the stop reaches the running ``fit()``."""
        if self.signum is not None and self.fitting and not self._forwarded:
            self._forwarded = True
            os.kill(os.getpid(), signal.SIGUSR1)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
            if self.fitting:
                return  # forward_to_tune stops the run at its next step
        raise KeyboardInterrupt


@contextmanager
def catching_stop_signals() -> Iterator[Interrupt]:
    """Within: SIGINT and SIGTERM are recorded on the yielded :class:`Interrupt` (main thread only: a
    sweep run from another thread leaves signals to its host)."""
    interrupt = Interrupt()
    if threading.current_thread() is not threading.main_thread():
        yield interrupt
        return
    previous = {s: signal.signal(s, interrupt._handle) for s in SIGNALS}
    try:
        yield interrupt
    finally:
        for (
            s,
            handler,
        ) in previous.items():  # None: a handler set outside Python (Ray's), not restorable
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
