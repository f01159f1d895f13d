"""What a reader looks at: PNG figures and markdown tables of the fitted curves.

Figures are drawn on bare `matplotlib.figure.Figure` objects (Agg canvas, no pyplot), so writing
them changes no global backend, opens no window, and is safe in a notebook or a Ray driver.
Style: the first `by` axis sets the colour (a sequential map when numeric, e.g. width), the
second the line style, so `embed_dim × vo_identity` reads as 4 colours × solid/dashed.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator
from PIL import Image

from orchestrator.curves import ALPHA_MAX

DPI = 120
_DASHES = ["-", "--", ":", "-."]
_MARKERS = ["o", "s", "^", "D"]


def value_label(v: Any) -> str:
    """A cell value as in cell keys: bools lowercase, floats short."""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v)).lower()
    if isinstance(v, (float, np.floating)):
        return f"{v:g}"
    return str(v)


def group_label(key: dict[str, Any]) -> str:
    """`embed_dim=128, vo_identity=true`, or `all` for the single group of an empty `by`."""
    return ", ".join(f"{k}={value_label(v)}" for k, v in key.items()) or "all"


def _styles(keys: list[dict[str, Any]], by: Sequence[str]) -> list[dict[str, Any]]:
    """Colour from the by-axis with most values, dash and marker from the other; else tab10."""
    values = {b: sorted({k[b] for k in keys}, key=lambda v: (str(type(v)), v)) for b in by}
    order = sorted(by, key=lambda b: -len(values[b]))
    if not by or len(by) > 2 or (len(by) == 2 and len(values[order[1]]) > len(_DASHES)):
        return [{"color": f"C{i % 10}" if by else "C0", "linestyle": "-", "marker": "o"}
                for i in range(len(keys))]
    first = values[order[0]]
    numeric = all(isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))
                  for v in first)
    colours = {v: colormaps["viridis"](0.85 * i / max(len(first) - 1, 1)) if numeric
               else f"C{i % 10}" for i, v in enumerate(first)}
    styles = []
    for k in keys:
        j = values[order[1]].index(k[order[1]]) if len(by) == 2 else 0
        styles.append({"color": colours[k[order[0]]], "linestyle": _DASHES[j],
                       "marker": _MARKERS[j]})
    return styles


def _keys(table: pd.DataFrame, by: Sequence[str]) -> list[dict[str, Any]]:
    """Group keys row by row, with each column's own type (iterrows would upcast ints)."""
    return table[list(by)].to_dict("records") if by else [{} for _ in range(len(table))]


def _select(points: pd.DataFrame, key: dict[str, Any]) -> pd.DataFrame:
    mask = np.ones(len(points), bool)
    for k, v in key.items():
        mask &= (points[k] == v).to_numpy() if not pd.isna(v) else points[k].isna().to_numpy()
    return points[mask]


def _log2_axis(ax: Any, xs: np.ndarray, which: str = "x") -> None:
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
    """Light grid, legend outside on the right (long group labels never hide data), small PNG."""
    ax.grid(True, which="major", alpha=0.3, linewidth=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    handles = ax.get_legend_handles_labels()[0] + list(extra)
    if handles:
        ax.legend(handles=handles, fontsize=8, frameon=False, loc="upper left",
                  bbox_to_anchor=(1.01, 1.0))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    # A 256-colour palette looks the same on line plots and makes the file ~3x smaller.
    Image.open(buf).convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE).save(path)
    return Path(path)


def fmt_n(v: float, lo_bound: float | None = None, hi_bound: float | None = None) -> str:
    """n* for people: '> 2048' when never reached, '< 4' below the grid, 3 significant digits."""
    if np.isnan(v):
        return "n/a"
    if np.isinf(v):
        return f"> {hi_bound:g}" if hi_bound is not None else "> max"
    if v == 0:
        return f"< {lo_bound:g}" if lo_bound is not None else "< min"
    return f"{v:.0f}" if v >= 100 else f"{v:.3g}"


def _y_scale(ax: Any, values: np.ndarray) -> None:
    """Log y only when a positive metric spans more than ~2 decades (losses), else linear."""
    v = values[np.isfinite(values)]
    if len(v) and v.min() > 0 and v.max() / v.min() > 100:
        _log10_y(ax)


