"""Running a sweep: a Ray Tune Tuner with our searcher, scheduler and callback, tuned for tiny trials.

Defaults for short trials (measured on Ray 2.60): with any custom searcher Tune keeps at most ONE trial
pending unless ``max_concurrent_trials`` is set, and re-creating actors and the automatic
JSON/CSV/TensorBoard loggers dominate a short trial's cost; so concurrency is capped at the cluster's
capacity, actors are reused, and the automatic loggers are off (our callback writes the results).
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.spec.cells import expand
from orchestrator.spec.plan import (
    SWEEP_FIELDS,
    SWEEP_FILE,
    SweepPlan,
    load_plan,
    sweep_key,
    sweep_record,
)
from orchestrator.spec.probes import sweep_complete
from orchestrator.spec.schema import SpecError, dump_spec
from orchestrator.store.logs import library_logs
from orchestrator.tune.timeline import mark

if TYPE_CHECKING:
    from ray.tune import Tuner

    from orchestrator.store.checkpoints import ExperimentStore
    from orchestrator.store.tracking import Tracker
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
    "TUNE_DISABLE_SIGINT_HANDLER": "1",  # Ctrl-C is ours (interrupts.py)
}
LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
EMBEDDED_ENV = {
    LOCAL_ONLY_ENV: "0",
    "RAY_enable_worker_prestart": "0",
    "RAY_prestart_worker_first_driver": "0",
}
"""The environment an embedded Ray starts in (:func:`_embedded_start`)."""
UNUSED_HELPERS = ("start_monitor", "start_log_monitor", "start_api_server")
"""The methods of Ray's ``Node`` that start the head's helpers an embedded Ray goes without."""
CONNECT_TIMEOUT_S = 10.0
_EMBEDDED: set[str] = (
    set()
)  # the Ray clusters this process started (a stopped sweep shuts them down)


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
    # A restore's complaints about trials recorded since its snapshot are expected (see _fit).
    for name in ("ray.tune.execution.tune_controller", "ray.tune.tune", "ray.tune.execution"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    if ray.is_initialized():
        return
    kwargs = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    if address:
        ray.init(address=address, **kwargs)
        return
    with _embedded_start():
        ray.init(**kwargs)
    _EMBEDDED.add(ray.get_runtime_context().gcs_address)
    from orchestrator.tune.reaper import watch_embedded_ray

    watch_embedded_ray()


@contextmanager
def _embedded_start() -> Iterator[None]:
    """While an embedded Ray starts (its processes keep what they read, and the variables are restored at
    once so that a ``ray start`` run later from this process is unaffected):

    - its servers bind to 127.0.0.1 instead of every interface: Ray's single-machine mode, the one it
      uses on macOS and Windows;
    - it prestarts no Python workers: Tune's trial actors run in workers started for their own runtime
      env, never in prestarted ones, which only took the cores from Ray's start and the first trials;
    - it starts none of the head's helpers a sweep on one machine never uses (:data:`UNUSED_HELPERS`):
      the autoscaler's monitor, the log monitor (workers' output stays in their log files, as
      ``log_to_driver=False`` asks) and the dashboard's API server (jobs are submitted to clusters, not
      to this one). Ray's start waited a second for the API server's address, and the three took a
      core for about two seconds while the first trials started (benchmarks/README.md).
    """
    from ray._private import ray_constants
    from ray._private.node import Node

    before_env = {name: os.environ.get(name) for name in EMBEDDED_ENV}
    before = ray_constants.ENABLE_RAY_CLUSTER
    # private: a Ray without one of these methods starts that helper as it always did
    helpers = {name: getattr(Node, name) for name in UNUSED_HELPERS if hasattr(Node, name)}
    os.environ.update(EMBEDDED_ENV)
    ray_constants.ENABLE_RAY_CLUSTER = False
    for name in helpers:
        setattr(Node, name, _not_started)
    try:
        yield
    finally:
        for name, method in helpers.items():
            setattr(Node, name, method)
        ray_constants.ENABLE_RAY_CLUSTER = before
        for name, value in before_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _not_started(node: object, **_: object) -> None:
    """Stands in for a ``Node`` method whose helper process an embedded Ray does not start."""


@contextmanager
def _callbacks_untagged() -> Iterator[None]:
    """Tune runs without Ray's usage tag of its callbacks' classes: to count them, that tag imports every
    integration it compares against, MLflow's among them, in the driver: a second of a core while the
    first trials start (MLflow is the tracking child's to import, not the driver's)."""
    from ray.air._internal import usage

    tag = getattr(usage, "tag_callbacks", None)  # private: a Ray that renames it runs as it is
    if tag is None:
        yield
        return
    usage.tag_callbacks = lambda callbacks: False
    try:
        yield
    finally:
        usage.tag_callbacks = tag


def check_address(address: str | None, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse, in one line and within ``timeout_s``, a ``--address`` nobody answers at (Ray itself retries
    for minutes), before anything is written."""
    if not address or address == "auto":
        return
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise SpecError(
            f"--address {address}: expected auto, host:port (the head's GCS, e.g. 10.0.0.5:6379) "
            f"or ray://host:port (Ray Client, e.g. ray://10.0.0.5:10001)"
        )
    outcome: list[BaseException | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
            outcome.append(None)
        except OSError as err:
            outcome.append(err)

    worker = threading.Thread(
        target=connect, daemon=True
    )  # name lookups have no timeout of their own
    worker.start()
    worker.join(timeout_s)
    if not outcome or outcome[0] is not None:
        why = (
            f"{type(outcome[0]).__name__}: {outcome[0]}"
            if outcome
            else f"no answer in {timeout_s:.0f}s"
        )
        raise SpecError(
            f"--address {address}: cannot reach a Ray cluster there ({why}); check the head is up "
            f"and the address, or leave --address out to run on this machine"
        )


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
        mode="json", include=set(SWEEP_FIELDS)
    )  # axis order kept: it names cells


