"""Parquet, the source of truth: ``trials.parquet`` (one row per trial) and ``metrics/`` (one row
per trial × epoch × seed), with column types from one pyarrow schema per sweep.

Writes are atomic (write a hidden temp file, then rename). A finished trial is committed by one
write: its metric part, which carries the trial's row in its metadata. ``trials.parquet`` is then
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
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.spec.cells import cell_key
from orchestrator.spec.plan import SweepPlan
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
_ROW_KEY = b"scalesweep.trial"  # a metric part's metadata: its trial's trials.parquet row, as JSON


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


def _atomic_write(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


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
        existing = root / TRIALS_FILE
        self._trials: dict[str, dict[str, Any]] = (
            {r["trial_id"]: r for r in pq.read_table(existing).to_pylist()}
            if existing.exists()
            else {}
        )
        self._dirty = {"trials": False, "running": False}
        if existing.exists():  # metrics a resumed sweep's reports brought before
            self._learn(
                n.removeprefix("final_")
                for n in pq.read_schema(existing).names
                if n.startswith("final_")
            )
        self._schemas()
        self._flushed = 0.0
        self._recover()
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
            _atomic_write(
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
            status=status, epochs=max(epochs) if epochs else 0, seconds=float(seconds), error=error
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
            _atomic_write(
                position_rows(trial_id, last.rows),
                self._root / POSITIONS_DIR / f"part-{trial_id}.parquet",
            )
        table = self._metric_table(trial_id, epochs)
        _atomic_write(
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

    def _recover(self) -> None:
        """Make good what a killed driver left: remove temp files and parts absorbed by a compaction;
        take the rows of trials committed (their metric part written) but not yet in trials.parquet;
        drop position parts of trials never committed (they are written again when the trial reruns)."""
        for directory in (self._root / METRICS_DIR, self._root / POSITIONS_DIR, self._root):
            for tmp in directory.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
        for directory in (self._root / METRICS_DIR, self._root / POSITIONS_DIR):
            absorbed = {name for f in directory.glob("compact-*.parquet") for name in _absorbed(f)}
            for part in directory.glob("part-*.parquet"):
                if part.name in absorbed:
                    part.unlink()
        for part in (self._root / METRICS_DIR).glob("part-*.parquet"):
            trial_id = part.stem.removeprefix("part-")
            if trial_id not in self._trials:
                row = (pq.read_schema(part).metadata or {}).get(_ROW_KEY)
                if row is None:  # written before parts carried their row: the trial reruns
                    part.unlink()
                    continue
                self._trials[trial_id] = json.loads(row)
                self._dirty["trials"] = True
        for part in (self._root / POSITIONS_DIR).glob("part-*.parquet"):
            if part.stem.removeprefix("part-") not in self._trials:
                part.unlink()

    def compact(self) -> None:
        """Merge per-trial parts into one file with large row groups (many small files read ~20× slower).

        The compacted file names the parts it absorbed in its metadata and is renamed into place
        before they are deleted, so a crash in between leaves parts that the next start removes.
        """
        self.flush()  # the parts' rows are in trials.parquet before the parts go
        _compact(self._root / METRICS_DIR, lambda p: pq.read_table(p, schema=self._metrics_schema))
        _compact(self._root / POSITIONS_DIR, pq.read_table)


def _compact(directory: Path, read: Callable[[Path], pa.Table]) -> None:
    parts = sorted(directory.glob("part-*.parquet"))
    if len(parts) < 2:
        return
    table = pa.concat_tables((read(p) for p in parts), promote_options="default")
    names = "\n".join(p.name for p in parts)
    table = table.replace_schema_metadata({b"scalesweep.absorbed": names.encode()})
    target = directory / f"compact-{time.time_ns()}.parquet"
    tmp = target.with_name(f".{target.name}.tmp")
    pq.write_table(table, tmp, row_group_size=1_000_000)
    os.replace(tmp, target)
    failpoint("after-compaction")
    for part in parts:
        part.unlink()


def _absorbed(compacted: Path) -> list[str]:
    metadata = pq.read_schema(compacted).metadata or {}
    return metadata.get(b"scalesweep.absorbed", b"").decode().split("\n")


def load_trials(root: str | Path) -> "pd.DataFrame":
    """``trials.parquet`` as a DataFrame (empty if the sweep has not finished a trial yet)."""
    import pandas as pd

    path = Path(root) / TRIALS_FILE
    return pq.read_table(path).to_pandas() if path.exists() else pd.DataFrame()


def load_metrics(root: str | Path) -> "pd.DataFrame":
    """The ``metrics/`` dataset as a DataFrame: one row per trial × epoch × seed."""
    import pandas as pd
    import pyarrow.dataset as ds

    path = Path(root) / METRICS_DIR
    files = sorted(path.glob("*.parquet")) if path.exists() else []
    if not files:
        return pd.DataFrame()
    # parts written before a report brought a new metric lack its column: read all under one schema
    schema = pa.unify_schemas([pq.read_schema(f).remove_metadata() for f in files])
    return ds.dataset(files, schema=schema, format="parquet").to_table().to_pandas()
