"""Per-position curves as numbers and text: a metric against the context position k (in-context
learning), the model's curve per group beside the trainable's other curves (oracle, baseline) as
references. Read from ``positions/`` (``positions_store``); drawn by ``figures.plot_positions``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from orchestrator.answers.tables import format_value, markdown_table
from orchestrator.store.positions import POSITION_KEYS


def position_table(
    points: pd.DataFrame, positions: pd.DataFrame, y: str, by: Sequence[str]
) -> pd.DataFrame:
    """Per group and position: the best trial's ``y`` (mean over seeds, ± one standard error) and the
    seed means of the other curves. ``points`` are curves.seed_points' rows (one best trial per cell)."""
    if y not in positions.columns:
        have = [c for c in positions.columns if c not in POSITION_KEYS]
        raise ValueError(f"y: {y!r} is not a per-position curve the trainable reports; have {have}")
    cells = points.drop_duplicates("trial_id")[["trial_id", *by]]
    data = positions.merge(cells, on="trial_id")
    others = [c for c in positions.columns if c not in (*POSITION_KEYS, y)]
    grouped = data.groupby([*by, "position"], dropna=False, sort=True)
    table = grouped[[y, *others]].mean()
    n = grouped[y].count()
    table[f"{y}_se"] = (grouped[y].std(ddof=1) / np.sqrt(n)).fillna(0.0)
    table["n_seeds"] = n
    return table.reset_index()


def position_references(table: pd.DataFrame, y: str, by: Sequence[str]) -> list[str]:
    """The trainable's other curves in a position table (oracle, baseline): drawn as references."""
    return [c for c in table.columns if c not in (*by, "position", y, f"{y}_se", "n_seeds")]


def positions_markdown(table: pd.DataFrame, y: str, by: Sequence[str]) -> list[str]:
    """Per group: ``y`` averaged over positions and at the last position, beside the references."""
    others = position_references(table, y, by)
    header = [*by, f"{y} (mean over k)", f"{y} (last k)", *[f"{c} (mean over k)" for c in others]]
    rows = []
    groups = table.groupby(list(by), sort=True) if by else [((), table)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        last = g.sort_values("position").iloc[-1]
        rows.append(
            [
                *map(format_value, key),
                f"{g[y].mean():.3f}",
                f"{last[y]:.3f}",
                *[f"{g[c].mean():.3f}" for c in others],
            ]
        )
    return [f"## {y} by context position", "", *markdown_table(header, rows)]