def _check_unchanged(plan: SweepPlan, root: Path) -> None:
    """Refuse to resume with a spec whose cells or search differ from the sweep's start (a restore
    that silently changes the search would mix two experiments in one table)."""
    stored = sweep_record(root / SWEEP_FILE, plan.spec)
    now = _fingerprint(plan)
    for field in SWEEP_FIELDS:
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
    verbose: bool = False,
) -> SweepOutcome:
    """Start the plan's sweep; with ``resume``, continue it instead if its results directory holds it.
    The libraries' log lines go to the results directory's driver.log (and the console with ``verbose``)."""
    root = results_dir_for(plan, results_root)
    check_address(address)
    if (root / SWEEP_FILE).exists():
        if not resume:
            raise SpecError(
                f"{root}: already holds a sweep; continue it with `scalesweep resume {root}`, "
                f"or remove it to start over"
            )
        _check_unchanged(plan, root)
        return _execute(plan, root, tracking_uri, address, verbose)
    fingerprint = {
        **_fingerprint(plan),
        "directory": str(plan.directory),
        "id": uuid.uuid4().hex,
        "started": time.time(),  # the report's wall time starts here: a copy resets file mtimes
    }
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / "spec.yaml").write_text(dump_spec(plan.spec))
        (root / SWEEP_FILE).write_text(json.dumps(fingerprint, indent=1))
    except OSError as err:
        raise SpecError(
            f"{root}: cannot write the sweep's results here ({err.strerror}); "
            f"expected a writable directory (--results or storage.results)"
        ) from None
    return _execute(plan, root, tracking_uri, address, verbose)


