"""``scalesweep sync-mlflow DIR``: backfill MLflow from Parquet, the source of truth.

When the tracking server was unreachable at the start of a sweep or died during it, the sweep went
on and Parquet holds every trial; this writes what MLflow lacks in exactly the layout the live
:class:`tracking.Tracker` writes (it reuses its functions): the parent run, one nested run per
trial (keyed by the ``trial_id`` tag), the metric steps a run misses, the final status, the curves
and the answers. The parent run is found by the sweep's id, so a copied or moved results directory
syncs into the runs its original wrote.

Idempotent: a terminated trial run whose status tag equals the Parquet status is complete (the
tracker and this sync tag the status after logging every metric, and terminate the run last); for
any other run only the (key, step) pairs absent from its history are logged, so a second sync
logs nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.spec.cells import expand
from orchestrator.spec.plan import plan_config, sweep_key
from orchestrator.spec.schema import SpecError, SweepSpec, load_spec
from orchestrator.store.lock import DriverLock
from orchestrator.store.mlflow_answers import CURVES_DIR
from orchestrator.store.mlflow_source import connect, metric_histories
from orchestrator.store.results import read_metrics, read_trials
from orchestrator.store.tracking import (
    end_trial_run,
    epoch_metrics,
    finish_sweep_run,
    log_metrics,
    log_params,
    open_sweep_run,
    start_trial_run,
    sweep_params,
    trial_runs,
)
from trainables import Report, Row

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

_KEYS = ("trial_id", "epoch", "seed")


@dataclass
class SyncReport:
    experiment: str
    uri: str
    trials: int
    runs_created: int = 0
    runs_completed: int = 0  # runs whose final status this sync wrote
    metrics_logged: int = 0
    artifacts_logged: int = 0

    def __str__(self) -> str:
        return (
            f"{self.uri}, experiment {self.experiment!r}: {self.trials} trials in Parquet; "
            f"{self.runs_created} runs created, {self.runs_completed} completed, "
            f"{self.metrics_logged} metric values and {self.artifacts_logged} artifacts logged"
        )


def _reports(rows: list[dict[str, Any]]) -> list[Report]:
    """A trial's metric rows (one per epoch × seed) as the per-epoch reports the trainable sent (a null:
    not reported at that epoch)."""
    by_epoch: dict[int, list[Row]] = {}
    for row in rows:
        values = {k: v for k, v in row.items() if k not in _KEYS and v is not None}
        by_epoch.setdefault(row["epoch"], []).append(Row(0, row["seed"], values))
    return [
        Report(epoch, sorted(seeds, key=lambda r: r.seed))
        for epoch, seeds in sorted(by_epoch.items())
    ]


def _wanted(rows: list[dict[str, Any]]) -> list["Metric"]:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [
        Metric(k, v, now, report.epoch)
        for report in _reports(rows)
        for k, v in epoch_metrics(report).items()
    ]


def _config(spec: SweepSpec, cells: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """The trial's config as Tune had it: axis values from the spec (Parquet may have widened an int
    axis to float), choices as written in the spec, so params read exactly as the live tracker's."""
    params = {}
    for name, param in spec.search.space.items():
        value = row[name]
        if param.distribution == "choice":
            value = next(
                (
                    c
                    for c in param.choice
                    if c == value and isinstance(c, bool) == isinstance(value, bool)
                ),
                value,
            )
        params[name] = value
    return plan_config(spec, cells[row["cell"]], params)


def _metric_rows(root: Path) -> dict[str, list[dict[str, Any]]]:
    """metrics/ grouped by trial, read with pyarrow: a null (not reported) stays apart from a NaN."""
    table = read_metrics(root)
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in table.to_pylist() if table is not None else []:
        grouped.setdefault(row["trial_id"], []).append(row)
    return grouped


def _finish_parent(
    client: "MlflowClient", run_id: str, root: Path, spec: SweepSpec, report: SyncReport
) -> None:
    """The curves as the parent's artifacts if it has none (the tracker logs them at the very end),
    then its answers, and the parent marked finished: no driver holds the sweep."""
    curves = root / CURVES_DIR
    if curves.is_dir() and not client.list_artifacts(run_id, CURVES_DIR):
        for path in sorted(p for p in curves.iterdir() if p.is_file()):
            client.log_artifact(run_id, str(path), CURVES_DIR)
            report.artifacts_logged += 1
    report.metrics_logged += finish_sweep_run(client, run_id, root, spec.axes, "FINISHED")


def sync_mlflow(root: Path, tracking_uri: str | None = None) -> SyncReport:
    """Write every run and metric that the sweep in ``root`` has in Parquet and MLflow lacks."""
    spec_file = root / "spec.yaml"
    if not spec_file.exists():
        raise SpecError(
            f"{root}: no sweep here (expected {spec_file}); pass a results/<sweep> directory"
        )
    spec = load_spec(spec_file)
    uri = tracking_uri or spec.storage.tracking_uri
    if not uri:
        raise SpecError(
            f"{spec_file}: storage.tracking_uri is null (tracking off); pass --tracking-uri URI"
        )
    if DriverLock.held(root):
        raise SpecError(
            f"{root}: a driver is running this sweep and may still be logging; sync once it stops"
        )
    table = read_trials(root)  # Parquet read in full before MLflow is touched: damage stops it here
    trials = table.to_pylist() if table is not None else []
    metrics = _metric_rows(root)
    report = SyncReport(spec.name, uri, len(trials))
    client, _ = connect(uri, spec.name)
    experiment_id, parent, _ = open_sweep_run(
        client,
        spec.name,
        sweep_key(root, spec),
        str(root.resolve()),
        spec_file,
        sweep_params(spec),
    )
    runs = trial_runs(client, experiment_id, parent)
    cells = {c.key: c for c in expand(spec.axes)}
    for row in trials:
        run = runs.get(row["trial_id"])
        if (
            run is not None
            and run.data.tags.get("status") == row["status"]
            and run.info.status != "RUNNING"
        ):
            continue
        config = _config(spec, cells, row)
        if run is None:
            run_id, have = (
                start_trial_run(
                    client, experiment_id, parent, row["trial_id"], row["cell"], config
                ),
                {},
            )
            report.runs_created += 1
        else:  # the tracker may have died after creating the run, before its params or some metrics
            run_id, have = run.info.run_id, metric_histories(client, run)
            log_params(
                client,
                run_id,
                {k: v for k, v in sorted(config.items()) if k not in run.data.params},
            )
        missing = [
            m
            for m in _wanted(metrics.get(row["trial_id"], []))
            if m.step not in have.get(m.key, {})
        ]
        log_metrics(client, run_id, missing)
        report.metrics_logged += len(missing)
        end_trial_run(client, run_id, row["status"], row["error"])
        report.runs_completed += 1
    _finish_parent(client, parent, root, spec, report)
    return report