def plot_sample_complexity(points: pd.DataFrame, table: pd.DataFrame, x: str, y: str,
                           by: Sequence[str], threshold: float, mode: str, path: Path) -> Path:
    """y vs x (log2) per group: seed-mean line, min–max band over seeds, threshold, n* marked."""
    fig = Figure(figsize=(7.2, 4.2))
    ax = fig.add_subplot()
    keys = _keys(table, by)
    for key, style, (_, row) in zip(keys, _styles(keys, by), table.iterrows()):
        stats = _select(points, key).groupby(x)[y].agg(["mean", "min", "max"]).sort_index()
        xs, c = stats.index.to_numpy(float), style["color"]
        n_star = fmt_n(row["n_star"], hi_bound=row["x_max"])
        label = f"{group_label(key)}   n* {n_star if n_star[0] == '>' else '= ' + n_star}"
        ax.plot(xs, stats["mean"], color=c, linestyle=style["linestyle"], marker=style["marker"],
                markersize=3.5, linewidth=1.5, label=label)
        ax.fill_between(xs, stats["min"], stats["max"], color=c, alpha=0.13, linewidth=0)
        if row["reached"]:
            ax.plot([row["n_star"]], [stats.loc[row["n_star"], "mean"]], marker="o", markersize=10,
                    markerfacecolor="none", markeredgecolor=c, markeredgewidth=1.5)
        if np.isfinite(row["n_star_smooth"]) and row["n_star_smooth"] > 0:
            ax.plot([row["n_star_smooth"]], [threshold], marker="x", color=c, markersize=7,
                    markeredgewidth=1.5)
    ax.axhline(threshold, color="0.35", linestyle="--", linewidth=1.0)
    _log2_axis(ax, points[x].to_numpy(float))
    _y_scale(ax, points[y].to_numpy(float))
    ax.set_xlabel(x)
    ax.set_ylabel(f"{y} (at the best trial per cell)")
    seeds = points["seed"].nunique()
    op = "≤" if mode == "min" else "≥"
    ax.set_title(f"Sample complexity: {y} vs {x}\nline = mean over {seeds} seed(s), band = "
                 f"min–max over seeds; n* = smallest {x} with mean {op} {threshold:g} from there "
                 "on", fontsize=9)
    extra = [Line2D([], [], color="0.35", linestyle="--", label=f"threshold {threshold:g}"),
             Line2D([], [], color="0.2", marker="o", markersize=9, markerfacecolor="none",
                    linestyle="none", label="n* on the grid"),
             Line2D([], [], color="0.2", marker="x", markersize=7, linestyle="none",
                    label="n* from sigmoid fit")]
    return save_png(fig, ax, path, extra)


def plot_n_star(fit: Any, table: pd.DataFrame, axis: str, y: str, path: Path) -> Path:
    """n* vs a numeric by-axis on log-log axes, CIs as error bars, fitted slope in the legend."""
    fits, est = fit.fits, (fit.fits["estimate"].iloc[0] if len(fit.fits) else "n_star_smooth")
    others = [c for c in fits.columns
              if c not in {"slope", "slope_lo", "slope_hi", "intercept", "n_points", "estimate"}]
    fig = Figure(figsize=(7.2, 4.2))
    ax = fig.add_subplot()
    keys = _keys(fits, others)
    for key, style, (_, row) in zip(keys, _styles(keys, others), fits.iterrows()):
        g = _select(table, key).sort_values(axis)
        ok = g["reached"] & np.isfinite(g[est]) & (g[est] > 0)
        a, v = g[axis].to_numpy(float), g[est].to_numpy(float)
        lo = np.clip(g[f"{est}_lo"].to_numpy(float), g["x_min"] / 2, None)
        hi = np.clip(g[f"{est}_hi"].to_numpy(float), None, g["x_max"] * 2)
        c = style["color"] if others else "C0"
        ax.errorbar(a[ok], v[ok], yerr=[v[ok] - lo[ok], hi[ok] - v[ok]], color=c,
                    marker=style["marker"], linestyle="none", markersize=5, capsize=3)
        if (~ok).any():
            ax.plot(a[~ok], g["x_max"].to_numpy(float)[~ok] * 2, marker="^", color=c,
                    linestyle="none", markersize=7, markerfacecolor="none")
        grid = np.geomspace(a.min(), a.max(), 50)
        name = f"{group_label(key)}: " if others else ""
        ax.plot(grid, np.exp(row["intercept"]) * grid ** row["slope"], color=c,
                linestyle=style["linestyle"], linewidth=1.3,
                label=f"{name}slope {row['slope']:.2f} [{row['slope_lo']:.2f}, "
                      f"{row['slope_hi']:.2f}] ({row['n_points']} points)")
    _log2_axis(ax, table[axis].to_numpy(float))
    shown = np.r_[table[est], table.loc[~table["reached"], "x_max"] * 2].astype(float)
    shown = shown[np.isfinite(shown) & (shown > 0)]
    _log2_axis(ax, 2.0 ** np.arange(np.floor(np.log2(shown.min())), np.log2(shown.max()) + 1)
               if len(shown) else shown, "y")
    ax.set_xlabel(axis)
    ax.set_ylabel(f"n* ({'sigmoid fit' if est == 'n_star_smooth' else 'grid'})")
    ax.set_title(f"Samples needed for {y} vs {axis}: n* ∝ {axis}^slope\n"
                 "error bars and slope: 90% bootstrap CI over seeds", fontsize=9)
    extra = [Line2D([], [], color="0.3", marker="^", markerfacecolor="none", linestyle="none",
                    label="never reached (> max)")] if (~table["reached"]).any() else []
    return save_png(fig, ax, path, extra)