def resume_sweep(
    root: Path, tracking_uri: str | None = None, address: str | None = None, verbose: bool = False
) -> SweepOutcome:
    """Continue the sweep in ``root`` after its driver died: Tune's experiment state, the Optuna
    studies, ASHA's rungs (replayed from Parquet) and the results written so far all carry on."""
    if not (root / SWEEP_FILE).exists():
        raise SpecError(
            f"{root}: no sweep to resume here (expected {root / SWEEP_FILE}); "
            f"pass a results/<sweep> directory"
        )
    check_address(address)
    plan = load_plan(root)
    _check_unchanged(plan, root)
    return _execute(plan, root, tracking_uri, address, verbose)


def _execute(
    plan: SweepPlan, root: Path, tracking_uri: str | None, address: str | None, verbose: bool
) -> SweepOutcome:
    """One driver's run of a sweep: open the sinks, start Ray, run Tune, then finish the results. A stop
    signal ends it early with Parquet flushed and Tune's state saved (:class:`SweepInterrupted`)."""
    from orchestrator.store.lock import DriverLock
    from orchestrator.store.tracking import Tracker
    from orchestrator.tune.interrupts import SweepInterrupted, catching_stop_signals

    lock = DriverLock(root).acquire()
    try:
        key = sweep_key(root, plan.spec)
        started = time.monotonic()
        # First of all: MLflow's child imports MLflow (seconds of a core) while Ray and the rest start.
        uri = tracking_uri or plan.spec.storage.tracking_uri
        tracker = Tracker(uri, plan.spec, root, key, verbose) if uri else None
        import ray  # noqa: F401 - Ray adds its console handler at import: library_logs replaces it after

        with library_logs(root, verbose):
            try:
                sinks = _start(plan, root, key, tracker, address)
            except BaseException:
                if tracker:
                    tracker.discard()
                raise
            mark("results and MLflow open, packs sized, Tune imported")
            from orchestrator.tune.driver import attach  # imported by now (_start)

            try:
                with catching_stop_signals(stopping_flag(key)) as interrupt:
                    sinks.interrupt = interrupt
                    attach(key, sinks)
                    with _callbacks_untagged():
                        _fit(plan, key, sinks)
                    mark("Tune done")
            except KeyboardInterrupt:
                interrupt = sinks.interrupt
                interrupt.signum = interrupt.signum or signal.SIGINT
            finally:
                sinks.writer.flush()
                sinks.progress.close()
            if sinks.interrupt.signum is not None:
                _stop(sinks)
                raise SweepInterrupted(
                    sinks.interrupt.signum, root, len(sinks.writer.finished), plan.spec.most_trials
                ) from None
            curve_files = _finish(plan, root, sinks)
    finally:
        lock.release()
    return _outcome(plan, root, sinks, time.monotonic() - started, curve_files)


def exit_now(code: int) -> None:
    """End the process at once when it started an embedded Ray (else return, for a normal exit).

    Called by the command once its answer is printed and everything it wrote is flushed and closed: Ray's
    processes are killed, as a killed driver's are (the reaper's path), instead of shut down one by one,
    and the interpreter's teardown of torch, pyarrow and Ray's core worker is skipped: together seconds of
    a user's wait that change nothing on disk."""
    import ray

    if not (ray.is_initialized() and ray.get_runtime_context().gcs_address in _EMBEDDED):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    import psutil

    for child in psutil.Process().children(recursive=True):
        try:
            child.kill()
        except psutil.Error:
            pass
    os._exit(code)


def stopping_flag(key: str) -> str:
    """The key in Ray's key-value store that tells a sweep's running trials to checkpoint: it is stopping."""
    return f"scalesweep-stopping:{key}"


def _stop(sinks: "DriverSinks") -> None:
    """After a stop signal: results compacted, MLflow's parent run marked killed, an embedded Ray shut down
    (Tune has saved its state); no curves, which would read as the answer of a finished sweep."""
    import ray

    sinks.writer.compact()
    if sinks.tracker:
        sinks.tracker.close("KILLED")
    if ray.is_initialized() and ray.get_runtime_context().gcs_address in _EMBEDDED:
        ray.shutdown()


