"""Parquet, the source of truth: ``trials.parquet`` (one row per trial) and ``metrics/`` (one row
per trial × epoch × seed), with column types from one pyarrow schema per sweep.

Writes are atomic (write a hidden temp file, then rename) and every page carries a checksum, verified
on read (``parquet_io``). A finished trial is committed by one write: its metric part, which carries
the trial's row in its metadata (a compacted file carries the rows of the parts it absorbed), so
trials.parquet can always be rebuilt from metrics/. ``trials.parquet`` is then
rewritten at most once a second (rewriting it per trial made each trial cost O(trials so far)), so it
may lag the parts by that long, never the other way round: a reader never sees a trial without its
curve, and a driver that dies in between recovers the rows from the parts. Per-trial metric files
are compacted into one large file when a sweep ends: reading 10k small Parquet files is ~20× slower
than one.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from orchestrator.spec.cells import cell_key
from orchestrator.spec.plan import SWEEP_FILE, SweepPlan, sweep_record
from orchestrator.store.parquet_io import (
    RESTORE,
    DamagedFile,
    concat,
    move_aside,
    read_schema,
    read_table,
    reading,
    write_table,
)
from orchestrator.store.positions import POSITIONS_DIR, position_rows
from trainables import Mode, Report
from trainables.api import guess_mode

if (
    TYPE_CHECKING
):  # pandas (also pulled in by pyarrow.dataset) costs 0.3 s; `scalesweep status` needs neither
    import pandas as pd

STATUSES = ("completed", "pruned", "errored", "diverged")
TRIALS_FILE = "trials.parquet"
RUNNING_FILE = "running.json"
METRICS_DIR = "metrics"
FLUSH_S = 1.0  # the most often trials.parquet and running.json are rewritten
# Metadata keys: a metric part carries its trial's trials.parquet row (JSON), a compacted metric file the
# rows of the parts it absorbed (a JSON list), and a compacted file the names of the parts it absorbed.
_ROW_KEY, _ROWS_KEY = b"scalesweep.trial", b"scalesweep.trials"
_ABSORBED_KEY = b"scalesweep.absorbed"


def arrow_type(values: Iterable[Any]) -> pa.DataType:
    """The narrowest column type holding every value (ints and floats together become float64)."""
    kinds = {type(v) for v in values}
    if kinds == {bool}:
        return pa.bool_()
    if kinds and kinds <= {int}:
        return pa.int64()
    if kinds and kinds <= {int, float}:
        return pa.float64()
    return pa.string()


def _param_type(plan: SweepPlan, name: str) -> pa.DataType:
    param = plan.spec.search.space[name]
    if param.distribution in ("loguniform", "uniform"):
        return pa.float64()
    if param.distribution in ("int", "logint"):
        return pa.int64()
    return arrow_type(param.choice)


def trials_schema(plan: SweepPlan, metrics: Iterable[str]) -> pa.Schema:
    fields = [pa.field("trial_id", pa.string()), pa.field("cell", pa.string())]
    fields += [pa.field(a, arrow_type(v)) for a, v in plan.spec.axes.items()]
    fields += [pa.field(p, _param_type(plan, p)) for p in plan.spec.search.space]
    fields += [
        pa.field("status", pa.string()),
        pa.field("epochs", pa.int64()),
        pa.field("seconds", pa.float64()),
        # Unix time the trial was recorded: wall times that a copy, which resets mtimes, keeps
        pa.field("ended_at", pa.float64()),
    ]
    fields += [pa.field(f"{kind}_{m}", pa.float64()) for m in metrics for kind in ("final", "best")]
    fields += [pa.field("error", pa.string())]
    return pa.schema(fields)


def metrics_schema(metrics: Iterable[str]) -> pa.Schema:
    fields = [
        pa.field("trial_id", pa.string()),
        pa.field("epoch", pa.int64()),
        pa.field("seed", pa.int64()),
    ]
    return pa.schema(fields + [pa.field(m, pa.float64()) for m in metrics])


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def failpoint(name: str) -> None:
    """Kill this process here when ``SCALESWEEP_KILL_AT`` names this point: lets tests crash a driver
    at the exact moments that matter (e.g. between a metrics write and the trials.parquet write)."""
    if os.environ.get("SCALESWEEP_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


class ResultsWriter:
    """Writes each finished trial to the sweep's Parquet files before Tune can checkpoint it as done.

    Exactly-once, however often the driver dies: a trial's metric rows go to ``metrics/part-<trial
    id>.parquet`` (a retry overwrites the same name), its row to ``trials.parquet`` afterwards, and a
    trial already recorded is never recorded again. Epoch rows are keyed by epoch, so epochs that a
    trial restored from a checkpoint reports again replace rather than duplicate.

    Columns: one per metric the plan knows, and one per metric a report first brings (a bare function's
    metrics are known only from its reports): the tables grow a column, earlier rows hold null there.
    """

    def __init__(self, plan: SweepPlan, root: Path) -> None:
        self._plan = plan
        self._root = root
        self.modes: dict[str, Mode] = dict(plan.modes)
        self._epochs: dict[str, dict[int, Report]] = {}
        self._running: dict[str, str] = {}
        (root / METRICS_DIR).mkdir(parents=True, exist_ok=True)
        self._trials: dict[str, dict[str, Any]] = {}
        self._dirty = {"trials": False, "running": False}
        damaged = None
        try:
            existing = read_trials(root)
        except DamagedFile as err:  # rebuilt by _recover from the rows the metric files carry
            existing, damaged = None, err
        if existing is not None:
            self._trials = {r["trial_id"]: r for r in existing.to_pylist()}
            self._learn_rows(self._trials.values())  # metrics a resumed sweep's reports brought
        self._recover(damaged)
        self._schemas()
        self._flushed = 0.0
        self.flush()

    @property
    def finished(self) -> dict[str, dict[str, Any]]:
        """Rows of the trials recorded so far, by trial id."""
        return self._trials

    def trial_running(self, trial_id: str, cell: str) -> None:
        """Note a started trial in ``running.json``, which ``scalesweep status`` reads from other shells."""
        self._running[trial_id] = cell
        self._dirty["running"] = True
        self.tick()

    def tick(self) -> None:
        """Rewrite what changed if the last rewrite is ``FLUSH_S`` old; the driver calls this often."""
        if any(self._dirty.values()) and time.monotonic() - self._flushed >= FLUSH_S:
            self.flush()

    def flush(self) -> None:
        """Rewrite ``trials.parquet`` and ``running.json`` if they changed (each atomically)."""
        if self._dirty["trials"]:
            write_table(
                pa.Table.from_pylist(list(self._trials.values()), schema=self._trials_schema),
                self._root / TRIALS_FILE,
            )
        if self._dirty["running"]:
            tmp = self._root / f".{RUNNING_FILE}.tmp"
            tmp.write_text(json.dumps(self._running))
            os.replace(tmp, self._root / RUNNING_FILE)
        self._dirty = {"trials": False, "running": False}
        self._flushed = time.monotonic()

    def _learn(self, metrics: Iterable[str]) -> None:
        for metric in metrics:
            if metric not in self.modes:
                self.modes[metric] = guess_mode(metric)
                self._dirty["trials"] = True

    def _learn_rows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self._learn(k.removeprefix("final_") for row in rows for k in row if k.startswith("final_"))

    def _schemas(self) -> None:
        self._trials_schema = trials_schema(self._plan, self.modes)
        self._metrics_schema = metrics_schema(self.modes)

    def record_epoch(self, trial_id: str, report: Report) -> None:
        known = len(self.modes)
        self._learn(m for row in report.rows for m in row.metrics)
        if len(self.modes) != known:
            self._schemas()
        self._epochs.setdefault(trial_id, {})[report.epoch] = report

    def finish_trial(
        self,
        trial_id: str,
        config: Mapping[str, Any],
        status: str,
        seconds: float,
        error: str | None = None,
    ) -> dict[str, Any]:
        """Write a finished trial's metric rows, then its trials.parquet row; returns the row."""
        epochs = self._epochs.pop(trial_id, {})
        if (
            trial_id in self._trials
        ):  # finished before a driver crash and rerun after: keep the first
            return self._trials[trial_id]
        row: dict[str, Any] = {"trial_id": trial_id, "cell": cell_key(config, self._plan.axes)}
        row.update({a: config[a] for a in self._plan.spec.axes})
        row.update({p: config.get(p) for p in self._plan.spec.search.space})
        last = epochs[max(epochs)] if epochs else None
        row.update(
            status=status,
            epochs=max(epochs) if epochs else 0,
            seconds=float(seconds),
            ended_at=time.time(),
            error=error,
        )
        for metric, mode in self.modes.items():
            series = [
                v for e in sorted(epochs) if (v := _finite(epochs[e].mean(metric))) is not None
            ]
            row[f"final_{metric}"] = _finite(last.mean(metric)) if last else None
            row[f"best_{metric}"] = (
                (min(series) if mode == "min" else max(series)) if series else None
            )
        if last and any(
            r.curves for r in last.rows
        ):  # before the metric part, which commits the trial
            (self._root / POSITIONS_DIR).mkdir(exist_ok=True)
            write_table(
                position_rows(trial_id, last.rows),
                self._root / POSITIONS_DIR / f"part-{trial_id}.parquet",
            )
        table = self._metric_table(trial_id, epochs)
        write_table(
            table.replace_schema_metadata({_ROW_KEY: json.dumps(row).encode()}),
            self._part(trial_id),
        )
        failpoint("after-metrics-write")
        self._trials[trial_id] = row
        self._running.pop(trial_id, None)
        self._dirty = {"trials": True, "running": True}
        self.tick()
        return row

    def _part(self, trial_id: str) -> Path:
        return self._root / METRICS_DIR / f"part-{trial_id}.parquet"

    def _metric_table(self, trial_id: str, epochs: dict[int, Report]) -> pa.Table:
        columns: dict[str, list[Any]] = {f.name: [] for f in self._metrics_schema}
        for epoch in sorted(epochs):
            for row in epochs[epoch].rows:
                columns["trial_id"].append(trial_id)
                columns["epoch"].append(epoch)
                columns["seed"].append(row.seed)
                for metric in self.modes:
                    value = row.metrics.get(metric)
                    columns[metric].append(float(value) if value is not None else None)
        return pa.Table.from_pydict(columns, schema=self._metrics_schema)

    def _recover(self, damaged: DamagedFile | None) -> None:
        """Make good what a killed driver or damage left, before Ray starts. Every file of metrics/ and
        positions/ is read in full (checksums verified): damage stops a driver here, not midway.

        Safe, so done: remove temp files, and parts a compaction absorbed; take the rows of trials
        committed (metric part written) but not yet in trials.parquet from their parts; rebuild a
        ``damaged`` trials.parquet from the rows the metric files carry (a trial is committed only by a
        file that carries its row), moving the damaged one aside; move aside a metric part that cannot be
        read and whose trial trials.parquet lacks: that trial was never recorded, and resume treats it as
        one whose driver died before it finished; remove position parts of trials never committed (they
        are written again when the trial reruns). Any other damaged file raises DamagedFile: its rows are
        in no other file, and going on without them would change the sweep's answer unseen.
        """
        metrics, positions = self._root / METRICS_DIR, self._root / POSITIONS_DIR
        for directory in (metrics, positions, self._root):
            for tmp in directory.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
        for directory in (metrics, positions):
            absorbed = {name for f in directory.glob("compact-*.parquet") for name in _absorbed(f)}
            for part in directory.glob("part-*.parquet"):
                if part.name in absorbed:
                    part.unlink()
        carried: dict[str, dict[str, Any]] = {}
        for path in sorted(metrics.glob("*.parquet")):
            unrecorded = path.name.startswith("part-") and _trial_of(path) not in self._trials
            try:
                _, rows = _read_metric_file(path)
            except DamagedFile as err:
                if damaged or not unrecorded:
                    raise
                move_aside(err, "its trial was never recorded: it runs again")
                continue
            if rows is None and damaged:
                raise DamagedFile(
                    damaged.path,
                    damaged.reason,
                    f"it cannot be rebuilt, as {path} (written by an earlier scalesweep) does not "
                    "carry its trials' rows: restore it from a backup",
                )
            if rows is None and unrecorded:  # from before parts carried rows: the trial reruns
                path.unlink()
            carried.update(rows or {})
        new = [row for trial_id, row in carried.items() if trial_id not in self._trials]
        self._learn_rows(new)
        self._trials.update((row["trial_id"], row) for row in new)
        if new or damaged:
            self._dirty["trials"] = True
        if damaged:
            move_aside(damaged, f"rebuilt from {METRICS_DIR}/: {len(self._trials)} trial(s)")
        for path in sorted(positions.glob("*.parquet")):
            if path.name.startswith("part-") and _trial_of(path) not in self._trials:
                path.unlink()
            else:
                read_table(path)  # verified now: a recorded trial's curves are in no other file

    def compact(self) -> None:
        """Merge per-trial parts into one file with large row groups (many small files read ~20× slower).

        The compacted file names the parts it absorbed in its metadata and is renamed into place
        before they are deleted, so a crash in between leaves parts that the next start removes.
        """
        self.flush()  # the parts' rows are in trials.parquet before the parts go
        _compact(self._root / METRICS_DIR, self._trials)
        _compact(self._root / POSITIONS_DIR)


