"""A sweep's answers as metrics and tags of its MLflow parent run, so ``mlflow.search_runs`` finds
sweeps by what they found: n* per group, the slope of n* against each numeric axis, trials by status.

They are read from what the results directory holds (``curves/`` as the curve writer left it, and
``trials.parquet``), so the live tracker and ``sync-mlflow`` log the same values. MLflow names allow
only ``[/\\w.\\- :]`` (no ``=`` nor ``,``; no ``:`` on Windows), so the group
``embed_dim=64,vo_identity=true`` is named ``embed_dim_64/vo_identity_true``: the metric
``n_star/embed_dim_64/vo_identity_true``, with the curve's name after ``n_star/`` when the spec has
several sample-complexity curves. A metric holds a finite value; its tag, of the same name, reads as
the summary does (``16 [8, 32]``, or ``not reached (> 256)``). Trial counts are ``trials/<status>``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.spec.cells import format_value
from orchestrator.store.parquet_io import read_table
from orchestrator.store.results import STATUSES, read_trials

CURVES_DIR = "curves"  # where the curve writer (answers/write.py, a layer above) puts its tables
_UNSAFE = re.compile(r"[^\w.\-]")


@dataclass
class Answers:
    """What the parent run gets, by MLflow name: numbers to search by, and the same as text to read."""

    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, value: float, text: str) -> None:
        if math.isfinite(value):
            self.metrics[name] = value
        self.tags[name] = text


def _name(*parts: str) -> str:
    return "/".join(_UNSAFE.sub("_", p) for p in parts if p)


def _group(row: dict[str, Any], axes: Collection[str]) -> list[str]:
    """A table row's group as name segments, one per axis it is grouped by."""
    return [f"{a}_{format_value(v)}" for a, v in row.items() if a in axes]


def _rows(root: Path, table: str) -> list[dict[str, Any]]:
    path = root / CURVES_DIR / f"{table}.parquet"
    return read_table(path).to_pylist() if path.exists() else []


def sweep_answers(root: Path, axes: Collection[str]) -> Answers:
    """The answers the sweep in ``root`` holds now (no curves yet: its trial counts only)."""
    answers = Answers()
    n_star = _rows(root, "sample_complexity")
    several = len({r["curve"] for r in n_star}) > 1
    for r in n_star:
        name = _name("n_star", r["curve"] if several else "", *_group(r, axes))
        text = (
            f"{r['n_star']:g} [{r['n_star_lo']:g}, {r['n_star_hi']:g}]"
            if r["reached"]
            else f"not reached (> {r['x_max']:g})"
        )
        answers.add(name, float(r["n_star"]), text)
    for r in _rows(root, "scaling_slope"):
        name = _name("n_star_slope", r["curve"] if several else "", r["axis"], *_group(r, axes))
        text = f"{r['slope']:.3g} [{r['slope_lo']:.3g}, {r['slope_hi']:.3g}]"
        answers.add(name, float(r["slope"]), text)
    table = read_trials(root, ["status"])
    statuses = table.column("status").to_pylist() if table is not None else []
    answers.metrics.update({_name("trials", s): float(statuses.count(s)) for s in STATUSES})
    return answers
