"""Writing a sweep's curves: every curve of its spec fitted, as ``curves/<kind>.parquet`` tables, PNG
figures and ``summary.md``. The end of a run, ``scalesweep curves`` (from Parquet or from MLflow) and
``scalesweep report`` all come through :func:`write_sweep_curves`, so they never disagree.

A curve the results cannot support (its ``y`` absent, or no finite value at any cell's best trial,
as when every trial failed) is skipped with a one-line warning: a sweep's other curves, and the run
that wrote its results, should not fail for it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from orchestrator.answers import figures
from orchestrator.answers.curves import (
    METRIC_KEYS,
    metric_sign,
    sample_complexity,
    scaling_law,
    scaling_slope,
    seed_points,
)
from orchestrator.answers.positions import position_table, positions_markdown
from orchestrator.answers.tables import (
    sample_complexity_markdown,
    scaling_law_markdown,
    search_n_star,
    slope_markdown,
)
from orchestrator.spec.probes import Probes, probes_of
from orchestrator.spec.schema import CurveSpec
from orchestrator.store.parquet_io import write_table
from orchestrator.store.positions import load_positions
from orchestrator.store.results import load_metrics, load_trials

if TYPE_CHECKING:
    from orchestrator.spec.plan import SweepPlan

CURVES_DIR = "curves"
_TABLES = (
    "sample_complexity",
    "scaling_law",
    "position",
    "scaling_slope",
)  # Parquet files, in this order


@dataclass
class _Curve:
    """One curve spec read against the results: its points, its full `by` and its files' stem."""

    spec: CurveSpec
    name: str
    by: list[str]
    at: str
    points: pd.DataFrame


@dataclass
class _Outputs:
    """What a sweep's curves add up to: figures as drawn, tables and summary lines to write at the end."""

    out: Path
    md: list[str]
    paths: list[Path] = field(default_factory=list)
    tables: dict[str, list[pd.DataFrame]] = field(default_factory=lambda: {k: [] for k in _TABLES})


def write_sweep_curves(
    plan: "SweepPlan",
    root: str | Path,
    trials: pd.DataFrame | None = None,
    metrics: pd.DataFrame | None = None,
    positions: pd.DataFrame | None = None,
) -> list[Path]:
    """The spec's curves written under ``root/curves``; the paths, or [] when there is nothing to fit.

    The tables default to the sweep's Parquet results; pass ``trials`` and ``metrics`` (and, if the
    source has them, ``positions``) to fit runs read from elsewhere, e.g. an MLflow server.
    """
    if not plan.spec.curves:
        return []
    if trials is None:
        trials, metrics, positions = load_trials(root), load_metrics(root), load_positions(root)
    if trials.empty:
        return []
    probes = probes_of(plan, trials.to_dict("records"))
    paths = write_curves(
        trials,
        pd.DataFrame() if metrics is None else metrics,
        plan.spec.curves,
        plan.axes,
        plan.metric,
        plan.modes,
        Path(root) / CURVES_DIR,
        positions=positions,
        searched=(probes.axis, pd.DataFrame(probes.table())) if probes else None,
    )
    if probes:
        paths.append(_adaptive_search(probes, len(plan.spec.axes[probes.axis]), root))
    return paths


def _adaptive_search(probes: Probes, grid: int, root: str | Path) -> Path:
    """Each group's search beside its curve: the bracket that decided n*, the probes it took (of the
    grid's values) and the probes that contradict a neighbour (non-monotone: n* is then the smallest
    success above the largest failure). A table, and a section of summary.md."""
    table = pd.DataFrame(probes.table())
    path = Path(root) / CURVES_DIR / "adaptive_search.parquet"
    write_table(
        pa.Table.from_pandas(table.astype({"non_monotone": str}), preserve_index=False), path
    )
    lines = [
        "",
        f"## Adaptive search of {probes.axis}",
        "",
        f"Per group: the bracket [fails at, succeeds at] that decides n*, and the probes it took of "
        f"the grid's {grid} values (only probed cells were run: the curves above show no others).",
        "",
        "| group | bracket | n* | probes | not monotone at |",
        "|---|---|---|---|---|",
    ]
    for row in probes.table():
        n_star = search_n_star(row)
        lines.append(
            f"| {row['group'] or '(all)'} | [{row['fails_at']}, {row['succeeds_at']}] | {n_star} | "
            f"{row['probes']} | {', '.join(map(str, row['non_monotone'])) or '-'} |"
        )
    summary = Path(root) / CURVES_DIR / "summary.md"
    summary.write_text(summary.read_text() + "\n".join(lines) + "\n")
    return path


