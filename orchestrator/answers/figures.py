"""What a reader looks at: PNG figures of the fitted curves.

Figures are drawn on bare `matplotlib.figure.Figure` objects (Agg canvas, no pyplot), so writing
them changes no global backend, opens no window, and is safe in a notebook or a Ray driver.
Style: the first `by` axis sets the colour (a sequential map when numeric, e.g. width), the
second the line style, so `embed_dim × vo_identity` reads as 4 colours × solid/dashed.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator
from PIL import Image

from orchestrator.answers.curves import SLOPE_COLUMNS, SlopeFit, censoring
from orchestrator.answers.positions import position_references
from orchestrator.answers.tables import fmt_n, group_label

DPI = 120
DASHES = ["-", "--", ":", "-."]
_MARKERS = ["o", "s", "^", "D"]


def line_styles(keys: list[dict[str, Any]], by: Sequence[str]) -> list[dict[str, Any]]:
    """Colour from the by-axis with most values, dash and marker from the other; else tab10."""
    values = {b: sorted({k[b] for k in keys}, key=lambda v: (str(type(v)), v)) for b in by}
    order = sorted(by, key=lambda b: -len(values[b]))
    if not by or len(by) > 2 or (len(by) == 2 and len(values[order[1]]) > len(DASHES)):
        return [  # beyond ten groups the colours repeat: the dash and marker tell them apart
            {
                "color": f"C{i % 10}" if by else "C0",
                "linestyle": DASHES[i // 10 % len(DASHES)],
                "marker": _MARKERS[i // 10 % len(_MARKERS)],
            }
            for i in range(len(keys))
        ]
    first = values[order[0]]
    numeric = all(
        isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))
        for v in first
    )
    colours = {
        v: colormaps["viridis"](0.85 * i / max(len(first) - 1, 1)) if numeric else f"C{i % 10}"
        for i, v in enumerate(first)
    }
    styles = []
    for k in keys:
        j = values[order[1]].index(k[order[1]]) if len(by) == 2 else 0
        styles.append(
            {"color": colours[k[order[0]]], "linestyle": DASHES[j], "marker": _MARKERS[j]}
        )
    return styles


def _keys(table: pd.DataFrame, by: Sequence[str]) -> list[dict[str, Any]]:
    """Group keys row by row, with each column's own type (iterrows would upcast ints)."""
    return table[list(by)].to_dict("records") if by else [{} for _ in range(len(table))]


_Group = tuple[dict[str, Any], dict[str, Any], pd.Series]  # a group's key, line style and table row


def _figure(table: pd.DataFrame, by: Sequence[str]) -> tuple[Figure, Any, list[_Group]]:
    """A figure of the usual size, its axes and, per row of ``table`` (a group of ``by``): key, style, row."""
    fig = Figure(figsize=(7.2, 4.2))
    keys = _keys(table, by)
    return (
        fig,
        fig.add_subplot(),
        list(zip(keys, line_styles(keys, by), (row for _, row in table.iterrows()))),
    )


def _select(points: pd.DataFrame, key: dict[str, Any]) -> pd.DataFrame:
    mask = np.ones(len(points), bool)
    for k, v in key.items():
        mask &= (points[k] == v).to_numpy() if not pd.isna(v) else points[k].isna().to_numpy()
    return points[mask]


def log2_axis(ax: Any, xs: np.ndarray, which: str = "x") -> None:
    """Log base-2 axis, ticked at the grid values (16, 32, ...) or, if not few, powers of 2."""
    xs = np.unique(xs[np.isfinite(xs) & (xs > 0)])
    axis = getattr(ax, f"{which}axis")
    getattr(ax, f"set_{which}scale")("log", base=2)
    if len(xs) == 0:
        return
    if not np.allclose(np.log2(xs), np.round(np.log2(xs))) or len(xs) > 12:
        xs = 2.0 ** np.arange(np.floor(np.log2(xs.min())), np.ceil(np.log2(xs.max())) + 1)
        xs = xs[:: max(1, len(xs) // 10)]
    if len(xs):
        getattr(ax, f"set_{which}ticks")(xs, [f"{v:g}" for v in xs])
        axis.set_minor_locator(NullLocator())


def _log10_y(ax: Any) -> None:
    """Log y with plain labels (0.2, 0.5, 1, never 2×10⁻¹); 1-2-3-5 steps on short ranges."""
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    decades = np.log10(hi / lo) if lo > 0 and hi > lo else 10.0
    subs = (1.0, 2.0, 3.0, 5.0) if decades < 1.5 else (1.0, 2.0, 5.0) if decades < 3 else (1.0,)
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs, numticks=12))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_locator(LogLocator(base=10, subs=np.arange(1.0, 10.0)))
    ax.yaxis.set_minor_formatter(NullFormatter())


