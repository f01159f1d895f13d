"""The answer to a sweep: n* and scaling-law fits with bootstrap CIs, from its Parquet results.

Pure functions on DataFrames (usable from a notebook) plus `write_curves`, which the CLI calls at
the end of a sweep. Every interval is a percentile bootstrap over *seeds*, resampled within each
x, so it says how much the answer would move with other seeds. With 3 seeds the plain bootstrap
under-states the spread of a mean by a factor (k-1)/k in variance, so resampled means are pushed
away from the observed mean by sqrt(k/(k-1)) ("inflated"): the coverage tests rely on it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, NamedTuple, Sequence
import warnings

import numpy as np
import pandas as pd

from orchestrator.fitting import ci_bounds, fit_power_law, fit_sigmoid, sigmoid_crossing

Mode = Literal["min", "max"]
SC_COLUMNS = ["n_star", "n_star_lo", "n_star_hi", "n_star_smooth", "n_star_smooth_lo",
              "n_star_smooth_hi", "reached", "x_min", "x_max", "n_seeds"]
SL_COLUMNS = ["alpha", "alpha_lo", "alpha_hi", "A", "A_lo", "A_hi", "E", "E_lo", "E_hi",
              "rmse_log", "n_points"]
_STATUS_RANK = {"completed": 0, "pruned": 1, "diverged": 2}
_KEYS = ("trial_id", "epoch", "seed")
