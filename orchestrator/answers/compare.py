"""``scalesweep compare``: what differs between sweeps, and what it changed in their answers.

A researcher reruns a question with one thing changed (a width, a learning rate, a task) and wants
the change and its effect on one page: the spec fields that differ, the fitted n*, slopes and
exponents side by side (read from each sweep's ``curves/`` tables, the ones ``scalesweep curves``
writes), and each curve of all the sweeps overlaid in one figure.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from orchestrator.answers import figures
from orchestrator.answers.curves import alpha_at_bound, seed_points
from orchestrator.answers.report import Sweep, load_sweep
from orchestrator.answers.tables import format_value, group_label, markdown_table, with_ci
from orchestrator.spec.schema import SpecError
from orchestrator.store.results import load_metrics

_UNSET = "(unset)"
_Curve = tuple[str, str, str]  # what a figure draws: (x, y, at)


def _n_star(r: dict[str, Any]) -> str:
    return with_ci(r["n_star"], r["n_star_lo"], r["n_star_hi"], r["x_min"], r["x_max"])


def _slope(r: dict[str, Any]) -> str:
    return f"{r['slope']:.2f} [{r['slope_lo']:.2f}, {r['slope_hi']:.2f}]"


def _alpha(r: dict[str, Any]) -> str:
    return f"{r['alpha']:.3f} [{r['alpha_lo']:.3f}, {r['alpha_hi']:.3f}]" + " †" * alpha_at_bound(r)


_TABLES: tuple[tuple[str, str, Callable[[dict[str, Any]], str]], ...] = (
    ("sample_complexity", "n* on the grid [90% bootstrap CI]", _n_star),
    ("scaling_slope", "slope [CI]", _slope),
    ("scaling_law", "α of y = A·x^(-α) + E [CI] († at its bound)", _alpha),
)


def compare_sweeps(dirs: list[Path], out: Path | None = None) -> tuple[str, list[Path]]:
    """The comparison as markdown (also written to ``out`` when given), and the figures written: beside
    ``out`` (``<stem>-<figure>.png``), or under the first sweep's ``compare-<others>/`` without it."""
    if len(dirs) < 2:
        raise SpecError(f"{' '.join(map(str, dirs))}: expected two sweeps or more to compare")
    if out is not None and out.suffix != ".md":
        raise SpecError(f"-o {out}: expected a markdown file name ending in .md")
    sweeps = [load_sweep(d) for d in dirs]
    labels = [s.plan.spec.name for s in sweeps]
    if len(set(labels)) < len(labels):  # one sweep name under several roots: tell them by path
        labels = [str(s.root) for s in sweeps]
    lines = [
        f"# Comparing {', '.join(labels)}",
        "",
        *(f"- {label}: `{s.root}`" for label, s in zip(labels, sweeps)),
        "",
        "## Spec diff",
        "",
        *([f"- {line}" for line in spec_diff(sweeps)] or ["The specs are the same."]),
        "",
    ]
    paths: list[Path] = []
    if common := _common_curves(sweeps):
        for name, what, fmt in _TABLES:
            lines += _side_by_side(sweeps, labels, name, what, fmt)
        paths = _figures(sweeps, labels, common, out)
        lines += ["## Figures", "", *(f"![{p.stem}]({p.name if out else p})\n" for p in paths)]
    else:
        lines.append("No curve is common to these sweeps: only their specs compare.")
    text = "\n".join(lines).rstrip() + "\n"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return text, paths


def spec_diff(sweeps: list[Sweep]) -> list[str]:
    """``field: A → B`` for each spec field (dotted path) whose value is not the same in every sweep."""
    flat = [dict(_flatten(s.plan.spec.model_dump(mode="json"))) for s in sweeps]
    fields = dict.fromkeys(k for f in flat for k in f)
    return [
        f"{k}: {' → '.join(values)}"
        for k in fields
        if len(set(values := [f.get(k, _UNSET) for f in flat])) > 1
    ]


def _flatten(value: Any, path: str = "") -> Iterable[tuple[str, str]]:
    """Leaves by dotted path; a list of plain values is one leaf (an axis's values), a list of mappings
    is indexed (``curves.0.threshold``)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flatten(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        for i, v in enumerate(value):
            yield from _flatten(v, f"{path}.{i}")
    elif isinstance(value, list):
        yield path, "[" + ", ".join(map(_leaf, value)) + "]"
    else:
        yield path, _leaf(value)


def _leaf(value: Any) -> str:
    """A value on one line: YAML-like scalars, prose (a description) cut at 60 characters."""
    text = "null" if value is None else " ".join(format_value(value).split())
    return text if len(text) <= 60 else text[:59] + "…"


def _side_by_side(
    sweeps: list[Sweep],
    labels: list[str],
    table: str,
    what: str,
    fmt: Callable[[dict[str, Any]], str],
) -> list[str]:
    """One markdown table per curve of ``curves/<table>.parquet``: a row per group, a column per sweep
    ('–' where a sweep lacks the curve or the group)."""
    cells: dict[str, dict[str, dict[str, str]]] = {}  # curve → group → sweep label → value
    for sweep, label in zip(sweeps, labels):
        frame = sweep.curve_table(table)
        if frame is None:
            continue
        for r in frame.to_dict("records"):
            key = {a: r[a] for a in sweep.plan.axes if a in r and pd.notna(r[a])}
            curve = r["curve"] + (f", n* ∝ {r['axis']}^slope" if "axis" in r else "")
            cells.setdefault(curve, {}).setdefault(group_label(key), {})[label] = fmt(r)
    lines: list[str] = []
    for curve, groups in cells.items():
        rows = [[group, *(v.get(label, "–") for label in labels)] for group, v in groups.items()]
        lines += [f"## {what}: {curve}", "", *markdown_table(["group", *labels], rows)]
    return lines


def _curves(sweep: Sweep) -> set[_Curve]:
    """The (x, y, at) of the sweep's curves over an axis (position curves have no x to overlay)."""
    return {(c.x, c.y, c.at) for c in sweep.plan.spec.curves if c.x in sweep.plan.axes}


