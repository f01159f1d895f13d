"""Running a sweep: a Ray Tune Tuner with our searcher, scheduler and callback, tuned for tiny trials.

Defaults for short trials (measured on Ray 2.60): with any custom searcher Tune keeps at most ONE trial
pending unless ``max_concurrent_trials`` is set, and re-creating actors and the automatic
JSON/CSV/TensorBoard loggers dominate a short trial's cost; so concurrency is capped at the cluster's
capacity, actors are reused, and the automatic loggers are off (our callback writes the results).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.spec.cells import expand
from orchestrator.spec.plan import SWEEP_FILE, SweepPlan, load_plan
from orchestrator.spec.schema import SpecError, dump_spec

if TYPE_CHECKING:
    from ray.tune import Tuner

    from orchestrator.store.checkpoints import ExperimentStore
    from orchestrator.tune.driver import DriverSinks
    from orchestrator.tune.trial import TrialSettings

# Set before Ray starts and before a Tuner is built (each reads them then), never at import: importing this
# module, e.g. for `scalesweep report`, must not change Ray's behaviour. A report's metrics are in its rows
# (per member and seed), which our scheduler and searcher read: Tune's own top-level check cannot see them.
TUNE_ENV = {
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "RAY_AIR_NEW_OUTPUT": "0",
    "RAY_DEDUP_LOGS": "0",
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
}
# Spec fields that decide which trials run and how they are searched: a resume must not change them.
SEARCH_FIELDS = ("trainable", "fixed", "axes", "search", "seeds", "metric", "scheduler")


@dataclass
class SweepOutcome:
    plan: SweepPlan
    results_dir: Path
    counts: dict[str, int]
    seconds: float
    curve_files: list[Path]
    tracking_error: str | None
    failure: str | None = None
    """When every trial errored: the last one's error line (what the CLI prints last)."""


def results_dir_for(plan: SweepPlan, results_root: str | None) -> Path:
    return Path(results_root or plan.spec.storage.results) / plan.spec.name