def _fit(plan: SweepPlan, key: str, sinks: "DriverSinks") -> None:
    """Run Tune until Parquet holds every trial. A restore from Tune's saved state that fails, or that
    leaves trials unscheduled (a damaged or partial snapshot), is followed by a fresh Tune run of what
    Parquet lacks: the searcher counts what is recorded, so nothing runs twice."""
    from orchestrator.tune.callback import SweepCallback

    settings, store = _trial_settings(plan, sinks), sinks.store
    callback = SweepCallback(key)
    sinks.interrupt.clear()
    if store.has_state():
        sinks.interrupt.fitting = True
        try:
            _restored_tuner(plan, store, settings).fit()
        except Exception as err:  # noqa: BLE001 - any damage to Tune's files: Parquet rebuilds
            print(
                f"note: Tune's saved state could not be restored ({type(err).__name__}); "
                f"running what Parquet lacks",
                file=sys.stderr,
            )
        finally:
            sinks.interrupt.fitting = False
        if sinks.interrupt.signum is not None or sweep_complete(
            plan, sinks.writer.finished.values()
        ):
            return
        print(
            "note: Tune's saved state left part of the sweep unscheduled; running it now",
            file=sys.stderr,
        )
        sinks.queued.clear()
        sinks.packs.clear()
        sinks.writer.flush()  # the new scheduler replays ASHA's rungs from Parquet
    store.clear()
    sinks.interrupt.fitting = True
    try:
        _fresh_tuner(plan, key, store, callback, settings).fit()
    finally:
        sinks.interrupt.fitting = False


def _start(
    plan: SweepPlan,
    root: Path,
    key: str,
    tracker: "Tracker | None",
    address: str | None,
) -> "DriverSinks":
    """Ray started on this thread (it waits on its own processes) while the sinks open, the packs are
    sized and Tune's modules are imported on others: each takes seconds of imports and I/O that need not
    wait on the others."""
    with ThreadPoolExecutor(3, thread_name_prefix="scalesweep-open") as pool:
        opening = pool.submit(_open_sinks, plan, root, key, tracker)
        sizing = pool.submit(lambda: plan.pack_sizes)
        tune_imported = pool.submit(importlib.import_module, "orchestrator.tune.callback")
        try:
            _init_ray(address)
            mark("Ray up")
        except BaseException:
            if opening.exception() is None:
                opening.result().progress.close()
            raise
        sizing.result()
        tune_imported.result()
        return opening.result()


def _open_sinks(plan: SweepPlan, root: Path, key: str, tracker: "Tracker | None") -> "DriverSinks":
    """Where results go: Parquet, MLflow (when a tracking URI is set), the progress display, the studies."""
    from orchestrator.answers.progress import Progress
    from orchestrator.store.checkpoints import ExperimentStore
    from orchestrator.store.results import ResultsWriter
    from orchestrator.store.tracking import sweep_params
    from orchestrator.tune.driver import DriverSinks
    from orchestrator.tune.packing import MemberStops
    from orchestrator.tune.studies import Studies

    spec = plan.spec
    writer = ResultsWriter(plan, root)
    if tracker:
        tracker.start_sweep(root / "spec.yaml", sweep_params(spec))
    progress = Progress(
        spec.most_trials,
        spec.samples_per_cell,
        writer.finished.values(),
        plan.metric,
        plan.mode,
        cells=[cell.key for cell in plan.cells],
        searched=list(spec.search.space),
        horizon=plan.epochs,
    )
    studies = Studies(plan, root / "studies")
    studies.catch_up(writer.finished.values())
    return DriverSinks(
        plan,
        root,
        writer,
        tracker,
        progress,
        studies,
        MemberStops(key),
        ExperimentStore.for_sweep(spec, root),
    )


