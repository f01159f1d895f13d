"""scalesweep from a notebook: a sweep's results as pandas DataFrames, and its curves.

    import scalesweep
    trials = scalesweep.load("results/quickstart")    # one row per trial: cell, axes, params, final_/best_ metrics
    scalesweep.curves.sample_complexity(trials, x="n_train", y="test_error",
                                        by=["embed_dim", "vo_identity"], threshold=0.05)
    scalesweep.curves.scaling_law(trials[trials.vo_identity], x="n_train", y="test_loss", by=["embed_dim"])

A fit needs per-seed values, which ``trials`` does not hold: the curve functions turn trials (from
:func:`load`, filtered or not), or a results directory, into per-seed points with
:func:`load_points` (each cell's best trial, as ``scalesweep curves`` picks it), and accept such
points directly. The logic lives in ``orchestrator``; this package only adapts it to notebooks.
"""
from orchestrator.results import load_metrics

from . import curves
from .results import load, load_points

__all__ = ["curves", "load", "load_metrics", "load_points"]
