"""MLflow tracking off the driver's hot path: a child process that logs in batches.

Measured with MLflow 3 on sqlite: one ``log_metric`` per value manages ~280 values/s, one
``log_batch`` of up to 1000 values ~9,000/s, and MLflow's own async mode is slower still, so the
driver only enqueues and the child batches. Parquet is the source of truth: if the tracking
server cannot be reached, the sweep goes on, we warn once, and the runs can be backfilled later.

Layout: experiment = sweep name; one parent run per sweep, found by its tag ``scalesweep.sweep_id``
(the id in ``sweep.json``, which a copied or moved results directory keeps; ``scalesweep.sweep_dir``
says where it was written), ending with the sweep's answers as metrics and tags (``mlflow_answers``);
one nested run per trial (tags ``trial_id``, ``cell``, ``status``; params = the trial's config;
metrics per epoch: the mean over seeds as ``<metric>`` and each seed as ``<metric>/seed_<k>``).
The module-level functions below write and find that layout; ``mlflow_sync`` and ``mlflow_source``
reuse them, so the live tracker, the backfill and the reader agree by construction.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.store.logs import library_logs
from orchestrator.store.mlflow_answers import sweep_answers
from orchestrator.store.mlflow_sqlite import insert_metrics, prepare

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from mlflow import MlflowClient
    from mlflow.entities import Metric, Run

    from orchestrator.spec.schema import SweepSpec
    from trainables import Report

logger = logging.getLogger(__name__)

BATCH = 1000  # MLflow's log_batch limit on metrics per call
PARAMS_PER_BATCH = 100  # and on params and tags
SWEEP_ID_TAG, SWEEP_DIR_TAG = "scalesweep.sweep_id", "scalesweep.sweep_dir"
STALL_S = 15.0  # at the sweep's end, how long a tracking server may leave a call unanswered
_RUN_STATUS = {
    "completed": "FINISHED",
    "pruned": "KILLED",
    "errored": "FAILED",
    "diverged": "FAILED",
}
# MLflow's defaults retry a refused connection 7 times with exponential backoff (~4 min per call):
# a dead server would stall the tracking process, and the sweep's end by close()'s timeout. Parquet
# holds everything and sync-mlflow backfills, so fail fast. And MLflow prints a "View run" line per
# finished run to stdout, over the sweep's progress. Values the user has set win.
CLIENT_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


def sweep_params(spec: "SweepSpec") -> dict[str, Any]:
    """The parent run's params: what the sweep is, at a glance in MLflow's run list."""
    return {
        "trainable": spec.trainable_label,
        "cells": spec.n_cells,
        "trials": spec.total_trials,
        "seeds": spec.seeds,
    }


def epoch_metrics(report: "Report") -> dict[str, float]:
    """The values one member's report contributes to MLflow: seed means and each seed's value."""
    out: dict[str, float] = {}
    for row in report.rows:
        out.update({f"{m}/seed_{row.seed}": float(v) for m, v in row.metrics.items()})
    names = {m for row in report.rows for m in row.metrics}
    return {**{m: v for m in sorted(names) if (v := report.mean(m)) is not None}, **out}


def client_env() -> None:
    """Apply :data:`CLIENT_ENV` to this process (MLflow reads it on every request)."""
    for name, value in CLIENT_ENV.items():
        os.environ.setdefault(name, value)


def _log_batches(client: "MlflowClient", run_id: str, size: int, **items: list[Any]) -> None:
    """``log_batch`` in chunks of ``size``, the most MLflow takes per call; one kind of item."""
    ((kind, values),) = items.items()
    for i in range(0, len(values), size):
        client.log_batch(run_id, **{kind: values[i : i + size]})


def log_params(client: "MlflowClient", run_id: str, params: Mapping[str, Any]) -> None:
    """Params as text in batches of :data:`PARAMS_PER_BATCH` (MLflow's limit per ``log_batch``)."""
    from mlflow.entities import Param

    items = [Param(k, str(v)[:6000]) for k, v in params.items()]
    _log_batches(client, run_id, PARAMS_PER_BATCH, params=items)


def log_metrics(client: "MlflowClient", run_id: str, metrics: list["Metric"]) -> None:
    """Metrics in one bulk insert into a sqlite store (``mlflow_sqlite``), else in batches of
    :data:`BATCH` (one value per call is 30× slower)."""
    if not insert_metrics(client.tracking_uri, run_id, metrics):
        _log_batches(client, run_id, BATCH, metrics=metrics)


def open_client(uri: str) -> "MlflowClient":
    """A client of ``uri``; a new sqlite database starts from the migrated template (``mlflow_sqlite``)."""
    from mlflow import MlflowClient

    client_env()
    prepare(uri)
    return MlflowClient(tracking_uri=uri)


def find_sweep_run(
    client: "MlflowClient", experiment_id: str, sweep_id: str, sweep_dir: str
) -> "Run | None":
    """The parent run tagged with the sweep's id; else one written before parent runs carried ids:
    tagged with the sweep's directory ``sweep_dir`` (an absolute path) and with no id."""
    for tag, value in ((SWEEP_ID_TAG, sweep_id), (SWEEP_DIR_TAG, sweep_dir)):
        for run in client.search_runs([experiment_id], filter_string=f"tags.`{tag}` = '{value}'"):
            if run.data.tags.get(SWEEP_ID_TAG, sweep_id) == sweep_id:
                return run
    return None


def open_sweep_run(
    client: "MlflowClient",
    experiment: str,
    sweep_id: str,
    sweep_dir: str,
    spec_file: Path,
    params: Mapping[str, Any],
) -> tuple[str, str, bool]:
    """(experiment id, parent run id, created): the sweep's parent run, created with its params and
    spec artifact only if MLflow has none for ``sweep_id`` yet (else a resume, a backfill or a copy);
    one found by its directory alone is tagged with the id, so that its copies find it too."""
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    if (existing := find_sweep_run(client, experiment_id, sweep_id, sweep_dir)) is not None:
        if SWEEP_ID_TAG not in existing.data.tags:
            client.set_tag(existing.info.run_id, SWEEP_ID_TAG, sweep_id)
        return experiment_id, existing.info.run_id, False
    run = client.create_run(
        experiment_id,
        run_name=experiment,
        tags={SWEEP_ID_TAG: sweep_id, SWEEP_DIR_TAG: sweep_dir, "scalesweep.kind": "sweep"},
    )
    log_params(client, run.info.run_id, params)
    client.log_artifact(run.info.run_id, str(spec_file))
    return experiment_id, run.info.run_id, True


def finish_sweep_run(
    client: "MlflowClient", run_id: str, root: Path, axes: Collection[str], status: str
) -> int:
    """End the sweep's parent run with ``status``, its answers logged first (``mlflow_answers``, read
    from ``root``): only the values the run does not hold yet, so a second sync logs nothing. Returns
    the number of metric values logged."""
    from mlflow.entities import Metric, RunTag

    answers, run = sweep_answers(root, axes), client.get_run(run_id)
    now = int(time.time() * 1000)
    metrics = [
        Metric(k, v, now, 0) for k, v in answers.metrics.items() if run.data.metrics.get(k) != v
    ]
    log_metrics(client, run_id, metrics)
    tags = [RunTag(k, v) for k, v in answers.tags.items() if run.data.tags.get(k) != v]
    _log_batches(client, run_id, PARAMS_PER_BATCH, tags=tags)
    if run.info.status != status:
        client.set_terminated(run_id, status)
    return len(metrics)


def trial_runs(client: "MlflowClient", experiment_id: str, parent_run_id: str) -> dict[str, "Run"]:
    """The parent's nested runs by their ``trial_id`` tag (every page of the search)."""
    runs: dict[str, Run] = {}
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
            max_results=1000,
            page_token=token,
        )
        for run in page:
            if "trial_id" in run.data.tags:
                runs.setdefault(run.data.tags["trial_id"], run)
        token = page.token
        if not token:
            return runs


