"""The answer to a sweep as numbers: n* and scaling-law fits with bootstrap CIs, on DataFrames.

Pure functions (usable from a notebook; no plotting, no files). Every interval is a percentile
bootstrap over *seeds*, resampled within each x, so it says how much the answer would move with
other seeds. With k seeds the plain bootstrap under-states the variance of a mean by (k-1)/k (a
third for k=3), so resampled means are pushed away from the observed mean by sqrt(k/(k-1)); the
coverage tests rely on it. Fits run batched over all bootstrap replicates at once (`kernels`),
which keeps a whole sweep's curves to a second or two.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
from scipy.special import log_ndtr, ndtri

from orchestrator.answers.kernels import (
    ALPHA_MAX,
    boot_means,
    fit_power_law,
    fit_sigmoid,
    grid_n_star,
    percentile_ci,
    sigmoid_crossing,
)

Mode = Literal["min", "max"]
SC_COLUMNS = [
    "n_star",
    "n_star_lo",
    "n_star_hi",
    "n_star_smooth",
    "n_star_smooth_lo",
    "n_star_smooth_hi",
    "reached",
    "censored",
    "x_min",
    "x_max",
    "n_seeds",
]
SL_COLUMNS = [
    "alpha",
    "alpha_lo",
    "alpha_hi",
    "A",
    "A_lo",
    "A_hi",
    "E",
    "E_lo",
    "E_hi",
    "rmse_log",
    "n_points",
    "fit_flag",
]
SLOPE_COLUMNS = [
    "slope",
    "slope_lo",
    "slope_hi",
    "intercept",
    "n_points",
    "n_censored",
    "estimate",
]
_STATUS_RANK = {"completed": 0, "pruned": 1, "diverged": 2}
METRIC_KEYS = ["trial_id", "epoch", "seed"]


def _require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    for c in columns:
        if c not in df.columns:
            raise ValueError(f"{what}: missing column {c!r}; columns are {list(df.columns)}")


def metric_sign(modes: dict[str, str], metric: str) -> float:
    """+1 when smaller is better, -1 when larger is: ranking is then always a minimisation."""
    mode = modes.get(metric, "min")
    if mode not in ("min", "max"):
        raise ValueError(f"modes[{metric!r}]: expected 'min' or 'max', got {mode!r}")
    return 1.0 if mode == "min" else -1.0


def seed_points(
    trials: pd.DataFrame,
    metrics: pd.DataFrame,
    axes: Sequence[str],
    select: str,
    modes: dict[str, str],
    at: Literal["final", "best", "all"] = "final",
) -> pd.DataFrame:
    """Per cell, the best trial's per-seed metrics at its final (or best) epoch: what curves fit.

    A curve needs the best hyper-parameters per cell, judged at the budget the curve is read at,
    so the trial is ranked by `<at>_<select>`. Completed trials rank before pruned ones whatever
    their value: a pruned trial's last value is from an earlier epoch (ASHA stopped it because it
    was behind at a rung), so mixing it in would mix training budgets along one curve. Diverged
    trials come last (a cell where all diverged still shows, as NaN = never reached); errored
    trials are ignored. The best epoch is where the seed-mean of `select` is best; ``all`` keeps
    every reported epoch of the best-at-final trial (curves over training time, x = epoch).
    """
    if at not in ("final", "best", "all"):
        raise ValueError(f"at: expected 'final', 'best' or 'all', got {at!r}")
    key = (
        f"{at}_{select}" if f"{at}_{select}" in trials.columns else f"final_{select}"
    )  # all: ranked at final
    _require(trials, ["trial_id", "cell", "status", key, *axes], "trials")
    _require(metrics, [*METRIC_KEYS, select], "metrics")
    sign = metric_sign(modes, select)
    t = trials[trials["status"] != "errored"].copy()
    t["_rank"] = t["status"].map(_STATUS_RANK).fillna(3)
    t["_score"] = (sign * t[key].astype(float)).fillna(np.inf)
    best = t.sort_values(["cell", "_rank", "_score", "trial_id"]).drop_duplicates("cell")
    m = metrics[metrics["trial_id"].isin(best["trial_id"])]
    missing = sorted(set(best["trial_id"]) - set(m["trial_id"]))
    if missing:
        warnings.warn(
            f"no metric rows for best trials {missing[:5]}: their cells are left out", stacklevel=2
        )
    if at == "all":
        epochs = m[["trial_id", "epoch"]].drop_duplicates()
    elif at == "final":
        epochs = m.groupby("trial_id", as_index=False)["epoch"].max()
    else:
        per_epoch = m.groupby(["trial_id", "epoch"], as_index=False)[select].mean()
        per_epoch["_score"] = (sign * per_epoch[select]).fillna(np.inf)
        epochs = per_epoch.sort_values(["trial_id", "_score", "epoch"]).drop_duplicates("trial_id")
        all_nan = per_epoch.groupby("trial_id")[select].count() == 0  # diverged from the start
        last = m.groupby("trial_id")["epoch"].max()
        epochs = epochs.set_index("trial_id")["epoch"].where(~all_nan, last).reset_index()
    out = m.merge(epochs[["trial_id", "epoch"]], on=["trial_id", "epoch"])
    out = out.merge(best[["trial_id", "cell", *axes]], on="trial_id")
    metric_cols = [c for c in metrics.columns if c not in METRIC_KEYS]
    out = out[["cell", *axes, "trial_id", "seed", "epoch", *metric_cols]]
    return out.sort_values([*axes, "seed"]).reset_index(drop=True)


def _groups(
    points: pd.DataFrame, x: str, y: str, by: Sequence[str]
) -> Iterator[tuple[dict[str, Any], np.ndarray, np.ndarray]]:
    """Yield (group key, sorted grid x, Y[x, seed]) with NaN where a seed is missing/diverged."""
    if "seed" not in points.columns:
        raise ValueError(
            "points: missing column 'seed'; build per-seed points with "
            "seed_points(trials, metrics, axes, select, modes)"
        )
    _require(points, [x, y, *by], "points")
    if points.duplicated([*by, x, "seed"]).any():
        raise ValueError(
            f"points: several rows per ({', '.join([*by, x])}, seed): an axis that "
            "varies is missing from `by`"
        )
    if not pd.api.types.is_numeric_dtype(points[x]) or (points[x] <= 0).any():
        raise ValueError(f"x: axis {x!r} must be numeric and > 0 to be read on a log scale")
    grouped = points.groupby(list(by), dropna=False, sort=True) if by else [((), points)]
    for key, g in grouped:
        key = key if isinstance(key, tuple) else (key,)
        wide = g.pivot(index=x, columns="seed", values=y).sort_index()
        yield dict(zip(by, key)), wide.index.to_numpy(float), wide.to_numpy(float)


def sample_complexity(
    points: pd.DataFrame,
    x: str,
    y: str,
    by: Sequence[str],
    threshold: float,
    mode: Mode = "min",
    n_boot: int = 1000,
    ci: float = 0.9,
    seed: int = 0,
    chance: float | None = None,
) -> pd.DataFrame:
    """Per group of `by`: the data size n* from which the seed-mean of y meets the threshold.

    `n_star` is the smallest grid x where the mean is good and stays good at every larger x (inf
    with reached=False when never); `censored` says when the grid bounds it on one side only:
    "below" (good from the grid's first x on: n* <= x_min) or "above" (never: n* > x_max);
    `n_star_smooth` reads a sigmoid in log2 x fitted to the seed
    means at the threshold (0 = below the grid, inf = beyond it; needs >= 3 x values). Both come
    with percentile-bootstrap CIs over seeds; a bound may be inf when some resamples never reach.
    Diverged (NaN) seeds are left out of a mean; an x where every seed diverged counts as not good.
    """
    sign = 1.0 if mode == "min" else -1.0
    rng = np.random.default_rng(seed)
    rows = []
    for key, xs, Y in _groups(points, x, y, by):
        M = boot_means(Y, n_boot, rng)
        grid = grid_n_star(xs, M, sign * (np.nan_to_num(M, nan=np.inf * sign) - threshold) <= 0)
        t = np.log2(xs)
        if np.isfinite(M[0]).sum() >= 3:
            smooth = sigmoid_crossing(
                fit_sigmoid(t, M, chance), t[0] - 1, t[-1] + 1, threshold, sign
            )
        else:
            smooth = np.full(len(M), np.nan)
        lo, hi = percentile_ci(grid[1:], ci)
        s_lo, s_hi = percentile_ci(smooth[1:], ci)
        rows.append(
            {
                **key,
                "n_star": grid[0],
                "n_star_lo": lo,
                "n_star_hi": hi,
                "n_star_smooth": smooth[0],
                "n_star_smooth_lo": s_lo,
                "n_star_smooth_hi": s_hi,
                "reached": bool(np.isfinite(grid[0])),
                # the grid brackets n* on one side only: it lies at or below its first value, or beyond it
                "censored": "above"
                if not np.isfinite(grid[0])
                else "below"
                if grid[0] <= xs[0]
                else "",
                "x_min": xs[0],
                "x_max": xs[-1],
                "n_seeds": Y.shape[1],
            }
        )
    return pd.DataFrame(rows, columns=[*by, *SC_COLUMNS])


class SlopeFit(NamedTuple):
    """`fits`: one row per remaining group (slope, CI, intercept); `points`: the rows used."""

    fits: pd.DataFrame
    points: pd.DataFrame


def censoring(table: pd.DataFrame, estimate: str) -> np.ndarray:
    """Per row: -1 where ``estimate`` lies at or below the grid (n* <= x_min), +1 beyond it (never
    reached: n* > x_max), 0 where the grid brackets it, and 2 where there is no estimate (NaN)."""
    v = table[estimate].to_numpy(float)
    reached = table["reached"].to_numpy(bool)
    above = ~reached | (v == np.inf) | (v > table["x_max"].to_numpy(float))
    below = ~above & np.isfinite(v) & (v <= table["x_min"].to_numpy(float))
    return np.select([above, below, np.isfinite(v)], [1, -1, 0], default=2)


def scaling_slope(
    table: pd.DataFrame,
    axis: str,
    estimate: str = "n_star_smooth",
    n_boot: int = 2000,
    ci: float = 0.9,
    seed: int = 0,
) -> SlopeFit:
    """Fit log n* = c + slope·log(axis) per group of the table's other `by` columns.

    The slope is the (inverse-)scaling exponent: n* ∝ axis^slope. A group needs two points the grid
    brackets (at different axis values); an n* beyond the grid (never reached: > x_max) or at or below
    its start (<= x_min) is censored data, not left out: it enters as the mean of the line's normal
    residual beyond its grid edge (censored regression, iterated as Buckley and James do), so a point
    consistent with the line barely moves it and one that contradicts it pulls. The residual scale is
    the bracketed points' own, at least half an octave (the grid's resolution). The CI is a parametric
    bootstrap: each bracketed log n* is drawn from a split normal matching its own CI (bounds beyond
    the grid clipped one octave past it) and the censored ones re-estimated in every draw.
    """
    _require(table, [axis, estimate, f"{estimate}_lo", f"{estimate}_hi", "reached"], "table")
    others = [c for c in table.columns if c not in {*SC_COLUMNS, axis, "curve"}]
    z = float(ndtri(0.5 + ci / 2))
    rng = np.random.default_rng(seed)
    used = table[censoring(table, estimate) != 2]
    fits, kept = [], []
    grouped = used.groupby(others, dropna=False, sort=True) if others else [((), used)]
    for key, g in grouped:
        key = key if isinstance(key, tuple) else (key,)
        g = g.sort_values(axis)
        side = censoring(g, estimate)
        if g.loc[side == 0, axis].nunique() < 2:
            continue
        lx = np.log(g[axis].to_numpy(float))
        edge = np.log(np.where(side > 0, g["x_max"], g["x_min"]).astype(float))
        with np.errstate(invalid="ignore", divide="ignore"):  # censored rows' values are replaced
            ln = np.where(side == 0, np.log(g[estimate].to_numpy(float)), edge)
            lo = np.log(np.clip(g[f"{estimate}_lo"].to_numpy(float), g["x_min"] / 2, None))
            hi = np.log(np.clip(g[f"{estimate}_hi"].to_numpy(float), None, g["x_max"] * 2))
            draw = rng.standard_normal((n_boot, len(g)))
            spread = np.where(draw < 0, ln - np.minimum(lo, ln), np.maximum(hi, ln) - ln)
            ly = np.where(side == 0, ln + spread * draw / z, edge)
        ly = np.vstack([ln[None], ly])
        slopes, intercepts = _censored_lines(lx, ly, side, edge)
        s_lo, s_hi = percentile_ci(slopes[1:], ci)
        fits.append(
            {
                **dict(zip(others, key)),
                "slope": slopes[0],
                "slope_lo": s_lo,
                "slope_hi": s_hi,
                "intercept": intercepts[0],
                "n_points": len(g),
                "n_censored": int((side != 0).sum()),
                "estimate": estimate,
            }
        )
        kept.append(g)
    return SlopeFit(
        pd.DataFrame(fits, columns=[*others, *SLOPE_COLUMNS]),
        pd.concat(kept) if kept else table.iloc[:0],
    )


def _censored_lines(
    lx: np.ndarray, ly: np.ndarray, side: np.ndarray, edge: np.ndarray, iterations: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """Slope and intercept of log n* on log axis for each row of ``ly`` (draws × points), its censored
    points (``side`` ±1, beyond ``edge``) replaced by their expected value beyond the edge under the
    current line, until the line settles."""
    xc = lx - lx.mean()
    fixed = side == 0
    y = ly.copy()
    floor = np.log(2.0) / 2
    for _ in range(iterations if (~fixed).any() else 1):
        slope = (y - y.mean(1, keepdims=True)) @ xc / (xc @ xc)
        intercept = y.mean(1) - slope * lx.mean()
        mu = intercept[:, None] + slope[:, None] * lx[None]
        resid = (ly - mu)[:, fixed]
        dof = max(int(fixed.sum()) - 2, 1)
        sigma = np.maximum(np.sqrt((resid**2).sum(1) / dof), floor)[:, None]
        t = (edge[None] - mu) / sigma
        # E[Y | Y > edge] = mu + sigma·φ(t)/(1 - Φ(t)); E[Y | Y <= edge] = mu - sigma·φ(t)/Φ(t)
        upper = mu + sigma * np.exp(_log_phi(t) - log_ndtr(-t))
        lower = mu - sigma * np.exp(_log_phi(t) - log_ndtr(t))
        y = np.where(fixed, ly, np.where(side > 0, upper, lower))
    slope = (y - y.mean(1, keepdims=True)) @ xc / (xc @ xc)
    return slope, y.mean(1) - slope * lx.mean()


def _log_phi(t: np.ndarray) -> np.ndarray:
    return -0.5 * t**2 - 0.5 * np.log(2 * np.pi)


def scaling_law(
    points: pd.DataFrame,
    x: str,
    y: str,
    by: Sequence[str],
    n_boot: int = 300,
    ci: float = 0.9,
    seed: int = 0,
    delta: float = 0.1,
    return_bootstrap: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, list]:
    """Per group, fit y = A·x^(-α) + E to the seed means, with bootstrap CIs over seeds.

    Huber loss on log residuals makes one bad cell matter little. Chinchilla's delta 1e-3 suits
    thousands of runs with tiny residuals; means of a few seeds scatter by several percent, where
    1e-3 is least absolute deviations on ~8 points: wider CIs (+30% on synthetic draws) and slow.
    0.1 stays quadratic at that scale and linear for a cell that is off by > 10%.
    `rmse_log` is the root-mean-square log residual of the fit; x values whose mean is not > 0
    are left out, and a group with fewer than 3 x values gets NaN. `fit_flag` says why a fit is not
    to be read as is ("" when it can be; :func:`fit_flag`). With return_bootstrap, also a list (one
    per row) of (n_boot, 3) arrays of (A, α, E), for bands on plots.
    """
    rng = np.random.default_rng(seed)
    rows, boots = [], []
    for key, xs, Y in _groups(points, x, y, by):
        M = boot_means(Y, n_boot, rng)
        keep = np.isfinite(M[0]) & (M[0] > 0)
        row = {
            **key,
            **{c: np.nan for c in SL_COLUMNS},
            "n_points": int(keep.sum()),
            "fit_flag": "",
        }
        boot = np.full((n_boot, 3), np.nan)
        if keep.sum() >= 3:
            M = np.maximum(M[:, keep], M[0, keep].min() * 1e-3)  # inflated resamples stay > 0
            lx = np.log(xs[keep])
            ref = lx.mean()  # fit in x / geometric-mean(x): keeps log A well conditioned
            th = fit_power_law(lx - ref, np.log(M), delta)
            params = np.stack([np.exp(th[:, 0] + th[:, 1] * ref), th[:, 1], np.exp(th[:, 2])], 1)
            resid = np.log(M[0]) - np.logaddexp(th[0, 0] - th[0, 1] * (lx - ref), th[0, 2])
            for name, col in (("A", 0), ("alpha", 1), ("E", 2)):
                row[name] = params[0, col]
                row[f"{name}_lo"], row[f"{name}_hi"] = percentile_ci(params[1:, col], ci)
            row["rmse_log"] = float(np.sqrt(np.mean(resid**2)))
            row["fit_flag"] = fit_flag(row)
            boot = params[1:]
        rows.append(row)
        boots.append(boot)
    table = pd.DataFrame(rows, columns=[*by, *SL_COLUMNS])
    return (table, boots) if return_bootstrap else table


def _bounds_hit(*values: float) -> list[str]:
    """The bounds of α (0, ALPHA_MAX) that any of ``values`` sits at."""
    return [f"{b:g}" for b in (0.0, ALPHA_MAX) if any(abs(v - b) <= 1e-6 for v in values)]


def alpha_at_bound(row: Mapping[str, Any]) -> bool:
    """A fitted α at 0 or ALPHA_MAX: not a power law plus a constant on this range."""
    return bool(_bounds_hit(row["alpha"]))


POOR_FIT_RMSE_LOG = 0.3
"""A scaling-law fit's rms log residual beyond which it is flagged as poor (see :func:`fit_flag`)."""


def fit_flag(row: Mapping[str, Any]) -> str:
    """Why a scaling-law fit is not to be read as is: "" when it can be, else its reasons, e.g.
    ``alpha CI at bound (5); poor fit (rmse_log 5.58)``.

    α is fitted within [0, ALPHA_MAX]: an α at a bound is the bound, not a measurement (the curve is
    flat, or falls faster than any power), and a CI that reaches one is cut by it, not by the data.
    A fit is poor when its rms log residual exceeds 0.3, a typical miss of 35% of a seed mean: three
    times the Huber loss's delta of 0.1, the scale the means of a few seeds scatter at, so the misses
    are the data's shape rather than seed noise: y is not A·x^-α + E on this range.
    """
    flags = []
    if bounds := _bounds_hit(row["alpha"]):
        flags.append(f"alpha at bound ({bounds[0]})")
    elif bounds := _bounds_hit(row["alpha_lo"], row["alpha_hi"]):
        flags.append(f"alpha CI at bound ({', '.join(bounds)})")
    if row["rmse_log"] > POOR_FIT_RMSE_LOG:
        flags.append(f"poor fit (rmse_log {row['rmse_log']:.2f})")
    return "; ".join(flags)