def save_png(fig: Figure, ax: Any, path: Path, extra: Sequence[Line2D] = ()) -> Path:
    """Light grid, legend outside on the right (long group labels never hide data), a small PNG, and the
    same figure as SVG and PDF beside it."""
    ax.grid(True, which="major", alpha=0.3, linewidth=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    handles = ax.get_legend_handles_labels()[0] + list(extra)
    if handles:
        ax.legend(
            handles=handles, fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0)
        )
    for vector in (".svg", ".pdf"):  # for a paper, beside the PNG a report embeds
        fig.savefig(Path(path).with_suffix(vector), bbox_inches="tight")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    # A 256-colour palette looks the same on line plots and makes the file ~3x smaller.
    Image.open(buf).convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE).save(path)
    return Path(path)


def _mean_ci(values: pd.Series, n_boot: int = 400) -> tuple[float, float]:
    """A 90% bootstrap CI of the mean of one cell's seed values (seeded: a figure redraws the same);
    one finite value gives a band of zero width."""
    v = values.to_numpy(float)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return (float(v[0]), float(v[0])) if len(v) else (np.nan, np.nan)
    means = np.random.default_rng(0).choice(v, size=(n_boot, len(v))).mean(axis=1)
    low, high = np.quantile(means, [0.05, 0.95])
    return float(low), float(high)


def ci_low(values: pd.Series) -> float:
    return _mean_ci(values)[0]


def ci_high(values: pd.Series) -> float:
    return _mean_ci(values)[1]


def y_scale(ax: Any, values: np.ndarray) -> None:
    """Log y only when a positive metric spans more than ~2 decades (losses), else linear."""
    v = values[np.isfinite(values)]
    if len(v) and v.min() > 0 and v.max() / v.min() > 100:
        _log10_y(ax)


def plot_sample_complexity(
    points: pd.DataFrame,
    table: pd.DataFrame,
    x: str,
    y: str,
    by: Sequence[str],
    threshold: float,
    mode: str,
    path: Path,
) -> Path:
    """y vs x (log2) per group: seed-mean line, a 90% bootstrap CI of that mean as its band, threshold,
    n* marked."""
    fig, ax, groups = _figure(table, by)
    for key, style, row in groups:
        stats = _select(points, key).groupby(x)[y].agg(["mean", ci_low, ci_high]).sort_index()
        xs, c = stats.index.to_numpy(float), style["color"]
        n_star = fmt_n(row["n_star"], hi_bound=row["x_max"])
        label = f"{group_label(key)}   n* {n_star if n_star[0] == '>' else '= ' + n_star}"
        ax.plot(
            xs,
            stats["mean"],
            color=c,
            linestyle=style["linestyle"],
            marker=style["marker"],
            markersize=3.5,
            linewidth=1.5,
            label=label,
        )
        ax.fill_between(xs, stats["ci_low"], stats["ci_high"], color=c, alpha=0.13, linewidth=0)
        if row["reached"]:
            ax.plot(
                [row["n_star"]],
                [stats.loc[row["n_star"], "mean"]],
                marker="o",
                markersize=10,
                markerfacecolor="none",
                markeredgecolor=c,
                markeredgewidth=1.5,
            )
        if pd.notna(row.get("fails_at")) and pd.notna(row.get("succeeds_at")):
            # an adaptive axis: the bracket [fails at, succeeds at] that decided n*, on the threshold
            ax.plot(
                [row["fails_at"], row["succeeds_at"]],
                [threshold, threshold],
                color=c,
                linewidth=5,
                alpha=0.35,
                solid_capstyle="butt",
            )
        if np.isfinite(row["n_star_smooth"]) and row["n_star_smooth"] > 0:
            ax.plot(
                [row["n_star_smooth"]],
                [threshold],
                marker="x",
                color=c,
                markersize=7,
                markeredgewidth=1.5,
            )
    ax.axhline(threshold, color="0.35", linestyle="--", linewidth=1.0)
    log2_axis(ax, points[x].to_numpy(float))
    y_scale(ax, points[y].to_numpy(float))
    ax.set_xlabel(x)
    ax.set_ylabel(f"{y} (at the best trial per cell)")
    seeds = points["seed"].nunique()
    op = "≤" if mode == "min" else "≥"
    ax.set_title(
        f"Sample complexity: {y} vs {x}\nline = mean over {seeds} seed(s), band = "
        f"90% bootstrap CI of the mean; n* = smallest {x} with mean {op} {threshold:g} from there "
        "on",
        fontsize=9,
    )
    extra = [
        Line2D([], [], color="0.35", linestyle="--", label=f"threshold {threshold:g}"),
        Line2D(
            [],
            [],
            color="0.2",
            marker="o",
            markersize=9,
            markerfacecolor="none",
            linestyle="none",
            label="n* on the grid",
        ),
        Line2D(
            [],
            [],
            color="0.2",
            marker="x",
            markersize=7,
            linestyle="none",
            label="n* from sigmoid fit",
        ),
    ]
    if "fails_at" in table.columns:
        extra.append(
            Line2D([], [], color="0.2", linewidth=5, alpha=0.35, label="bracket that decided n*")
        )
    return save_png(fig, ax, path, extra)