def start_trial_run(
    client: "MlflowClient",
    experiment_id: str,
    parent_run_id: str,
    trial_id: str,
    cell: str,
    config: Mapping[str, Any],
) -> str:
    """A trial's nested run, tagged and with its config as params; returns its run id."""
    run = client.create_run(
        experiment_id,
        run_name=trial_id,
        tags={
            "mlflow.parentRunId": parent_run_id,
            "trial_id": trial_id,
            "cell": cell,
            "status": "running",
        },
    )
    log_params(client, run.info.run_id, dict(sorted(config.items())))
    return run.info.run_id


def end_trial_run(client: "MlflowClient", run_id: str, status: str, error: str | None) -> None:
    """Tag a trial's final status (after its metrics: a final status tag means they are all there)."""
    client.set_tag(run_id, "status", status)
    if error:
        client.set_tag(run_id, "error", error[:5000])
    client.set_terminated(run_id, _RUN_STATUS.get(status, "FINISHED"))


class Tracker:
    """Enqueue-only API for the driver; a child process owns the MLflow client.

    A process, not a thread: MLflow's client is pure Python (its store's first use runs every schema
    migration, each of its calls goes through SQLAlchemy), seconds of CPU that would hold the driver's
    interpreter lock while Ray starts and while the driver serves its trials. The driver pickles each
    event onto a socket from a sender thread (it never blocks on a slow server); the child logs them in
    order and tells the driver ``took`` (at most twice a second) and ``failed`` (the driver warns once).
    A driver that dies closes the socket, and the child exits.
    """

    def __init__(
        self, uri: str, spec: "SweepSpec", root: Path, sweep_id: str, verbose: bool = False
    ) -> None:
        from multiprocessing import Pipe

        self.uri = uri
        client_env()
        self._queue: queue.Queue[tuple | None] = queue.Queue()
        self._failed: str | None = None
        self._answered = (
            time.monotonic()
        )  # when the child last took an event: it is not stuck on a call
        self._closed = threading.Event()
        self._conn, child = Pipe()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.store.tracking", str(child.fileno())],
            pass_fds=(child.fileno(),),
            stdin=subprocess.DEVNULL,
        )
        child.close()
        self._queue.put(("init", uri, spec, root, sweep_id, verbose))
        for target, name in ((self._send, "send"), (self._receive, "receive")):
            threading.Thread(target=target, name=f"scalesweep-mlflow-{name}", daemon=True).start()

    @property
    def failed(self) -> str | None:
        """Why tracking stopped (the first error), or None while it works."""
        return self._failed

    def start_sweep(self, spec_file: Path, params: Mapping[str, Any]) -> None:
        self._queue.put(("sweep", spec_file, dict(params)))

    def trial_started(self, trial_id: str, cell: str, config: Mapping[str, Any]) -> None:
        self._queue.put(("start", trial_id, cell, dict(config)))

    def trial_epoch(self, trial_id: str, epoch: int, values: dict[str, float]) -> None:
        self._queue.put(("epoch", trial_id, epoch, values, int(time.time() * 1000)))

    def trial_finished(self, trial_id: str, status: str, error: str | None = None) -> None:
        self._queue.put(("end", trial_id, status, error))

    def log_artifacts(self, paths: list[Path], artifact_path: str) -> None:
        self._queue.put(("artifacts", paths, artifact_path))

    def close(self, status: str = "FINISHED", stall_s: float = STALL_S) -> None:
        """Drain the queue and end the parent run with ``status``, waiting as long as the server keeps
        answering; one that has not answered for ``stall_s`` is given up on (sync-mlflow backfills)."""
        self._queue.put(("close", status))
        self._queue.put(None)
        while not self._closed.wait(0.5):
            if time.monotonic() - self._answered > stall_s:
                self._failed = self._failed or f"no answer in {stall_s:.0f}s"
                self._proc.kill()
                print(
                    f"warning: MLflow at {self.uri} stopped answering; not waiting for it. Parquet holds "
                    f"every result: `scalesweep sync-mlflow` backfills MLflow later.",
                    file=sys.stderr,
                )
                return

    def discard(self) -> None:
        """Stop the child before anything was logged (the sweep failed to start)."""
        self._proc.kill()
        self._proc.wait()

    def _send(self) -> None:
        while (event := self._queue.get()) is not None:
            try:
                self._conn.send(event)
            except OSError as err:  # the child died: what it had not logged is in Parquet
                self._failed = self._failed or f"the tracking process ended ({err})"
                self._closed.set()
                return

    def _receive(self) -> None:
        while True:
            try:
                kind, *detail = self._conn.recv()
            except (EOFError, OSError):
                self._closed.set()
                return
            self._answered = time.monotonic()
            if kind == "closed":
                self._closed.set()
            if kind == "failed" and self._failed is None:
                self._failed = detail[0]
                print(
                    f"warning: MLflow tracking at {self.uri} failed ({self._failed[:200]}); the sweep goes "
                    f"on and Parquet holds every result.",
                    file=sys.stderr,
                )


