"""A sweep's results read back from MLflow: the same ``trials`` and ``metrics`` tables as Parquet.

For ``scalesweep curves DIR --from-mlflow URI``: curves from what the tracking server holds, the
runs of the sweep whose parent run is tagged with the id in DIR's ``sweep.json`` (wherever DIR was
copied or moved). The tables are built through the Parquet schemas (:func:`results.trials_schema`,
:func:`results.metrics_schema`), so column names and types match ``load_trials``/``load_metrics``
and the fitted curves are identical. What MLflow does not hold exactly: ``seconds`` is the run's wall
time (Parquet: the trial's own), ``ended_at`` its end, ``error`` its tag.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from orchestrator.spec.cells import expand
from orchestrator.spec.plan import SweepPlan, sweep_key
from orchestrator.spec.schema import SpecError, SweepSpec
from orchestrator.store.results import STATUSES, metrics_schema, trials_schema
from orchestrator.store.tracking import SWEEP_ID_TAG, find_sweep_run, open_client, trial_runs

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities import Run

_SEED_KEY = re.compile(r"^(?P<metric>.+)/seed_(?P<seed>\d+)$")


def connect(uri: str, experiment: str) -> tuple["MlflowClient", str | None]:
    """A client and the experiment's id (None if absent); an unreachable server is a one-line error."""
    client = open_client(uri)
    try:
        found = client.get_experiment_by_name(experiment)
    except Exception as err:  # connection refused, bad URI, server error: all name the URI
        raise SpecError(
            f"{uri}: cannot reach the MLflow tracking server ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200] if str(err) else ''})"
        ) from None
    return client, found.experiment_id if found else None


def param_value(spec: SweepSpec, name: str, text: str) -> Any:
    """A searched hyper-parameter's value from its MLflow param text (``str(value)`` when logged)."""
    param = spec.search.space[name]
    if param.distribution in ("loguniform", "uniform"):
        return float(text)
    if param.distribution in ("int", "logint"):
        return int(text)
    return next((c for c in param.choice if str(c) == text), text)


def metric_histories(client: "MlflowClient", run: "Run") -> dict[str, dict[int, float]]:
    """Every metric of a run as {key: {step: value}}; a step logged twice keeps its latest value."""
    out: dict[str, dict[int, float]] = {}
    for key in run.data.metrics:
        points = sorted(
            client.get_metric_history(run.info.run_id, key), key=lambda m: (m.step, m.timestamp)
        )
        out[key] = {int(m.step): float(m.value) for m in points}
    return out


def _trial_rows(
    plan: SweepPlan,
    trial_id: str,
    run: "Run",
    history: dict[str, dict[int, float]],
    cells: dict[str, dict[str, Any]],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One trials.parquet row and the metric rows of one trial run, as ResultsWriter writes them."""
    tags, params = run.data.tags, run.data.params
    steps = sorted({s for series in history.values() for s in series})
    row: dict[str, Any] = {"trial_id": trial_id, "cell": tags["cell"], **cells[tags["cell"]]}
    row.update(
        {
            p: param_value(plan.spec, p, params[p]) if p in params else None
            for p in plan.spec.search.space
        }
    )
    end = run.info.end_time or run.info.start_time
    row.update(
        status=tags["status"],
        epochs=steps[-1] if steps else 0,
        error=tags.get("error"),
        seconds=(end - run.info.start_time) / 1000,
        ended_at=end / 1000,
    )
    for metric, mode in plan.modes.items():
        series = history.get(metric, {})
        finite = [v for v in series.values() if math.isfinite(v)]
        last = series.get(steps[-1]) if steps else None
        row[f"final_{metric}"] = last if last is not None and math.isfinite(last) else None
        row[f"best_{metric}"] = (min(finite) if mode == "min" else max(finite)) if finite else None
    per_seed: dict[tuple[int, int], dict[str, Any]] = {}
    for key, series in history.items():
        match = _SEED_KEY.match(key)
        if match and match["metric"] in plan.modes:
            for step, value in series.items():
                entry = per_seed.setdefault((step, int(match["seed"])), {"trial_id": trial_id})
                entry.update(epoch=step, seed=int(match["seed"]), **{match["metric"]: value})
    return row, [per_seed[k] for k in sorted(per_seed)]


def load_from_mlflow(
    plan: SweepPlan, root: Path, uri: str
) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """(trials, metrics) of the sweep in ``root`` from its MLflow runs: finished trials only, as in Parquet."""
    name = plan.spec.name
    client, experiment_id = connect(uri, name)
    key = sweep_key(root, plan.spec)
    parent = None
    if experiment_id:
        parent = find_sweep_run(client, experiment_id, key, str(root.resolve()))
    if parent is None:
        raise SpecError(
            f"{uri}: no run of experiment {name!r} is tagged {SWEEP_ID_TAG}={key}; "
            f"backfill it with `scalesweep sync-mlflow {root} --tracking-uri {uri}`"
        )
    cells = {c.key: c.values for c in expand(plan.spec.axes)}
    trials, metrics = [], []
    for trial_id, run in sorted(trial_runs(client, experiment_id, parent.info.run_id).items()):
        if run.data.tags.get("status") in STATUSES and run.data.tags.get("cell") in cells:
            row, rows = _trial_rows(plan, trial_id, run, metric_histories(client, run), cells)
            trials.append(row)
            metrics.extend(rows)
    return (
        pa.Table.from_pylist(trials, schema=trials_schema(plan, plan.modes)).to_pandas(),
        pa.Table.from_pylist(metrics, schema=metrics_schema(plan.modes)).to_pandas(),
    )