def plot_scaling_law(points: pd.DataFrame, table: pd.DataFrame, boots: list[np.ndarray], x: str,
                     y: str, by: Sequence[str], path: Path) -> Path:
    """Log-log data (seeds faint, means bold), the fit A·x^-α + E and its 90% bootstrap band."""
    fig = Figure(figsize=(7.2, 4.2))
    ax = fig.add_subplot()
    keys = _keys(table, by)
    handles: list[Line2D] = []
    for key, style, boot, (_, row) in zip(keys, _styles(keys, by), boots, table.iterrows()):
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
            ax.plot(dense, row["A"] * dense ** -row["alpha"] + row["E"], color=c,
                    linestyle=style["linestyle"], linewidth=1.4)
            label += (f"α={row['alpha']:.2f} [{row['alpha_lo']:.2f}, {row['alpha_hi']:.2f}], "
                      f"E={row['E']:.3g}" + (" (α at bound)" if _at_bound(row) else ""))
        else:
            label += "too few points to fit"
        ax.plot(means.index, means.values, linestyle="none", marker=style["marker"], color=c,
                markersize=5)
        handles.append(Line2D([], [], color=c, linestyle=style["linestyle"], marker=style["marker"],
                              markersize=5, label=label))
    _log2_axis(ax, points[x].to_numpy(float))
    _log10_y(ax)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(f"Scaling law: {y} = A·{x}^(-α) + E\nmarkers = seed means (dots: seeds), "
                 "band = 90% bootstrap over seeds", fontsize=9)
    return save_png(fig, ax, path, handles)


# ------------------------------------------------------------------------ markdown tables

def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(r) + " |" for r in rows], ""]


def _with_ci(v: float, lo: float, hi: float, x_min: float, x_max: float) -> str:
    f = lambda u: fmt_n(u, lo_bound=x_min, hi_bound=x_max)  # noqa: E731
    return f"{f(v)} [{f(lo)}, {f(hi)}]"


def sample_complexity_markdown(table: pd.DataFrame, x: str, y: str, by: Sequence[str],
                               threshold: float, mode: str, at: str) -> list[str]:
    """One table per curve: grid n* and sigmoid n*, each with its CI; '> max' when never."""
    op = "≤" if mode == "min" else "≥"
    rows = [[*(value_label(r[b]) for b in by),
             _with_ci(r["n_star"], r["n_star_lo"], r["n_star_hi"], r["x_min"], r["x_max"]),
             _with_ci(r["n_star_smooth"], r["n_star_smooth_lo"], r["n_star_smooth_hi"],
                      r["x_min"] / 2, r["x_max"] * 2), str(int(r["n_seeds"]))]
            for _, r in table.iterrows()]
    return [f"## Sample complexity: {y} {op} {threshold:g} vs {x} ({at} epoch)", "",
            f"n* = smallest {x} on the grid where the seed-mean {y} {op} {threshold:g} at it and "
            f"at every larger {x}; smooth n* = where a sigmoid in log2 {x} crosses it.", "",
            *markdown_table([*by, "n* [CI]", "smooth n* [CI]", "seeds"], rows)]


def slope_markdown(fit: Any, axis: str) -> list[str]:
    """The (inverse-)scaling exponent per group: n* ∝ axis^slope."""
    others = [c for c in fit.fits.columns if c not in
              {"slope", "slope_lo", "slope_hi", "intercept", "n_points", "estimate"}]
    rows = [[*(value_label(r[b]) for b in others),
             f"{r['slope']:.2f} [{r['slope_lo']:.2f}, {r['slope_hi']:.2f}]",
             str(int(r["n_points"]))]
            for _, r in fit.fits.iterrows()]
    est = "smooth n*" if len(fit.fits) and fit.fits["estimate"].iloc[0] == "n_star_smooth" else "n*"
    return [f"{est} ∝ {axis}^slope (log-log fit over reached groups):", "",
            *markdown_table([*others, "slope [CI]", f"{axis} values"], rows)]


def _at_bound(row: pd.Series) -> bool:
    return bool(row["alpha"] <= 1e-6 or row["alpha"] >= ALPHA_MAX - 1e-6)


def scaling_law_markdown(table: pd.DataFrame, x: str, y: str, by: Sequence[str],
                         at: str) -> list[str]:
    """α, A, E with CIs and the fit's rms log residual, one row per group."""
    def ci(r: pd.Series, name: str, f: str) -> str:
        return f"{r[name]:{f}} [{r[name + '_lo']:{f}}, {r[name + '_hi']:{f}}]"

    rows = [[*(value_label(r[b]) for b in by), ci(r, "alpha", ".3f") + " †" * _at_bound(r),
             ci(r, "A", ".3g"),
             ci(r, "E", ".3g"), f"{r['rmse_log']:.3f}", str(int(r["n_points"]))]
            for _, r in table.iterrows()]
    return [f"## Scaling law: {y} = A·{x}^(-α) + E ({at} epoch)", "",
            *markdown_table([*by, "α [CI]", "A [CI]", "E [CI]", "rms log resid.", "points"], rows),
            *([f"† α at its bound (0 or {ALPHA_MAX:g}): not a power law plus a constant on this "
               "range; read α as 'flat' or 'faster than any power' and check the plot.", ""]
              if any(_at_bound(r) for _, r in table.iterrows() if np.isfinite(r["alpha"]))
              else [])]
