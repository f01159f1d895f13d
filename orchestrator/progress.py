"""What a researcher watches while a sweep runs: a progress bar on a terminal, log lines otherwise."""
from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeElapsedColumn, \
    TimeRemainingColumn


class Progress:
    """Trials done / total with elapsed time and ETA; one plain line per finished trial when not a TTY."""

    def __init__(self, total: int, already_done: int, metric: str, tty: bool | None = None) -> None:
        self.total = total
        self.counts: Counter[str] = Counter()
        self._metric = metric
        self._done = already_done
        self._start = time.monotonic()
        self._tty = sys.stdout.isatty() if tty is None else tty
        self._bar: RichProgress | None = None
        if self._tty:
            self._bar = RichProgress(TextColumn("[bold]trials"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[summary]}"), TimeElapsedColumn(), TextColumn("ETA"),
                                     TimeRemainingColumn(), console=Console(), transient=False)
            self._task = self._bar.add_task("sweep", total=total, completed=already_done, summary="")
            self._bar.start()

    def trial_finished(self, row: dict[str, Any]) -> None:
        self._done += 1
        self.counts[row["status"]] += 1
        summary = " ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        if self._bar is not None:
            self._bar.update(self._task, completed=self._done, summary=summary)
            return
        value = row.get(f"final_{self._metric}")
        shown = f"{value:.4g}" if isinstance(value, float) else "-"
        print(f"[{self._done}/{self.total} {time.monotonic() - self._start:6.0f}s] {row['status']:9s} "
              f"{row['cell']}  {self._metric}={shown}  ({row['seconds']:.1f}s)", flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