def plot_n_star(fit: SlopeFit, table: pd.DataFrame, axis: str, y: str, path: Path) -> Path:
    """n* vs a numeric by-axis on log-log axes, CIs as error bars, fitted slope in the legend; an n*
    beyond the grid drawn at its edge as an open triangle (censored: it enters the fit as such)."""
    fits, est = fit.fits, (fit.fits["estimate"].iloc[0] if len(fit.fits) else "n_star_smooth")
    others = [c for c in fits.columns if c not in SLOPE_COLUMNS]
    fig, ax, groups = _figure(fits, others)
    for key, style, row in groups:
        g = _select(table, key).sort_values(axis)
        side = censoring(g, est)
        ok = side == 0
        a, v = g[axis].to_numpy(float), g[est].to_numpy(float)
        lo = np.clip(g[f"{est}_lo"].to_numpy(float), g["x_min"] / 2, None)
        hi = np.clip(g[f"{est}_hi"].to_numpy(float), None, g["x_max"] * 2)
        c = style["color"] if others else "C0"
        ax.errorbar(
            a[ok],
            v[ok],
            yerr=[v[ok] - lo[ok], hi[ok] - v[ok]],
            color=c,
            marker=style["marker"],
            linestyle="none",
            markersize=5,
            capsize=3,
        )
        for beyond, marker, edge in ((1, "^", "x_max"), (-1, "v", "x_min")):  # censored: the edge
            if (side == beyond).any():
                ax.plot(
                    a[side == beyond],
                    g[edge].to_numpy(float)[side == beyond],
                    marker=marker,
                    color=c,
                    linestyle="none",
                    markersize=7,
                    markerfacecolor="none",
                )
        grid = np.geomspace(a.min(), a.max(), 50)
        name = f"{group_label(key)}: " if others else ""
        ax.plot(
            grid,
            np.exp(row["intercept"]) * grid ** row["slope"],
            color=c,
            linestyle=style["linestyle"],
            linewidth=1.3,
            label=f"{name}slope {row['slope']:.2f} [{row['slope_lo']:.2f}, "
            f"{row['slope_hi']:.2f}] ({row['n_points']} points, {row['n_censored']} censored)",
        )
    log2_axis(ax, table[axis].to_numpy(float))
    shown = np.r_[table[est], table["x_min"], table["x_max"]].astype(float)
    shown = shown[np.isfinite(shown) & (shown > 0)]
    log2_axis(
        ax,
        2.0 ** np.arange(np.floor(np.log2(shown.min())), np.log2(shown.max()) + 1)
        if len(shown)
        else shown,
        "y",
    )
    ax.set_xlabel(axis)
    ax.set_ylabel(f"n* ({'sigmoid fit' if est == 'n_star_smooth' else 'grid'})")
    ax.set_title(
        f"Samples needed for {y} vs {axis}: n* ∝ {axis}^slope\n"
        "error bars and slope: 90% bootstrap CI over seeds",
        fontsize=9,
    )
    sides = censoring(table, est)
    extra = [
        Line2D([], [], color="0.3", marker=m, markerfacecolor="none", linestyle="none", label=label)
        for m, label, side in (
            ("^", "never reached: n* > the grid (censored)", 1),
            ("v", "reached from the grid's start: n* ≤ it (censored)", -1),
        )
        if (sides == side).any()
    ]
    return save_png(fig, ax, path, extra)


