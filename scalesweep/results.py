"""Loading a sweep's Parquet results for a notebook: trials, metrics and the per-seed points fits use."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Union

import pandas as pd

from orchestrator.answers.curves import seed_points
from orchestrator.spec.schema import load_spec
from orchestrator.store.results import load_metrics, load_trials

ResultsDir = Union[str, "os.PathLike[str]"]
RESULTS_DIR = "scalesweep.results_dir"  # the attrs key by which trials remember their sweep


def load(results_dir: ResultsDir) -> pd.DataFrame:
    """``trials.parquet`` of ``results/<sweep>``: one row per trial with its ``cell``, one column per
    axis and searched hyper-parameter, ``status``, ``epochs`` and ``final_``/``best_<metric>``.

    The frame remembers its directory (``df.attrs``, kept by pandas through filtering), so a
    filtered frame can be handed straight to ``scalesweep.curves`` functions.
    """
    root = Path(results_dir)
    if not (root / "trials.parquet").exists():
        raise FileNotFoundError(
            f"{root}: no trials.parquet; expected a results/<sweep> directory of a sweep "
            f"that has finished at least one trial"
        )
    trials = load_trials(root)
    trials.attrs[RESULTS_DIR] = str(root)
    return trials


def load_points(
    data: ResultsDir | pd.DataFrame, at: Literal["final", "best"] = "final"
) -> pd.DataFrame:
    """Per cell, the best trial's per-seed metrics at its final (or best) epoch: what fits use.

    ``data`` is a results directory, or trials from :func:`load` (possibly filtered: the best
    trial per cell is then chosen among those rows). Trials are ranked by the spec's metric, as
    ``scalesweep curves`` ranks them.
    """
    if isinstance(data, pd.DataFrame):
        if RESULTS_DIR not in data.attrs:
            raise ValueError(
                "trials: no results directory attached; pass a frame from scalesweep.load(DIR) "
                "or the directory itself"
            )
        root, trials = Path(data.attrs[RESULTS_DIR]), data
    else:
        root = Path(data)
        trials = load(root)
    spec = load_spec(root / "spec.yaml")
    select = spec.metric.name
    return seed_points(
        trials, load_metrics(root), list(spec.axes), select, {select: spec.metric.mode or "min"}, at
    )