def _trial_settings(plan: SweepPlan, sinks: "DriverSinks") -> "TrialSettings":
    """What every trial runs."""
    from orchestrator.tune.scheduling import rung_epochs
    from orchestrator.tune.shipping import ship
    from orchestrator.tune.trial import TrialSettings

    spec = plan.spec
    return TrialSettings(
        ship(plan.trainable, plan.ref),
        spec.seeds,
        plan.metric,
        spec.resources.cpu,
        spec.checkpoint_every_s,
        spec.report_every_s,
        rung_epochs(plan),
        sinks.stops.prefix,
        stopping_flag(sinks.stops.key),
        (spec.variants.axis,) if spec.variants else (),
    )


def _trainable(plan: SweepPlan, settings: "TrialSettings") -> Any:
    from ray import tune

    from orchestrator.tune.trial import tune_function

    resources = plan.spec.resources
    return tune.with_resources(
        tune_function(settings), {"cpu": resources.cpu, "gpu": resources.gpu}
    )


def _restored_tuner(
    plan: SweepPlan, store: "ExperimentStore", settings: "TrialSettings"
) -> "Tuner":
    """The Tuner Tune saved, with its searcher, scheduler and callback (each finds this driver's sinks
    by the sweep's key, not by a path: the results directory may have moved since)."""
    from ray import tune

    return tune.Tuner.restore(
        store.path,
        _trainable(plan, settings),
        resume_unfinished=True,
        resume_errored=False,
        storage_filesystem=store.fs,
    )


def _fresh_tuner(
    plan: SweepPlan, key: str, store: "ExperimentStore", callback: Any, settings: "TrialSettings"
) -> "Tuner":
    """A new Tune run of the trials Parquet lacks (all of them on a new sweep)."""
    from ray import tune

    from orchestrator.store.checkpoints import EXPERIMENT
    from orchestrator.tune.callback import QuietTrialProgress
    from orchestrator.tune.scheduling import CellScheduler
    from orchestrator.tune.search import CellSearcher

    spec = plan.spec
    return tune.Tuner(
        _trainable(plan, settings),
        tune_config=tune.TuneConfig(
            search_alg=CellSearcher(plan, key),
            scheduler=CellScheduler(plan, key),
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
            callbacks=[callback, QuietTrialProgress()],
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            # Keep every checkpoint while a trial runs: with num_to_keep, Tune deletes the one its last
            # snapshot points to before the next snapshot, and a driver killed in between cannot restore
            # that trial. The callback deletes a trial's checkpoints once recorded.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
        ),
    )


def _finish(plan: SweepPlan, root: Path, sinks: "DriverSinks") -> list[Path]:
    """Compact the metrics, drop checkpoints no resume needs, write the curves (unless every trial failed)
    and log them to the sweep's MLflow run."""
    writer = sinks.writer
    writer.compact()
    complete = sweep_complete(plan, writer.finished.values())  # else keep what a resume needs
    sinks.store.drop_checkpoints(lambda trial_id: complete or trial_id in writer.finished)
    mark("Parquet compacted")
    failed = all(row["status"] == "errored" for row in writer.finished.values())
    curve_files: list[Path] = []
    if plan.spec.curves and not failed:
        # imported here, only for curves: matplotlib's import is a second of a core
        from orchestrator.answers.write import write_sweep_curves

        curve_files = write_sweep_curves(plan, root)
    mark("curves written")
    if sinks.tracker:
        if curve_files:
            sinks.tracker.log_artifacts(curve_files, "curves")
        sinks.tracker.close()
        mark("MLflow flushed")
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
    elif rows and counts["errored"] + counts["diverged"] == len(rows):
        failure = (
            f"no trial finished with a finite {plan.metric} ({counts['diverged']} diverged, "
            f"{counts['errored']} failed): nothing to fit; try a lower learning rate"
        )
    return SweepOutcome(
        plan,
        root,
        counts,
        seconds,
        curve_files,
        sinks.tracker.failed if sinks.tracker else None,
        failure,
    )