def write_curves(
    trials: pd.DataFrame,
    metrics: pd.DataFrame,
    curve_specs: Sequence[CurveSpec | Mapping[str, Any]],
    axes: Sequence[str],
    select: str,
    modes: dict[str, str],
    out_dir: str | Path,
    n_boot: int = 500,
    seed: int = 0,
    positions: pd.DataFrame | None = None,
    searched: tuple[str, pd.DataFrame] | None = None,
) -> list[Path]:
    """Fit every curve spec, write PNGs, `<kind>.parquet` tables and `summary.md`; return paths.

    ``searched``: an adaptive axis and its searches' table (spec/probes.py): the sample-complexity
    curve over that axis gets each group's bracket (``fails_at``, ``succeeds_at``), drawn too.

    Axes that vary but are neither x nor in `by` are added to `by`, so a line never mixes cells.
    The `curve` column (also the PNG names' stem) tells the specs of one kind apart. ``x: epoch``
    reads each cell's best trial along its training; ``position`` curves need ``positions``
    (``positions_store.load_positions``). Specs given as dicts are checked as a spec file's are.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    outputs = _Outputs(
        out,
        [
            "# Curves",
            "",
            f"Each cell's best trial by `{select}` ({modes.get(select, 'min')}); "
            "[90% bootstrap CI over seeds].",
            "",
        ],
    )
    cache: dict[str, pd.DataFrame] = {}
    names: set[str] = set()
    for i, raw in enumerate(curve_specs):
        spec = CurveSpec.model_validate(raw)
        for where, axis in [("x", spec.x)] * (spec.x not in (None, "epoch")) + [
            ("by", b) for b in spec.by
        ]:
            if axis not in axes:  # `axes` is this function's own argument: a notebook may pass any
                raise ValueError(
                    f"curves.{i}.{where}: {axis!r} is not an axis; expected one of {list(axes)}"
                )
        reason = _unusable(spec, metrics, positions, select)
        at = "all" if spec.x == "epoch" else spec.at
        if reason is None:
            if at not in cache:
                cache[at] = seed_points(trials, metrics, axes, select, modes, at)
            reason = _no_values(spec, cache[at], positions)
        if reason is not None:
            warnings.warn(f"curves.{i}: {reason}: skipped", stacklevel=2)
            continue
        pts = cache[at]
        by = list(spec.by)
        by += [a for a in axes if a != spec.x and a not in by and pts[a].nunique(dropna=False) > 1]
        name = spec.y + (f"_vs_{spec.x}" if spec.x else "") + (f"_by_{'_'.join(by)}" if by else "")
        name = name if name not in names else f"{name}_{i}"
        names.add(name)
        curve = _Curve(spec, name, by, at, pts)
        if spec.kind == "position":
            table = _position(outputs, curve, positions)
        elif spec.kind == "sample_complexity":
            brackets = searched[1] if searched and searched[0] == spec.x else None
            table = _sample_complexity(outputs, curve, modes, n_boot, seed, brackets)
        else:
            table = _scaling_law(outputs, curve, n_boot, seed)
        outputs.tables[spec.kind].append(table.assign(curve=name)[["curve", *table.columns]])
    return _finish(outputs)


def _unusable(
    spec: CurveSpec, metrics: pd.DataFrame, positions: pd.DataFrame | None, select: str
) -> str | None:
    """Why the results lack the columns a curve needs (None when they have them)."""
    if spec.kind == "position" and (positions is None or positions.empty):
        return f"no per-position results (positions/): {spec.y} is not drawn"
    if metrics.columns.empty:
        return "no metric rows in the results"
    need = [*METRIC_KEYS, select] + ([spec.y] if spec.kind != "position" else [])
    if missing := [c for c in dict.fromkeys(need) if c not in metrics.columns]:
        have = [c for c in metrics.columns if c not in METRIC_KEYS]
        return f"no metric column {missing[0]!r} in the results (have {have})"
    if spec.kind == "position" and spec.y not in positions.columns:
        return f"no per-position curve {spec.y!r} in positions/"
    return None


def _no_values(spec: CurveSpec, points: pd.DataFrame, positions: pd.DataFrame | None) -> str | None:
    """Why there is nothing to fit at the cells' best trials (None when there is)."""
    if spec.kind == "position":
        values = positions.loc[positions["trial_id"].isin(points["trial_id"]), spec.y]
    else:
        values = points[spec.y]
    values = values.to_numpy(float)
    if not np.isfinite(values).any():
        return f"no finite {spec.y!r} at any cell's best trial (did every trial fail or diverge?)"
    if spec.kind == "scaling_law" and not (values > 0).any():
        return (
            f"no {spec.y!r} above 0 at any cell's best trial: a power law is fitted on log scales"
        )
    return None