def plot_scaling_law(
    points: pd.DataFrame,
    table: pd.DataFrame,
    boots: list[np.ndarray],
    x: str,
    y: str,
    by: Sequence[str],
    path: Path,
) -> Path:
    """Log-log data (seeds faint, means bold), the fit A·x^-α + E and its 90% bootstrap band."""
    fig, ax, groups = _figure(table, by)
    handles: list[Line2D] = []
    for (key, style, row), boot in zip(groups, boots):
        g = _select(points, key)
        g = g[np.isfinite(g[y]) & (g[y] > 0)]
        c = style["color"]
        ax.plot(g[x], g[y], linestyle="none", marker=".", color=c, alpha=0.35, markersize=4)
        means = g.groupby(x)[y].mean()
        label = f"{group_label(key)}: " if by else ""
        if np.isfinite(row["alpha"]):
            dense = np.geomspace(means.index.min(), means.index.max(), 80)
            pred = boot[:, :1] * dense ** -boot[:, 1:2] + boot[:, 2:3]
            band = np.nanpercentile(pred, [5, 95], axis=0)
            ax.fill_between(dense, band[0], band[1], color=c, alpha=0.12, linewidth=0)
            ax.plot(
                dense,
                row["A"] * dense ** -row["alpha"] + row["E"],
                color=c,
                linestyle=style["linestyle"],
                linewidth=1.4,
            )
            label += (
                f"α={row['alpha']:.2f} [{row['alpha_lo']:.2f}, {row['alpha_hi']:.2f}], "
                f"E={row['E']:.3g}" + (f"  [{row['fit_flag']}]" if row["fit_flag"] else "")
            )
        else:
            label += "too few points to fit"
        ax.plot(
            means.index,
            means.values,
            linestyle="none",
            marker=style["marker"],
            color=c,
            markersize=5,
        )
        handles.append(
            Line2D(
                [],
                [],
                color=c,
                linestyle=style["linestyle"],
                marker=style["marker"],
                markersize=5,
                label=label,
            )
        )
    log2_axis(ax, points[x].to_numpy(float))
    _log10_y(ax)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(
        f"Scaling law: {y} = A·{x}^(-α) + E\nmarkers = seed means (dots: seeds), "
        "band = 90% bootstrap over seeds",
        fontsize=9,
    )
    if table["fit_flag"].astype(bool).any():
        ax.text(
            0.0,
            -0.16,
            "Flagged fits [in brackets]: α at a bound or a poor fit; do not read α off them.",
            transform=ax.transAxes,
            va="top",
            fontsize=8,
            color="firebrick",
        )
    return save_png(fig, ax, path, handles)


def plot_positions(table: pd.DataFrame, y: str, by: Sequence[str], path: Path) -> Path:
    """One panel per value of the first ``by`` axis (when there are two or more), a line per group,
    the reference curves in black (dashed, dotted)."""
    panel_axis = by[0] if len(by) > 1 else None
    panels = list(table[panel_axis].drop_duplicates()) if panel_axis else [None]
    line_axes = [a for a in by if a != panel_axis]
    others = position_references(table, y, by)
    fig = Figure(figsize=(4.2 * len(panels), 3.4))
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    for ax, panel in zip(axes, panels):
        sub = table if panel_axis is None else table[table[panel_axis] == panel]
        groups = sub.groupby(line_axes, sort=True) if line_axes else [((), sub)]
        for key, g in groups:
            key = key if isinstance(key, tuple) else (key,)
            label = group_label(dict(zip(line_axes, key))) if line_axes else y
            ax.plot(g["position"], g[y], marker=".", label=label)
            ax.fill_between(g["position"], g[y] - g[f"{y}_se"], g[y] + g[f"{y}_se"], alpha=0.2)
        reference = sub.groupby("position")[others].mean()
        for style, curve in zip(("--", ":", "-."), others):
            ax.plot(
                reference.index, reference[curve], "k" + style, label=curve.removesuffix("_by_k")
            )
        ax.set_title(group_label({panel_axis: panel}) if panel_axis else y)
        ax.set_xlabel("in-context examples before the query (k)")
        ax.grid(True, alpha=0.3, linewidth=0.6)
    axes[0].set_ylabel(y)
    return save_png(fig, axes[-1], path)