def _init_ray(address: str | None) -> None:
    """Ray started (or joined at ``address``) and the driver's libraries set up for a sweep: Tune's
    environment, its and Optuna's log levels (one line per trial is the progress display's job)."""
    import optuna
    import ray

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name, value in TUNE_ENV.items():
        os.environ.setdefault(name, value)
    # Tune's end-of-run ExperimentAnalysis looks for the JSON/CSV loggers we turn off; its warning is noise.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    # A failed trial is recorded with its error line (Parquet, MLflow, the progress display) and its traceback
    # in Tune's trial directory; Tune's own traceback on stderr per failure would bury the sweep's output.
    for name in ("ray.tune.execution.tune_controller", "ray.tune.tune"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    if ray.is_initialized():
        return
    kwargs = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    ray.init(address=address, **kwargs) if address else ray.init(**kwargs)


def _max_concurrent(plan: SweepPlan) -> int:
    import ray

    if plan.spec.resources.max_concurrent_trials:
        return plan.spec.resources.max_concurrent_trials
    capacity = ray.cluster_resources()
    fits = capacity.get("CPU", 1) / plan.spec.resources.cpu
    if plan.spec.resources.gpu > 0:
        fits = min(fits, capacity.get("GPU", 0) / plan.spec.resources.gpu)
    return max(1, min(plan.spec.total_trials, math.floor(fits + 1e-9)))


def _fingerprint(plan: SweepPlan) -> dict[str, Any]:
    return plan.spec.model_dump(
        mode="json", include=set(SEARCH_FIELDS)
    )  # axis order kept: it names cells


def _check_unchanged(plan: SweepPlan, root: Path) -> None:
    """Refuse to resume with a spec whose cells or search differ from the sweep's start (a restore
    that silently changes the search would mix two experiments in one table)."""
    stored = json.loads((root / SWEEP_FILE).read_text())
    now = _fingerprint(plan)
    for field in SEARCH_FIELDS:
        if stored.get(field) != now.get(field):
            detail = ""
            if field == "axes":
                old, new = {c.key for c in expand(stored["axes"])}, {c.key for c in plan.cells}
                detail = f" (cells added: {len(new - old)}, removed: {len(old - new)})"
            raise SpecError(
                f"{root}/spec.yaml: {field} changed since the sweep started{detail}; "
                f"restore it, or start a new sweep under another name"
            )


def run_sweep(
    plan: SweepPlan,
    results_root: str | None = None,
    tracking_uri: str | None = None,
    address: str | None = None,
    resume: bool = False,
) -> SweepOutcome:
    """Start the plan's sweep; with ``resume``, continue it instead if its results directory holds it."""
    root = results_dir_for(plan, results_root)
    if (root / SWEEP_FILE).exists():
        if not resume:
            raise SpecError(
                f"{root}: already holds a sweep; continue it with `scalesweep resume {root}`, "
                f"or remove it to start over"
            )
        _check_unchanged(plan, root)
        return _execute(plan, root, tracking_uri, address)
    root.mkdir(parents=True, exist_ok=True)
    (root / "spec.yaml").write_text(dump_spec(plan.spec))
    fingerprint = {**_fingerprint(plan), "directory": str(plan.directory)}
    (root / SWEEP_FILE).write_text(json.dumps(fingerprint, indent=1))
    return _execute(plan, root, tracking_uri, address)


def resume_sweep(
    root: Path, tracking_uri: str | None = None, address: str | None = None
) -> SweepOutcome:
    """Continue the sweep in ``root`` after its driver died: Tune's experiment state, the Optuna
    studies, ASHA's rungs (replayed from Parquet) and the results written so far all carry on."""
    if not (root / SWEEP_FILE).exists():
        raise SpecError(
            f"{root}: no sweep to resume here (expected {root / SWEEP_FILE}); "
            f"pass a results/<sweep> directory"
        )
    plan = load_plan(root)
    _check_unchanged(plan, root)
    return _execute(plan, root, tracking_uri, address)


def _execute(
    plan: SweepPlan, root: Path, tracking_uri: str | None, address: str | None
) -> SweepOutcome:
    """One driver's run of a sweep: open the sinks, start Ray, run Tune, then finish the results."""
    from orchestrator.store.checkpoints import ExperimentStore
    from orchestrator.store.lock import DriverLock
    from orchestrator.tune.callback import SweepCallback
    from orchestrator.tune.driver import attach

    lock = DriverLock(root).acquire()
    try:
        sinks = _open_sinks(plan, root, tracking_uri)
        _init_ray(address)
        started = time.monotonic()
        attach(str(root.resolve()), sinks)
        callback = SweepCallback(str(root.resolve()))
        store = ExperimentStore.for_sweep(plan.spec, root)
        tuner = _tuner(plan, root, store, callback, _trial_settings(plan, sinks))
        try:
            tuner.fit()
        finally:
            sinks.writer.flush()
            sinks.progress.close()
        curve_files = _finish(plan, root, store, sinks)
    finally:
        lock.release()
    return _outcome(plan, root, sinks, time.monotonic() - started, curve_files)


def _open_sinks(plan: SweepPlan, root: Path, tracking_uri: str | None) -> "DriverSinks":
    """Where results go: Parquet, MLflow (when a tracking URI is set), the progress display, the studies."""
    from orchestrator.answers.progress import Progress
    from orchestrator.store.results import ResultsWriter
    from orchestrator.store.tracking import Tracker, sweep_params
    from orchestrator.tune.driver import DriverSinks
    from orchestrator.tune.packing import MemberStops
    from orchestrator.tune.studies import Studies

    spec = plan.spec
    writer = ResultsWriter(plan, root)
    uri = tracking_uri or spec.storage.tracking_uri
    tracker = Tracker(uri, spec.name, root) if uri else None
    if tracker:
        tracker.start_sweep(root / "spec.yaml", sweep_params(spec))
    progress = Progress(
        spec.total_trials, spec.samples_per_cell, writer.finished.values(), plan.metric, plan.mode
    )
    return DriverSinks(
        plan,
        writer,
        tracker,
        progress,
        Studies(plan, root / "studies"),
        MemberStops(str(root.resolve())),
    )


def _trial_settings(plan: SweepPlan, sinks: "DriverSinks") -> "TrialSettings":
    """What every trial runs, and the stop board of packed trials (started when any cell packs)."""
    from orchestrator.tune.scheduling import rung_epochs
    from orchestrator.tune.shipping import ship
    from orchestrator.tune.trial import TrialSettings

    spec = plan.spec
    if max(plan.pack_sizes.values()) > 1:
        sinks.stops.start_actor()
    return TrialSettings(
        ship(plan.trainable, plan.ref),
        spec.seeds,
        plan.metric,
        spec.resources.cpu,
        spec.checkpoint_every_s,
        spec.report_every_s,
        rung_epochs(plan),
        sinks.stops.actor_name,
    )


def _tuner(
    plan: SweepPlan, root: Path, store: "ExperimentStore", callback: Any, settings: "TrialSettings"
) -> "Tuner":
    """A Tuner restored from the sweep's saved state, or a fresh one (also for a sweep killed before Tune
    saved any state: it restarts what Parquet lacks)."""
    from ray import tune

    from orchestrator.store.checkpoints import EXPERIMENT
    from orchestrator.tune.scheduling import CellScheduler
    from orchestrator.tune.search import CellSearcher
    from orchestrator.tune.trial import tune_function

    spec = plan.spec
    trainable = tune.with_resources(
        tune_function(settings), {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}
    )
    if store.has_state():
        return tune.Tuner.restore(
            store.path,
            trainable,
            resume_unfinished=True,
            resume_errored=False,
            storage_filesystem=store.fs,
        )
    store.clear()
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=CellSearcher(plan, root),
            scheduler=CellScheduler(plan, root),
            num_samples=spec.total_trials,  # at most; the searcher ends sooner when trials are packed
            max_concurrent_trials=_max_concurrent(plan),
            reuse_actors=True,
            trial_dirname_creator=lambda trial: trial.trial_id,
        ),
        run_config=tune.RunConfig(
            name=EXPERIMENT,
            storage_path=store.base,
            storage_filesystem=store.fs,
            verbose=0,
            callbacks=[callback],
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            # Keep every checkpoint while a trial runs: with num_to_keep, Tune deletes the one its last
            # snapshot points to before the next snapshot, and a driver killed in between cannot restore
            # that trial. The callback deletes a trial's checkpoints once recorded.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
        ),
    )


