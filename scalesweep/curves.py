"""Curve fits for notebooks: ``orchestrator.answers.curves`` taking trials, a results directory or points.

``data`` is any of: trials from :func:`scalesweep.load` (filtered or not), a results directory, or
per-seed points (a frame with a ``seed`` column, e.g. from :func:`scalesweep.load_points`). Every
other argument is passed on to the function of the same name in ``orchestrator.answers.curves``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import pandas as pd

from orchestrator.answers import curves as _curves
from orchestrator.answers.curves import scaling_slope, seed_points

from .results import ResultsDir, load_points

__all__ = ["sample_complexity", "scaling_law", "scaling_slope", "seed_points"]


def _points(data: ResultsDir | pd.DataFrame, at: Literal["final", "best"]) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame) and "seed" in data.columns:
        return data
    return load_points(data, at)


def sample_complexity(
    data: ResultsDir | pd.DataFrame,
    x: str,
    y: str,
    by: Sequence[str],
    threshold: float,
    mode: Literal["min", "max"] = "min",
    *,
    at: Literal["final", "best"] = "final",
    **kwargs: Any,
) -> pd.DataFrame:
    """n* per group of ``by``: the smallest x from which the seed mean of y meets ``threshold``
    (with a sigmoid estimate and bootstrap CIs; ``chance=`` fixes the sigmoid's small-x level)."""
    return _curves.sample_complexity(_points(data, at), x, y, list(by), threshold, mode, **kwargs)


def scaling_law(
    data: ResultsDir | pd.DataFrame,
    x: str,
    y: str,
    by: Sequence[str],
    *,
    at: Literal["final", "best"] = "final",
    **kwargs: Any,
) -> pd.DataFrame:
    """y = A·x^(-α) + E per group of ``by``, fitted to the seed means with bootstrap CIs."""
    return _curves.scaling_law(_points(data, at), x, y, list(by), **kwargs)
