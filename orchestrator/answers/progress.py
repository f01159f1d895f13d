"""What a researcher watches while a sweep runs: on a terminal, a progress bar over the cells in grid
order with each running trial's epoch, current metric and searched values (refreshed twice a second);
otherwise one plain line per finished trial, for logs. Either way an errored or diverged trial gets a
line with its reason, since a count of failures alone tells nothing about what to fix."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress
from rich.table import Table

CELL_ROWS = 12  # cells shown at once: those running trials first, then finished ones; in grid order
TRIAL_ROWS = 3  # running trials shown under a cell; the rest are counted
REASON_CHARS = 200  # an error line is cut here: a console line, not a traceback


@dataclass
class _Running:
    searched: str  # the trial's searched values, "lr=3e-4 wd=0.01"
    epoch: int = 0
    value: float | None = None


@dataclass
class _Cell:
    done: int = 0
    running: dict[str, _Running] = field(default_factory=dict)
    best: float | None = None


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def reason(row: Mapping[str, Any], metric: str) -> str | None:
    """Why a trial did not finish well, in one line: its error, or where its seeds diverged."""
    if row["status"] == "errored":
        text = " ".join(str(row.get("error") or "no error message recorded").split())
        return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"
    if row["status"] == "diverged":
        return f"every seed's {metric} went non-finite by epoch {row.get('epochs', '?')}"
    return None


class Progress:
    """Trials done / total with elapsed time and ETA; per cell: done, best metric so far, and its running
    trials with their epoch (of ``horizon``), current seed-mean metric and searched values."""

    def __init__(
        self,
        total: int,
        per_cell: int,
        finished: Iterable[Mapping[str, Any]],
        metric: str,
        mode: str,
        tty: bool | None = None,
        cells: Sequence[str] = (),
        searched: Sequence[str] = (),
        horizon: int | None = None,
    ) -> None:
        self.total = total
        self.counts: Counter[str] = Counter()
        self._per_cell = per_cell
        self._metric = metric
        self._sign = 1.0 if mode == "min" else -1.0
        self._order = {key: i for i, key in enumerate(cells)}  # grid order
        self._searched = list(searched)
        self._horizon = horizon
        self._cells: dict[str, _Cell] = {}
        self._trial_cell: dict[str, str] = {}
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
        cell.running.pop(row["trial_id"], None)
        self._trial_cell.pop(row["trial_id"], None)
        value = row.get(f"final_{self._metric}")
        if row["status"] != "errored" and isinstance(value, float) and value == value:
            if cell.best is None or self._sign * value < self._sign * cell.best:
                cell.best = value

    def trial_started(
        self, trial_id: str, cell_key: str, config: Mapping[str, Any] | None = None
    ) -> None:
        config = config or {}
        searched = " ".join(f"{k}={_fmt(config[k])}" for k in self._searched if k in config)
        self._cell(cell_key).running[trial_id] = _Running(searched)
        self._trial_cell[trial_id] = cell_key

    def trial_epoch(self, trial_id: str, epoch: int, value: float | None) -> None:
        """A running trial reported: its epoch and the seed mean of the sweep's metric."""
        cell = self._trial_cell.get(trial_id)
        running = self._cells[cell].running.get(trial_id) if cell else None
        if running is not None:
            running.epoch, running.value = epoch, value

    def trial_finished(self, row: Mapping[str, Any]) -> None:
        self._record(row)
        self.counts[row["status"]] += 1
        why = reason(row, self._metric)
        if self._live is not None:
            summary = " ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
            self._bar.update(self._task, completed=self._done, summary=summary)
            if why:  # printed above the live display, so it stays on screen after the sweep
                self._live.console.print(
                    f"[red]{row['status']}[/red] {escape(row['cell'])}: {escape(why)}"
                )
            return
        value = row.get(f"final_{self._metric}")
        shown = f"{value:.4g}" if isinstance(value, float) else "-"
        searched = " ".join(f"{k}={_fmt(row[k])}" for k in self._searched if row.get(k) is not None)
        print(
            f"[{self._done}/{self.total} {time.monotonic() - self._start:6.0f}s] {row['status']:9s} "
            f"{row['cell']}  {self._metric}={shown}  ({row['seconds']:.1f}s)"
            + (f"  {searched}" if searched else "")
            + (f"  — {why}" if why else ""),
            flush=True,
        )

    def table(self) -> Table:
        """The cells worth a glance now, in grid order: those running trials, then finished ones (the
        table stays put as the sweep moves rather than reshuffling by recency), each running trial
        under its cell.

        Called from rich's refresh thread while the driver updates the cells: ``list(dict.items())``
        is one C call under the GIL, so it never sees the dict change size mid-iteration."""
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column in ("cell", "done", f"best {self._metric}", "running"):
            table.add_column(column, justify="left" if column in ("cell", "running") else "right")
        cells = list(self._cells.items())
        picked = sorted(cells, key=lambda kv: (not kv[1].running, self._place(kv[0])))
        shown = sorted(picked[:CELL_ROWS], key=lambda kv: self._place(kv[0]))
        for key, cell in shown:
            best = f"{cell.best:.4g}" if cell.best is not None else "-"
            running = list(cell.running.values())
            table.add_row(
                key, f"{cell.done}/{self._per_cell}", best, f"{len(running)}" if running else ""
            )
            for trial in running[:TRIAL_ROWS]:
                table.add_row("", "", "", self._describe(trial))
            if len(running) > TRIAL_ROWS:
                table.add_row("", "", "", f"… {len(running) - TRIAL_ROWS} more")
        if len(cells) > CELL_ROWS:
            table.caption = (
                f"{len(cells) - CELL_ROWS} more cells; `scalesweep status DIR` lists all"
            )
        return table

    def _place(self, key: str) -> tuple[int, str]:
        return (self._order.get(key, len(self._order)), key)

    def _describe(self, trial: _Running) -> str:
        epoch = f"epoch {trial.epoch}" + (f"/{self._horizon}" if self._horizon else "")
        value = f"{self._metric} {trial.value:.4g}" if trial.value is not None else ""
        return escape("  ".join(part for part in (epoch, value, trial.searched) if part))

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()


class _Table:
    """Rebuilt on every refresh of the live display, so it always shows the current cells."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    def __rich__(self) -> Table:
        return self._progress.table()