class TrackingLog:
    """The child's side: one MLflow client logging the driver's events in order (``serve``)."""

    def __init__(
        self, conn: "Connection", uri: str, spec: "SweepSpec", root: Path, sweep_id: str
    ) -> None:
        self.uri, self._conn = uri, conn
        self._spec, self._root, self._sweep_id = spec, root, sweep_id
        self._runs: dict[str, str] = {}  # trial id -> MLflow run id
        self._existing: dict[str, str] = {}  # runs of a resumed sweep's trials
        self._pending: dict[str, list] = {}
        self._failed: str | None = None
        self._told = 0.0
        self.parent_run_id: str | None = None

    def run(self) -> None:
        """Log events until ``close`` (then end) or until the driver is gone."""
        while True:
            try:
                event = self._conn.recv()
            except EOFError:  # the driver died; sync-mlflow backfills what was not logged
                return
            now = time.monotonic()
            if event[0] == "close" or now - self._told >= 0.5:
                self._conn.send(("took",))
                self._told = now
            if event[0] == "close":
                self._safely(self._close, *event[1:])
                self._conn.send(("closed",))
                return
            self._safely(getattr(self, f"_on_{event[0]}"), *event[1:])

    def _safely(self, fn: Any, *args: Any) -> None:
        if self._failed is not None:
            return
        try:
            fn(*args)
        except Exception as err:  # any failure of the tracking server must not stop the sweep
            self._failed = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            self._conn.send(("failed", self._failed))

    def _on_sweep(self, spec_file: Path, params: dict[str, Any]) -> None:
        self._client = open_client(self.uri)
        self._experiment_id, self.parent_run_id, created = open_sweep_run(
            self._client,
            self._spec.name,
            self._sweep_id,
            str(self._root.resolve()),
            spec_file,
            params,
        )
        if not created:  # a resumed sweep: restored trials log into the runs they already have
            self._client.update_run(self.parent_run_id, status="RUNNING")
            self._existing = {
                t: r.info.run_id
                for t, r in trial_runs(
                    self._client, self._experiment_id, self.parent_run_id
                ).items()
            }

    def _on_start(self, trial_id: str, cell: str, config: dict[str, Any]) -> None:
        self._runs[trial_id] = self._existing.get(trial_id) or start_trial_run(
            self._client, self._experiment_id, self.parent_run_id, trial_id, cell, config
        )

    def _on_epoch(
        self, trial_id: str, epoch: int, values: dict[str, float], timestamp: int
    ) -> None:
        from mlflow.entities import Metric

        pending = self._pending.setdefault(trial_id, [])
        pending.extend(Metric(k, v, timestamp, epoch) for k, v in values.items())
        if len(pending) >= BATCH:
            self._flush(trial_id)

    def _flush(self, trial_id: str) -> None:
        pending = self._pending.pop(trial_id, [])
        if run_id := self._runs.get(trial_id):
            log_metrics(self._client, run_id, pending)

    def _on_end(self, trial_id: str, status: str, error: str | None) -> None:
        self._flush(trial_id)
        run_id = self._runs.pop(trial_id, None)
        if run_id is not None:
            end_trial_run(self._client, run_id, status, error)

    def _on_artifacts(self, paths: list[Path], artifact_path: str) -> None:
        for path in paths:
            self._client.log_artifact(self.parent_run_id, str(path), artifact_path)

    def _close(self, status: str) -> None:
        for trial_id in list(self._pending):
            self._flush(trial_id)
        if self.parent_run_id is not None:
            finish_sweep_run(self._client, self.parent_run_id, self._root, self._spec.axes, status)


def serve(fd: int) -> None:
    """The tracking process (``python -m orchestrator.store.tracking FD``): its first event says where
    to log. Ctrl-C reaches the whole process group; the driver's handler ends the run, so the child
    ignores it and logs to the end."""
    from multiprocessing.connection import Connection

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(fd)
    try:
        _, uri, spec, root, sweep_id, verbose = conn.recv()
    except EOFError:
        return
    with library_logs(root, verbose):  # MLflow's own lines go where the driver's do
        import mlflow  # noqa: F401 - seconds of imports, while the driver opens the rest

        TrackingLog(conn, uri, spec, root, sweep_id).run()
    os._exit(
        0
    )  # all logged and committed: the interpreter's teardown of MLflow is a second of nothing


if __name__ == "__main__":
    serve(int(sys.argv[1]))
