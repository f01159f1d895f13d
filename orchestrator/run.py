"""Running a sweep: a Ray Tune Tuner with our searcher, scheduler and callback, tuned for tiny trials.

Defaults chosen from measurements on Ray 2.60 (DESIGN.md): with any custom searcher Tune keeps at
most ONE trial pending unless ``max_concurrent_trials`` is set, and re-creating actors and the
automatic JSON/CSV/TensorBoard loggers dominate a short trial's cost; so we cap concurrency at the
cluster's capacity, reuse actors, and turn the automatic loggers off (our callback writes results).
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .cells import expand
from .plan import SweepPlan
from .spec import SpecError, dump_spec

os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@dataclass
class SweepOutcome:
    plan: SweepPlan
    results_dir: Path
    counts: dict[str, int]
    seconds: float
    curve_files: list[Path]
    tracking_error: str | None


def results_dir_for(plan: SweepPlan, results_root: str | None) -> Path:
    return Path(results_root or plan.spec.storage.results) / plan.spec.name


def _init_ray(address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    # Tune's end-of-run ExperimentAnalysis looks for the JSON/CSV loggers we turn off; its warning is noise.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
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


FINGERPRINT_FILE = "sweep.json"
# Spec fields that decide which trials run and how they are searched: a resume must not change them.
SEARCH_FIELDS = ("trainable", "fixed", "axes", "search", "seeds", "metric", "scheduler")


def _fingerprint(plan: SweepPlan) -> dict:
    return plan.spec.model_dump(mode="json", include=set(SEARCH_FIELDS))  # axis order kept: it names cells


def _check_unchanged(plan: SweepPlan, root: Path) -> None:
    """Refuse to resume with a spec whose cells or search differ from the sweep's start (a restore
    that silently changes the search would mix two experiments in one table)."""
    stored = json.loads((root / FINGERPRINT_FILE).read_text())
    now = _fingerprint(plan)
    for field in SEARCH_FIELDS:
        if stored.get(field) != now.get(field):
            detail = ""
            if field == "axes":
                old, new = {c.key for c in expand(stored["axes"])}, {c.key for c in plan.cells}
                detail = f" (cells added: {len(new - old)}, removed: {len(old - new)})"
            raise SpecError(f"{root}/spec.yaml: {field} changed since the sweep started{detail}; "
                            f"restore it, or start a new sweep under another name")


def run_sweep(plan: SweepPlan, results_root: str | None = None, tracking_uri: str | None = None,
              address: str | None = None, resume: bool = False) -> SweepOutcome:
    """Start the plan's sweep; with ``resume``, continue it instead if its results directory holds it."""
    root = results_dir_for(plan, results_root)
    if (root / FINGERPRINT_FILE).exists():
        if not resume:
            raise SpecError(f"{root}: already holds a sweep; continue it with `scalesweep resume {root}`, "
                            f"or remove it to start over")
        _check_unchanged(plan, root)
        return _execute(plan, root, tracking_uri, address)
    root.mkdir(parents=True, exist_ok=True)
    (root / "spec.yaml").write_text(dump_spec(plan.spec))
    (root / FINGERPRINT_FILE).write_text(json.dumps(_fingerprint(plan), indent=1))
    return _execute(plan, root, tracking_uri, address)


def resume_sweep(root: Path, tracking_uri: str | None = None, address: str | None = None) -> SweepOutcome:
    """Continue the sweep in ``root`` after its driver died: Tune's experiment state, the Optuna
    studies, ASHA's rungs (replayed from Parquet) and the results written so far all carry on."""
    from .plan import plan_sweep
    from .spec import load_spec

    if not (root / FINGERPRINT_FILE).exists():
        raise SpecError(f"{root}: no sweep to resume here (expected {root / FINGERPRINT_FILE}); "
                        f"pass a results/<sweep> directory")
    plan = plan_sweep(load_spec(root / "spec.yaml"), str(root / "spec.yaml"))
    _check_unchanged(plan, root)
    return _execute(plan, root, tracking_uri, address)


