"""scalesweep from Python: run a sweep of your own trainable, read its results, fit its curves.

    import scalesweep
    trials = scalesweep.run("sweep.yaml", trainable=train)   # train(config, report): see docs/trainables.md
    trials = scalesweep.load("results/quickstart")    # one row per trial: cell, axes, params, final_/best_ metrics
    scalesweep.curves.sample_complexity(trials, x="n_train", y="test_error",
                                        by=["embed_dim", "vo_identity"], threshold=0.05)
    scalesweep.curves.scaling_law(trials[trials.vo_identity], x="n_train", y="test_loss", by=["embed_dim"])

A fit needs per-seed values, which ``trials`` does not hold: the curve functions turn trials (from
:func:`load`, filtered or not), or a results directory, into per-seed points with
:func:`load_points` (each cell's best trial, as ``scalesweep curves`` picks it), and accept such
points directly. The logic lives in ``orchestrator.answers``; this package only adapts it to notebooks.
"""

from orchestrator.spec.schema import SpecError
from orchestrator.store.results import load_metrics
from trainables import ConfigError, Report, Reporter, Row, Trainable, seed_mean

from . import curves
from .results import load, load_points
from .sweep import SweepError, run

__all__ = [
    "ConfigError",
    "Report",
    "Reporter",
    "Row",
    "SpecError",
    "SweepError",
    "Trainable",
    "curves",
    "load",
    "load_metrics",
    "load_points",
    "run",
    "seed_mean",
]