def _compact(directory: Path, rows: Mapping[str, dict[str, Any]] | None = None) -> None:
    """Merge ``directory``'s parts into one file; with ``rows`` (the trials' rows, by id) it carries the
    rows of the trials it absorbs, as their metric parts did."""
    parts = sorted(directory.glob("part-*.parquet"))
    if len(parts) < 2:
        return
    metadata = {_ABSORBED_KEY: "\n".join(p.name for p in parts).encode()}
    if rows is not None:
        metadata[_ROWS_KEY] = json.dumps([rows[_trial_of(p)] for p in parts]).encode()
    table = concat(read_table(p) for p in parts).replace_schema_metadata(metadata)
    target = directory / f"compact-{time.time_ns()}.parquet"
    write_table(table, target, row_group_size=1_000_000)
    failpoint("after-compaction")
    for part in parts:
        part.unlink()


def _trial_of(part: Path) -> str:
    return part.name.removesuffix(".parquet").removeprefix("part-")


def _absorbed(compacted: Path) -> list[str]:
    with reading(compacted):
        metadata = read_schema(compacted).metadata or {}
        return metadata.get(_ABSORBED_KEY, b"").decode().split("\n")


def _read_metric_file(
    path: Path, advice: str = RESTORE
) -> tuple[pa.Table, dict[str, dict[str, Any]] | None]:
    """A metric file's table and the trials.parquet rows it carries, by trial id (None for a file written
    before files carried them). Both are checked: the footer has no checksum, so bytes flipped in the
    rows would otherwise go unnoticed until a resume needs them."""
    table = read_table(path, advice=advice)
    metadata = table.schema.metadata or {}
    if _ROW_KEY not in metadata and _ROWS_KEY not in metadata:
        return table, None
    with reading(path, advice):
        try:
            many = metadata.get(_ROWS_KEY)
            rows = json.loads(many) if many is not None else [json.loads(metadata[_ROW_KEY])]
            return table, {row["trial_id"]: row for row in rows}
        except (ValueError, TypeError, KeyError) as err:
            raise ValueError(f"the trial rows in its metadata are not as written: {err}") from None