def _common_curves(sweeps: list[Sweep]) -> list[_Curve]:
    return sorted(set.intersection(*(_curves(s) for s in sweeps)))


def _figures(
    sweeps: list[Sweep], labels: list[str], curves: list[_Curve], out: Path | None
) -> list[Path]:
    """One overlay per curve, beside ``out`` or in a folder of the first sweep named for the others."""
    if out is None:
        others = "-".join(s.root.resolve().name for s in sweeps[1:])
        folder, prefix = sweeps[0].root / f"compare-{others}", ""
    else:
        folder, prefix = out.parent, f"{out.stem}-"
    folder.mkdir(parents=True, exist_ok=True)
    metrics = [load_metrics(s.root) for s in sweeps]
    return [
        _overlay(sweeps, labels, metrics, c, folder / f"{prefix}{c[1]}_vs_{c[0]}_{c[2]}.png")
        for c in curves
        if all(c[1] in m.columns for m in metrics)  # a bare function may never have reported it
    ]


def _overlay(
    sweeps: list[Sweep], labels: list[str], metrics: list[pd.DataFrame], curve: _Curve, path: Path
) -> Path:
    """y vs x of every sweep on one figure: a line per sweep × group (the seed mean at each cell's best
    trial, as the sweeps' own figures draw it), a band for its 90% bootstrap CI, each sweep's
    thresholds; the group sets the colour, the sweep the dash (figures' styles, the sweep as an axis)."""
    x, y, at = curve
    points = [
        seed_points(s.trials, m, s.plan.axes, s.plan.metric, s.plan.modes, at)
        for s, m in zip(sweeps, metrics)
    ]
    both = pd.concat(points, ignore_index=True)
    axes = dict.fromkeys(a for s in sweeps for a in s.plan.axes)
    by = [a for a in axes if a != x and both[a].nunique() > 1]  # varying within or across sweeps
    keys, data = [], []
    for label, p in zip(labels, points):
        present = [b for b in by if b in p.columns]
        for group, g in p.groupby(present, dropna=False) if present else [((), p)]:
            values = dict(zip(present, group if isinstance(group, tuple) else (group,)))
            keys.append({**{b: values.get(b) for b in by}, "sweep": label})
            data.append((label, values, g))
    fig = Figure(figsize=(7.2, 4.2))
    ax = fig.add_subplot()
    for style, (label, values, g) in zip(figures.line_styles(keys, [*by, "sweep"]), data):
        stats = g.groupby(x)[y].agg(["mean", figures.ci_low, figures.ci_high]).sort_index()
        xs, c = stats.index.to_numpy(float), style["color"]
        name = f"{label}: {group_label(values)}" if values else label
        ax.plot(xs, stats["mean"], **style, markersize=3.5, linewidth=1.5, label=name)
        ax.fill_between(xs, stats["ci_low"], stats["ci_high"], color=c, alpha=0.13, linewidth=0)
    extra = _thresholds(ax, sweeps, labels, curve)
    figures.log2_axis(ax, both[x].to_numpy(float))
    figures.y_scale(ax, both[y].to_numpy(float))
    ax.set_xlabel(x)
    ax.set_ylabel(f"{y} ({at} epoch, at the best trial per cell)")
    ax.set_title(
        f"{y} vs {x}: {' vs '.join(labels)}\nline = seed mean, band = 90% bootstrap CI of the mean",
        fontsize=9,
    )
    return figures.save_png(fig, ax, path, extra)


def _thresholds(ax: Any, sweeps: list[Sweep], labels: list[str], curve: _Curve) -> list[Line2D]:
    """Each sample-complexity threshold on this curve once, naming its sweeps when they differ."""
    owners: dict[float, list[str]] = {}
    for sweep, label in zip(sweeps, labels):
        for c in sweep.plan.spec.curves:
            if c.kind == "sample_complexity" and (c.x, c.y, c.at) == curve:
                owners.setdefault(float(c.threshold), []).append(label)
    handles = []
    for (threshold, who), dash in zip(owners.items(), itertools.cycle(figures.DASHES[1:])):
        ax.axhline(threshold, color="0.35", linestyle=dash, linewidth=1.0)
        name = f"threshold {threshold:g}" + (f" ({', '.join(who)})" if len(owners) > 1 else "")
        handles.append(Line2D([], [], color="0.35", linestyle=dash, label=name))
    return handles
