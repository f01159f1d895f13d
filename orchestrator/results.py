"""Parquet, the source of truth: ``trials.parquet`` (one row per trial) and ``metrics/`` (one row
per trial × epoch × seed), with column types from one pyarrow schema per sweep.

Writes are atomic (write a hidden temp file, then rename), and a trial's row is only written to
``trials.parquet`` after its metric rows are on disk, so a reader never sees a trial without its
curve. Metric rows are buffered and written as a few large files, not one file per trial: reading
10k small Parquet files is ~20× slower than one.
"""
from __future__ import annotations

import math
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .cells import cell_key
from .plan import SweepPlan

STATUSES = ("completed", "pruned", "errored", "diverged")
TRIALS_FILE = "trials.parquet"
METRICS_DIR = "metrics"
ROWS_PER_PART = 200_000


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


def trials_schema(plan: SweepPlan) -> pa.Schema:
    fields = [pa.field("trial_id", pa.string()), pa.field("cell", pa.string())]
    fields += [pa.field(a, arrow_type(v)) for a, v in plan.spec.axes.items()]
    fields += [pa.field(p, _param_type(plan, p)) for p in plan.spec.search.space]
    fields += [pa.field("status", pa.string()), pa.field("epochs", pa.int64()), pa.field("seconds", pa.float64())]
    fields += [pa.field(f"{kind}_{m}", pa.float64()) for m in plan.modes for kind in ("final", "best")]
    fields += [pa.field("error", pa.string())]
    return pa.schema(fields)


def metrics_schema(plan: SweepPlan) -> pa.Schema:
    fields = [pa.field("trial_id", pa.string()), pa.field("epoch", pa.int64()), pa.field("seed", pa.int64())]
    return pa.schema(fields + [pa.field(m, pa.float64()) for m in plan.modes])


def _atomic_write(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


class ResultsWriter:
    """Collects per-epoch results on the driver and writes them to the sweep's Parquet files.

    Epoch rows are keyed by epoch within a trial, so a trial restarted from a checkpoint that
    reports some epochs again never produces duplicate (trial_id, epoch, seed) rows.
    """

    def __init__(self, plan: SweepPlan, root: Path, flush_every_s: float = 5.0) -> None:
        self._plan = plan
        self._root = root
        self._trials_schema = trials_schema(plan)
        self._metrics_schema = metrics_schema(plan)
        self._flush_every_s = flush_every_s
        self._last_flush = time.monotonic()
        self._epochs: dict[str, dict[int, dict[str, Any]]] = {}
        self._pending_metrics: list[dict[str, list[Any]]] = []
        self._pending_rows = 0
        (root / METRICS_DIR).mkdir(parents=True, exist_ok=True)
        existing = root / TRIALS_FILE
        self._trials: dict[str, dict[str, Any]] = (
            {r["trial_id"]: r for r in pq.read_table(existing).to_pylist()} if existing.exists() else {}
        )

    @property
    def finished(self) -> dict[str, dict[str, Any]]:
        """Rows of the trials recorded so far, by trial id."""
        return self._trials

    def record_epoch(self, trial_id: str, result: Mapping[str, Any]) -> None:
        self._epochs.setdefault(trial_id, {})[int(result["epoch"])] = {
            "seed_metrics": result["seed_metrics"], "means": {m: result.get(m) for m in self._plan.modes},
        }

    def finish_trial(self, trial_id: str, config: Mapping[str, Any], status: str,
                     seconds: float, error: str | None = None) -> dict[str, Any]:
        """Move a finished trial's epochs to the write buffer and record its trials.parquet row."""
        epochs = self._epochs.pop(trial_id, {})
        self._buffer_metrics(trial_id, config, epochs)
        row: dict[str, Any] = {"trial_id": trial_id, "cell": cell_key(config, self._plan.axes)}
        row.update({a: config[a] for a in self._plan.spec.axes})
        row.update({p: config.get(p) for p in self._plan.spec.search.space})
        last = epochs[max(epochs)] if epochs else None
        row.update(status=status, epochs=max(epochs) if epochs else 0, seconds=float(seconds), error=error)
        for metric, mode in self._plan.modes.items():
            series = [v for e in sorted(epochs) if (v := _finite(epochs[e]["means"].get(metric))) is not None]
            row[f"final_{metric}"] = _finite(last["means"].get(metric)) if last else None
            row[f"best_{metric}"] = (min(series) if mode == "min" else max(series)) if series else None
        self._trials[trial_id] = row
        self.flush(force=False)
        return row

    def _buffer_metrics(self, trial_id: str, config: Mapping[str, Any], epochs: dict[int, dict[str, Any]]) -> None:
        base_seed = int(config.get("seed", 0))
        columns: dict[str, list[Any]] = {f.name: [] for f in self._metrics_schema}
        for epoch in sorted(epochs):
            per_seed = epochs[epoch]["seed_metrics"]
            n_seeds = max((len(v) for v in per_seed.values()), default=0)
            for s in range(n_seeds):
                columns["trial_id"].append(trial_id)
                columns["epoch"].append(epoch)
                columns["seed"].append(base_seed + s)
                for metric in self._plan.modes:
                    values = per_seed.get(metric)
                    columns[metric].append(float(values[s]) if values is not None else None)
        self._pending_metrics.append(columns)
        self._pending_rows += len(columns["trial_id"])

    def flush(self, force: bool = True) -> None:
        """Write buffered metric rows, then trials.parquet; cheap no-op between intervals unless forced."""
        due = time.monotonic() - self._last_flush >= self._flush_every_s or self._pending_rows >= ROWS_PER_PART
        if not (force or due):
            return
        if self._pending_rows:
            merged = {f.name: [v for part in self._pending_metrics for v in part[f.name]] for f in self._metrics_schema}
            name = f"part-{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet"
            _atomic_write(pa.Table.from_pydict(merged, schema=self._metrics_schema), self._root / METRICS_DIR / name)
            self._pending_metrics, self._pending_rows = [], 0
        if self._trials:
            _atomic_write(pa.Table.from_pylist(list(self._trials.values()), schema=self._trials_schema),
                          self._root / TRIALS_FILE)
        self._last_flush = time.monotonic()


def load_trials(root: str | Path) -> pd.DataFrame:
    """``trials.parquet`` as a DataFrame (empty if the sweep has not finished a trial yet)."""
    path = Path(root) / TRIALS_FILE
    return pq.read_table(path).to_pandas() if path.exists() else pd.DataFrame()


def load_metrics(root: str | Path) -> pd.DataFrame:
    """The ``metrics/`` dataset as a DataFrame: one row per trial × epoch × seed."""
    path = Path(root) / METRICS_DIR
    if not path.exists() or not any(path.glob("*.parquet")):
        return pd.DataFrame()
    return ds.dataset(path, format="parquet").to_table().to_pandas()
