"""Per-position curves: a metric as a function of the context position k (in-context learning).

A trainable may add ``seed_curves`` ({curve: [[value per position] per seed]}) to its final report
(the ``incontext`` trainable reports ``acc_by_k``, ``oracle_acc_by_k``, ``baseline_acc_by_k``). They
are stored beside ``metrics/`` as ``positions/`` (one row per trial × seed × position, a column per
curve) and drawn by the ``position`` curve kind: the model's curve per group, with the trainable's
other curves (oracle, baseline) as references in the same panel.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    import pandas as pd

POSITIONS_DIR = "positions"
_KEYS = ["trial_id", "seed", "position"]


def position_rows(trial_id: str, base_seed: int, seed_curves: Mapping[str, list[list[float]]]) -> pa.Table:
    """One trial's curves as rows: position i is the query after i in-context examples."""
    columns: dict[str, list[Any]] = {k: [] for k in _KEYS} | {c: [] for c in seed_curves}
    first = next(iter(seed_curves.values()))
    for s, values in enumerate(first):
        for i in range(len(values)):
            columns["trial_id"].append(trial_id)
            columns["seed"].append(base_seed + s)
            columns["position"].append(i)
            for curve, per_seed in seed_curves.items():
                columns[curve].append(float(per_seed[s][i]))
    types = {"trial_id": pa.string(), "seed": pa.int64(), "position": pa.int64()}
    return pa.table({k: pa.array(v, type=types.get(k, pa.float64())) for k, v in columns.items()})


def load_positions(root: str | Path) -> "pd.DataFrame":
    """The ``positions/`` dataset as a DataFrame (empty when the trainable reports no curves)."""
    import pandas as pd

    parts = sorted((Path(root) / POSITIONS_DIR).glob("*.parquet"))
    if not parts:
        return pd.DataFrame(columns=_KEYS)
    return pa.concat_tables([pq.read_table(p) for p in parts], promote_options="default").to_pandas()


def position_table(points: "pd.DataFrame", positions: "pd.DataFrame", y: str, by: Sequence[str]) -> "pd.DataFrame":
    """Per group and position: the best trial's ``y`` (mean over seeds, ± one standard error) and the
    seed means of the other curves. ``points`` are curves.seed_points' rows (one best trial per cell)."""
    if y not in positions.columns:
        have = [c for c in positions.columns if c not in _KEYS]
        raise ValueError(f"y: {y!r} is not a per-position curve the trainable reports; have {have}")
    cells = points.drop_duplicates("trial_id")[["trial_id", *by]]
    data = positions.merge(cells, on="trial_id")
    others = [c for c in positions.columns if c not in (*_KEYS, y)]
    grouped = data.groupby([*by, "position"], dropna=False, sort=True)
    table = grouped[[y, *others]].mean()
    n = grouped[y].count()
    table[f"{y}_se"] = (grouped[y].std(ddof=1) / np.sqrt(n)).fillna(0.0)
    table["n_seeds"] = n
    return table.reset_index()


def plot_positions(table: "pd.DataFrame", y: str, by: Sequence[str], path: Path) -> Path:
    """One panel per value of the first ``by`` axis (when there are two or more), a line per group,
    the reference curves in black (dashed, dotted)."""
    from matplotlib.figure import Figure

    from .plots import save_png

    panel_axis = by[0] if len(by) > 1 else None
    panels = list(table[panel_axis].drop_duplicates()) if panel_axis else [None]
    line_axes = [a for a in by if a != panel_axis]
    others = _references(table, y, by)
    fig = Figure(figsize=(4.2 * len(panels), 3.4))
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    for ax, panel in zip(axes, panels):
        sub = table if panel_axis is None else table[table[panel_axis] == panel]
        groups = sub.groupby(line_axes, sort=True) if line_axes else [((), sub)]
        for key, g in groups:
            key = key if isinstance(key, tuple) else (key,)
            label = ", ".join(f"{a}={v}" for a, v in zip(line_axes, key)) or y
            ax.plot(g["position"], g[y], marker=".", label=label)
            ax.fill_between(g["position"], g[y] - g[f"{y}_se"], g[y] + g[f"{y}_se"], alpha=0.2)
        reference = sub.groupby("position")[others].mean()
        for style, curve in zip(("--", ":", "-."), others):
            ax.plot(reference.index, reference[curve], "k" + style, label=curve.removesuffix("_by_k"))
        ax.set_title(f"{panel_axis}={panel}" if panel_axis else y)
        ax.set_xlabel("in-context examples before the query (k)")
        ax.grid(True, alpha=0.3, linewidth=0.6)
    axes[0].set_ylabel(y)
    return save_png(fig, axes[-1], path)


def _references(table: "pd.DataFrame", y: str, by: Sequence[str]) -> list[str]:
    """The trainable's other curves in a position table (oracle, baseline): drawn as references."""
    return [c for c in table.columns if c not in (*by, "position", y, f"{y}_se", "n_seeds")]


def positions_markdown(table: "pd.DataFrame", y: str, by: Sequence[str]) -> list[str]:
    """Per group: ``y`` averaged over positions and at the last position, beside the references."""
    from .plots import markdown_table

    others = _references(table, y, by)
    header = [*by, f"{y} (mean over k)", f"{y} (last k)", *[f"{c} (mean over k)" for c in others]]
    rows = []
    groups = table.groupby(list(by), sort=True) if by else [((), table)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        last = g.sort_values("position").iloc[-1]
        rows.append([*map(str, key), f"{g[y].mean():.3f}", f"{last[y]:.3f}", *[f"{g[c].mean():.3f}" for c in others]])
    return [f"## {y} by context position", "", *markdown_table(header, rows)]