def read_trials(root: str | Path, columns: list[str] | None = None) -> pa.Table | None:
    """``trials.parquet`` (None before the sweep records a trial); damage is a one-line error that says
    how to rebuild it."""
    path = Path(root) / TRIALS_FILE
    if not path.exists():
        return None
    return read_table(
        path, columns, f"rebuild it from {METRICS_DIR}/ with `scalesweep resume {root}`"
    )


def read_metrics(root: str | Path) -> pa.Table | None:
    """Every file of ``metrics/`` as one table (None when there are none); nulls stay apart from NaN."""
    files = sorted((Path(root) / METRICS_DIR).glob("*.parquet"))
    part = (
        f"`scalesweep resume {root}` sets it aside if its trial is not in {TRIALS_FILE} yet "
        "(the trial reruns); otherwise restore it from a backup"
    )
    tables = (
        _read_metric_file(f, part if f.name.startswith("part-") else RESTORE)[0] for f in files
    )
    return concat(tables) if files else None


def load_trials(root: str | Path) -> "pd.DataFrame":
    """``trials.parquet`` as a DataFrame (empty if the sweep has not finished a trial yet)."""
    import pandas as pd

    table = read_trials(root)
    return table.to_pandas() if table is not None else pd.DataFrame()


def load_metrics(root: str | Path) -> "pd.DataFrame":
    """The ``metrics/`` dataset as a DataFrame: one row per trial × epoch × seed."""
    import pandas as pd

    table = read_metrics(root)
    return table.to_pandas() if table is not None else pd.DataFrame()


def sweep_span(
    root: Path, plan: SweepPlan, ended_at: Iterable[Any]
) -> tuple[float | None, float | None]:
    """When the sweep started and when its last trial was recorded (``ended_at``: the trials' column), from
    the times it recorded (``started`` in sweep.json, each trial's ``ended_at``), so that a copied results
    directory reports what the original does; a sweep written before those were recorded falls back on its
    files' mtimes. None for what is unknown (no sweep.json, no trial recorded)."""
    start = root / SWEEP_FILE
    if not start.exists():
        return None, None
    started = sweep_record(start, plan.spec).get("started")
    if not isinstance(started, (int, float)):
        started = start.stat().st_mtime
    times = [float(t) for t in ended_at if t is not None and t == t]
    if times:
        return float(started), max(times)
    trials = root / TRIALS_FILE
    return float(started), (trials.stat().st_mtime if trials.exists() else None)