def _finish(
    plan: SweepPlan, root: Path, store: "ExperimentStore", sinks: "DriverSinks"
) -> list[Path]:
    """Compact the metrics, drop checkpoints no resume needs, write the curves (unless every trial failed)
    and log them to the sweep's MLflow run."""
    from orchestrator.answers.write import write_sweep_curves

    writer = sinks.writer
    writer.compact()
    complete = (
        len(writer.finished) >= plan.spec.total_trials
    )  # else fit was interrupted: keep the unrecorded
    store.drop_checkpoints(lambda trial_id: complete or trial_id in writer.finished)
    failed = all(row["status"] == "errored" for row in writer.finished.values())
    curve_files = [] if failed else write_sweep_curves(plan, root)
    if sinks.tracker:
        if curve_files:
            sinks.tracker.log_artifacts(curve_files, "curves")
        sinks.tracker.close()
    return curve_files


def _outcome(
    plan: SweepPlan, root: Path, sinks: "DriverSinks", seconds: float, curve_files: list[Path]
) -> SweepOutcome:
    from orchestrator.store.results import STATUSES

    rows = list(sinks.writer.finished.values())
    counts = {s: sum(row["status"] == s for row in rows) for s in STATUSES}
    failure = None
    if rows and counts["errored"] == len(rows):
        failure = f"every trial failed; the last error: {rows[-1].get('error') or 'no error message recorded'}"
    return SweepOutcome(
        plan,
        root,
        counts,
        seconds,
        curve_files,
        sinks.tracker.failed if sinks.tracker else None,
        failure,
    )
