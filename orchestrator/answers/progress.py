"""What a researcher watches while a sweep runs: on a terminal, a progress bar over a compact per-cell
table (refreshed twice a second); otherwise one plain line per finished trial, for logs."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress
from rich.table import Table

CELL_ROWS = 12  # cells shown at once: those running trials first, then the most recently finished


@dataclass
class _Cell:
    done: int = 0
    running: set[str] = field(default_factory=set)
    best: float | None = None
    touched: float = 0.0


class Progress:
    """Trials done / total with elapsed time and ETA, and per cell: done, running, best metric so far."""

    def __init__(
        self,
        total: int,
        per_cell: int,
        finished: Iterable[Mapping[str, Any]],
        metric: str,
        mode: str,
        tty: bool | None = None,
    ) -> None:
        self.total = total
        self.counts: Counter[str] = Counter()
        self._per_cell = per_cell
        self._metric = metric
        self._sign = 1.0 if mode == "min" else -1.0
        self._cells: dict[str, _Cell] = {}
        self._start = time.monotonic()
        self._done = 0
        for row in finished:
            self._record(row)
        self._tty = sys.stdout.isatty() if tty is None else tty
        self._live: Live | None = None
        if self._tty:
            self._bar = RichProgress(
                TextColumn("[bold]trials"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[summary]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
            )
            self._task = self._bar.add_task("sweep", total=total, completed=self._done, summary="")
            self._live = Live(
                Group(self._bar, _Table(self)), console=Console(), refresh_per_second=2
            )
            self._live.start()

    def _cell(self, key: str) -> _Cell:
        return self._cells.setdefault(key, _Cell())

    def _record(self, row: Mapping[str, Any]) -> None:
        self._done += 1
        cell = self._cell(row["cell"])
        cell.done += 1
        cell.running.discard(row["trial_id"])
        cell.touched = time.monotonic()
        value = row.get(f"final_{self._metric}")
        if row["status"] != "errored" and isinstance(value, float) and value == value:
            if cell.best is None or self._sign * value < self._sign * cell.best:
                cell.best = value

    def trial_started(self, trial_id: str, cell_key: str) -> None:
        cell = self._cell(cell_key)
        cell.running.add(trial_id)
        cell.touched = time.monotonic()

    def trial_finished(self, row: Mapping[str, Any]) -> None:
        self._record(row)
        self.counts[row["status"]] += 1
        if self._live is not None:
            summary = " ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
            self._bar.update(self._task, completed=self._done, summary=summary)
            return
        value = row.get(f"final_{self._metric}")
        shown = f"{value:.4g}" if isinstance(value, float) else "-"
        print(
            f"[{self._done}/{self.total} {time.monotonic() - self._start:6.0f}s] {row['status']:9s} "
            f"{row['cell']}  {self._metric}={shown}  ({row['seconds']:.1f}s)",
            flush=True,
        )

    def table(self) -> Table:
        """The cells worth a glance now: running ones first, then the most recently finished.

        Called from rich's refresh thread while the driver updates the cells: ``list(dict.items())``
        is one C call under the GIL, so it never sees the dict change size mid-iteration."""
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column in ("cell", "done", "running", f"best {self._metric}"):
            table.add_column(column, justify="left" if column == "cell" else "right")
        shown = sorted(
            list(self._cells.items()), key=lambda kv: (not kv[1].running, -kv[1].touched)
        )[:CELL_ROWS]
        for key, cell in shown:
            best = f"{cell.best:.4g}" if cell.best is not None else "-"
            table.add_row(
                key,
                f"{cell.done}/{self._per_cell}",
                str(len(cell.running)) if cell.running else "",
                best,
            )
        if len(self._cells) > CELL_ROWS:
            table.caption = (
                f"{len(self._cells) - CELL_ROWS} more cells; `scalesweep status DIR` lists all"
            )
        return table

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()


class _Table:
    """Rebuilt on every refresh of the live display, so it always shows the current cells."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    def __rich__(self) -> Table:
        return self._progress.table()
