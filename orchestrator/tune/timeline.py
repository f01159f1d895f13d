"""Where a sweep's seconds go (``scalesweep run --profile``): the driver's phases and each trial's start
and end on its worker, in seconds since the driver process started, written to ``timeline.json`` in the
results directory. A user waits from the command to its exit; a sweep's own trial timings cannot show
start-up, the gaps between trials or the exit, and those are what an orchestrator adds.

Off unless enabled: every call is then a no-op, so the driver marks its phases unconditionally.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

TIMELINE_FILE = "timeline.json"


class Timeline:
    """Marks and trial spans against the process's start (its creation time, so imports count)."""

    def __init__(self) -> None:
        self.origin = _started_at()
        self.marks: list[tuple[str, float]] = []
        self.trials: dict[str, dict[str, Any]] = {}

    def now(self) -> float:
        return time.time() - self.origin

    def mark(self, name: str) -> None:
        self.marks.append((name, round(self.now(), 4)))

    def trial_started(self, trial_id: str) -> None:
        self.trials.setdefault(trial_id, {"start": round(self.now(), 4)})

    def trial_ended(self, trial_id: str, worker: Any) -> None:
        span = self.trials.setdefault(trial_id, {"start": None})
        span.update(end=round(self.now(), 4), worker=str(worker))

    def write(self, root: Path) -> Path:
        path = root / TIMELINE_FILE
        doc = {"marks": self.marks, "trials": self.trials, "cpus": os.cpu_count()}
        path.write_text(json.dumps(doc, indent=1))
        return path


def _started_at() -> float:
    """This process's start as a ``time.time()``: on Linux from its start in clock ticks since boot
    against the boot clock (10 ms); elsewhere psutil's creation time, which on Linux is off by up to a
    second (the boot time it adds is whole seconds)."""
    try:
        with open(f"/proc/{os.getpid()}/stat") as stat:
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        since = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
        return time.time() - since
    except (OSError, AttributeError, ValueError, IndexError):
        return psutil.Process(os.getpid()).create_time()


_ACTIVE: Timeline | None = None


@contextmanager
def recording(on: bool) -> Iterator[Timeline | None]:
    """While a command runs: the timeline every mark goes to (None, and marks are no-ops, unless ``on``)."""
    global _ACTIVE
    _ACTIVE = Timeline() if on else None
    if _ACTIVE is not None:
        _ACTIVE.mark("imports done")
    try:
        yield _ACTIVE
    finally:
        _ACTIVE = None


def mark(name: str) -> None:
    if _ACTIVE is not None:
        _ACTIVE.mark(name)


def trial_started(trial_id: str) -> None:
    if _ACTIVE is not None:
        _ACTIVE.trial_started(trial_id)


def trial_ended(trial_id: str, worker: Any) -> None:
    if _ACTIVE is not None:
        _ACTIVE.trial_ended(trial_id, worker)
