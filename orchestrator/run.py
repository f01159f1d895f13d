"""Running a sweep: a Ray Tune Tuner with our searcher, scheduler and callback, tuned for tiny trials.

Defaults chosen from measurements on Ray 2.60 (DESIGN.md): with any custom searcher Tune keeps at
most ONE trial pending unless ``max_concurrent_trials`` is set, and re-creating actors and the
automatic JSON/CSV/TensorBoard loggers dominate a short trial's cost; so we cap concurrency at the
cluster's capacity, reuse actors, and turn the automatic loggers off (our callback writes results).
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .plan import SweepPlan
from .spec import SpecError, dump_spec

os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@dataclass
class SweepOutcome:
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


def run_sweep(plan: SweepPlan, results_root: str | None = None, tracking_uri: str | None = None,
              address: str | None = None) -> SweepOutcome:
    """Run every trial of the plan; returns counts per status. Raises SpecError for unusable input."""
    from ray import tune

    from trainables.tune_adapter import tune_function

    from .callback import DriverSinks, SweepCallback
    from .progress import Progress
    from .results import ResultsWriter
    from .scheduling import CellScheduler
    from .search import CellSearcher
    from .tracking import Tracker

    spec = plan.spec
    root = results_dir_for(plan, results_root)
    if (root / "tune").exists():
        raise SpecError(f"{root}: already holds a sweep; remove it to start over, or run with --results DIR")
    root.mkdir(parents=True, exist_ok=True)
    (root / "spec.yaml").write_text(dump_spec(spec))
    uri = tracking_uri or spec.storage.tracking_uri
    tracker = Tracker(uri, spec.name, root) if uri else None
    if tracker:
        tracker.start_sweep(root / "spec.yaml", {"trainable": spec.trainable, "cells": spec.n_cells,
                                                 "trials": spec.total_trials, "seeds": spec.seeds})

    _init_ray(address)
    started = time.monotonic()
    writer = ResultsWriter(plan, root)
    progress = Progress(spec.total_trials, 0, plan.metric)
    callback = SweepCallback.attach(str(root.resolve()), DriverSinks(plan, writer, tracker, progress))
    resources = {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}
    tuner = tune.Tuner(
        tune.with_resources(tune_function(spec.trainable, spec.resources.cpu), resources),
        tune_config=tune.TuneConfig(
            search_alg=CellSearcher(plan, root / "studies"), scheduler=CellScheduler(plan), num_samples=spec.total_trials,
            max_concurrent_trials=_max_concurrent(plan), reuse_actors=True,
            trial_dirname_creator=lambda trial: trial.trial_id,
        ),
        run_config=tune.RunConfig(
            name="tune", storage_path=str(root.resolve()), verbose=0,
            callbacks=[callback],
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )
    try:
        tuner.fit()
    finally:
        progress.close()
        writer.flush()
    curve_files = _curves(plan, root)
    if tracker:
        if curve_files:
            tracker.log_artifacts(curve_files, "curves")
        tracker.close()
    counts = {s: 0 for s in ("completed", "pruned", "errored", "diverged")}
    for row in writer.finished.values():
        counts[row["status"]] += 1
    return SweepOutcome(root, counts, time.monotonic() - started, curve_files,
                        tracker.failed if tracker else None)


def _curves(plan: SweepPlan, root: Path) -> list[Path]:
    """The spec's curves, written under ``curves/``; an empty list when there is nothing to fit."""
    if not plan.spec.curves:
        return []
    from .curves import write_curves
    from .results import load_metrics, load_trials

    trials = load_trials(root)
    if trials.empty:
        return []
    return write_curves(trials, load_metrics(root), plan.spec.curves, plan.axes, plan.metric, plan.modes,
                        root / "curves")