def _execute(plan: SweepPlan, root: Path, tracking_uri: str | None, address: str | None) -> SweepOutcome:
    from ray import tune

    from trainables.tune_adapter import tune_function

    from .callback import DriverSinks, SweepCallback
    from .lock import DriverLock
    from .packing import MemberStops
    from .progress import Progress
    from .results import STATUSES, ResultsWriter
    from .scheduling import CellScheduler, rung_epochs
    from .search import CellSearcher, Studies
    from .storage import EXPERIMENT, ExperimentStore
    from .tracking import Tracker, sweep_params

    spec = plan.spec
    store = ExperimentStore.for_sweep(spec, root)
    lock = DriverLock(root).acquire()
    try:
        writer = ResultsWriter(plan, root)
        uri = tracking_uri or spec.storage.tracking_uri
        tracker = Tracker(uri, spec.name, root) if uri else None
        if tracker:
            tracker.start_sweep(root / "spec.yaml", sweep_params(spec))
        _init_ray(address)
        started = time.monotonic()
        progress = Progress(spec.total_trials, spec.samples_per_cell, writer.finished.values(), plan.metric, plan.mode)
        callback = SweepCallback.attach(str(root.resolve()), DriverSinks(plan, writer, tracker, progress,
                                                                             Studies(plan, root / "studies")))
        stops = MemberStops.of(str(root.resolve()))
        if max(plan.pack_sizes.values()) > 1:
            stops.start_actor()
        trainable = tune.with_resources(
            tune_function(spec.trainable, spec.resources.cpu, spec.checkpoint_every_s, spec.report_every_s,
                          rung_epochs(plan), stops.actor_name),
            {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu})
        if store.has_state():
            tuner = tune.Tuner.restore(store.path, trainable, resume_unfinished=True, resume_errored=False,
                                       storage_filesystem=store.fs)
        else:  # a fresh sweep, or one killed before Tune saved any state: (re)start what Parquet lacks
            store.clear()
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    search_alg=CellSearcher(plan, root), scheduler=CellScheduler(plan, root),
                    num_samples=spec.total_trials,  # at most; the searcher ends sooner when trials are packed
                    max_concurrent_trials=_max_concurrent(plan), reuse_actors=True,
                    trial_dirname_creator=lambda trial: trial.trial_id,
                ),
                run_config=tune.RunConfig(
                    name=EXPERIMENT, storage_path=store.base, storage_filesystem=store.fs, verbose=0,
                    callbacks=[callback],
                    failure_config=tune.FailureConfig(max_failures=spec.max_failures),
                    # Keep every checkpoint while a trial runs: with num_to_keep, Tune deletes the one its
                    # last snapshot points to before the next snapshot, and a driver killed in between
                    # cannot restore that trial. The callback deletes a trial's checkpoints once recorded.
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
                ),
            )
        try:
            tuner.fit()
        finally:
            writer.flush()
            progress.close()
        writer.compact()
        complete = len(writer.finished) >= spec.total_trials  # else fit was interrupted: keep the unrecorded
        store.drop_checkpoints(lambda trial_id: complete or trial_id in writer.finished)
        curve_files = _curves(plan, root)
        if tracker:
            if curve_files:
                tracker.log_artifacts(curve_files, "curves")
            tracker.close()
    finally:
        lock.release()
    counts = {s: 0 for s in STATUSES}
    for row in writer.finished.values():
        counts[row["status"]] += 1
    return SweepOutcome(plan, root, counts, time.monotonic() - started, curve_files, tracker.failed if tracker else None)


def _curves(plan: SweepPlan, root: Path) -> list[Path]:
    """The spec's curves, written under ``curves/``; an empty list when there is nothing to fit."""
    if not plan.spec.curves:
        return []
    from .curves import write_curves
    from .positions import load_positions
    from .results import load_metrics, load_trials

    trials = load_trials(root)
    if trials.empty:
        return []
    return write_curves(trials, load_metrics(root), plan.spec.curves, plan.axes, plan.metric, plan.modes,
                        root / "curves", positions=load_positions(root))