def _position(outputs: _Outputs, curve: _Curve, positions: pd.DataFrame) -> pd.DataFrame:
    """y by context position per group, beside the trainable's reference curves."""
    spec, by = curve.spec, curve.by
    table = position_table(curve.points, positions, spec.y, by)
    outputs.paths.append(
        figures.plot_positions(table, spec.y, by, outputs.out / f"position_{curve.name}.png")
    )
    outputs.md += positions_markdown(table, spec.y, by)
    return table


def _sample_complexity(
    outputs: _Outputs,
    curve: _Curve,
    modes: dict[str, str],
    n_boot: int,
    seed: int,
    brackets: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """n* per group, its figure and table, and n* against each numeric by-axis (the exponent); on an
    adaptive axis, each group's bracket beside its n*."""
    spec, by, pts, name = curve.spec, curve.by, curve.points, curve.name
    x, y, thr = spec.x, spec.y, float(spec.threshold)
    mode = "min" if metric_sign(modes, y) > 0 else "max"
    table = sample_complexity(
        pts, x, y, by, thr, mode, n_boot=n_boot, seed=seed, chance=spec.chance
    )
    fitted = table  # the slope groups by every column beside n*'s: the brackets are not groups
    if brackets is not None:
        keys = [b for b in by if b in brackets.columns]
        columns = [*keys, "fails_at", "succeeds_at"]
        table = (
            table.merge(brackets[columns], on=keys, how="left")
            if keys
            else table.assign(**brackets[columns].iloc[0].to_dict())
        )
    outputs.paths.append(
        figures.plot_sample_complexity(
            pts, table, x, y, by, thr, mode, outputs.out / f"sample_complexity_{name}.png"
        )
    )
    outputs.md += sample_complexity_markdown(table, x, y, by, thr, mode, curve.at)
    reached = table[table["reached"]]
    est = "n_star_smooth" if np.isfinite(reached["n_star_smooth"]).all() else "n_star"
    for axis in by:  # n* vs each numeric by-axis (width, depth, ...): the exponent
        dtype = pts[axis].dtype
        if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
            continue
        fit = scaling_slope(fitted, axis, est, n_boot=4 * n_boot, seed=seed)
        if len(fit.fits):
            path = outputs.out / f"n_star_vs_{axis}_{name}.png"
            outputs.paths.append(figures.plot_n_star(fit, table, axis, y, path))
            outputs.md += slope_markdown(fit, axis)
            outputs.tables["scaling_slope"].append(fit.fits.assign(curve=name, axis=axis))
    return table


def _scaling_law(outputs: _Outputs, curve: _Curve, n_boot: int, seed: int) -> pd.DataFrame:
    """A·x^-α + E per group; half the bootstrap draws of n*, as each costs a multi-start fit."""
    spec, by, pts = curve.spec, curve.by, curve.points
    table, boots = scaling_law(
        pts, spec.x, spec.y, by, n_boot=n_boot // 2, seed=seed, return_bootstrap=True
    )
    outputs.paths.append(
        figures.plot_scaling_law(
            pts, table, boots, spec.x, spec.y, by, outputs.out / f"scaling_law_{curve.name}.png"
        )
    )
    outputs.md += scaling_law_markdown(table, spec.x, spec.y, by, curve.at)
    return table


def _finish(outputs: _Outputs) -> list[Path]:
    """One Parquet file per kind that has rows, then summary.md; every path written, figures first."""
    paths = list(outputs.paths)
    for kind, tables in outputs.tables.items():
        if tables:
            path = outputs.out / f"{kind}.parquet"
            table = pd.concat(tables, ignore_index=True)
            write_table(pa.Table.from_pandas(table, preserve_index=False), path)
            paths.append(path)
    summary = outputs.out / "summary.md"
    summary.write_text("\n".join(outputs.md) + "\n")
    return paths + [summary]
