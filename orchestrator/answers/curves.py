"""The answer to a sweep: n* and scaling-law fits with bootstrap CIs, from its Parquet results.

Pure functions on DataFrames (usable from a notebook) plus `write_curves`, which the CLI calls at
the end of a sweep. Every interval is a percentile bootstrap over *seeds*, resampled within each
x, so it says how much the answer would move with other seeds. With k seeds the plain bootstrap
under-states the variance of a mean by (k-1)/k (a third for k=3), so resampled means are pushed
away from the observed mean by sqrt(k/(k-1)); the coverage tests rely on it. Fits run batched
over all bootstrap replicates at once (numpy), which keeps `write_curves` to a second or two.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Iterator, Literal, NamedTuple, Sequence

import numpy as np
import pandas as pd
from scipy.special import ndtri

Mode = Literal["min", "max"]
SC_COLUMNS = ["n_star", "n_star_lo", "n_star_hi", "n_star_smooth", "n_star_smooth_lo",
              "n_star_smooth_hi", "reached", "x_min", "x_max", "n_seeds"]
SL_COLUMNS = ["alpha", "alpha_lo", "alpha_hi", "A", "A_lo", "A_hi", "E", "E_lo", "E_hi",
              "rmse_log", "n_points"]
ALPHA_MAX = 5.0  # bounds α to [0, 5]: a fit at either end means "not a power law here"
_STATUS_RANK = {"completed": 0, "pruned": 1, "diverged": 2}
_KEYS = ["trial_id", "epoch", "seed"]


def _require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    for c in columns:
        if c not in df.columns:
            raise ValueError(f"{what}: missing column {c!r}; columns are {list(df.columns)}")


def _sign(modes: dict[str, str], metric: str) -> float:
    """+1 when smaller is better, -1 when larger is: ranking is then always a minimisation."""
    mode = modes.get(metric, "min")
    if mode not in ("min", "max"):
        raise ValueError(f"modes[{metric!r}]: expected 'min' or 'max', got {mode!r}")
    return 1.0 if mode == "min" else -1.0


def seed_points(trials: pd.DataFrame, metrics: pd.DataFrame, axes: Sequence[str], select: str,
                modes: dict[str, str], at: Literal["final", "best", "all"] = "final") -> pd.DataFrame:
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
    key = f"{at}_{select}" if f"{at}_{select}" in trials.columns else f"final_{select}"  # all: ranked at final
    _require(trials, ["trial_id", "cell", "status", key, *axes], "trials")
    _require(metrics, [*_KEYS, select], "metrics")
    sign = _sign(modes, select)
    t = trials[trials["status"] != "errored"].copy()
    t["_rank"] = t["status"].map(_STATUS_RANK).fillna(3)
    t["_score"] = (sign * t[key].astype(float)).fillna(np.inf)
    best = t.sort_values(["cell", "_rank", "_score", "trial_id"]).drop_duplicates("cell")
    m = metrics[metrics["trial_id"].isin(best["trial_id"])]
    missing = sorted(set(best["trial_id"]) - set(m["trial_id"]))
    if missing:
        warnings.warn(f"no metric rows for best trials {missing[:5]}: their cells are left out")
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
    metric_cols = [c for c in metrics.columns if c not in _KEYS]
    out = out[["cell", *axes, "trial_id", "seed", "epoch", *metric_cols]]
    return out.sort_values([*axes, "seed"]).reset_index(drop=True)


# ---------------------------------------------------------------- groups and bootstrap means

def _groups(points: pd.DataFrame, x: str, y: str, by: Sequence[str]
            ) -> Iterator[tuple[dict[str, Any], np.ndarray, np.ndarray]]:
    """Yield (group key, sorted grid x, Y[x, seed]) with NaN where a seed is missing/diverged."""
    if "seed" not in points.columns:
        raise ValueError("points: missing column 'seed'; build per-seed points with "
                         "seed_points(trials, metrics, axes, select, modes)")
    _require(points, [x, y, *by], "points")
    if points.duplicated([*by, x, "seed"]).any():
        raise ValueError(f"points: several rows per ({', '.join([*by, x])}, seed): an axis that "
                         "varies is missing from `by`")
    if not pd.api.types.is_numeric_dtype(points[x]) or (points[x] <= 0).any():
        raise ValueError(f"x: axis {x!r} must be numeric and > 0 to be read on a log scale")
    grouped = points.groupby(list(by), dropna=False, sort=True) if by else [((), points)]
    for key, g in grouped:
        key = key if isinstance(key, tuple) else (key,)
        wide = g.pivot(index=x, columns="seed", values=y).sort_index()
        yield dict(zip(by, key)), wide.index.to_numpy(float), wide.to_numpy(float)


def _boot_means(Y: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Row 0: the seed-mean per x; rows 1..n_boot: inflated bootstrap means (seeds within x)."""
    n_x, s = Y.shape
    finite = np.isfinite(Y)
    k = finite.sum(1)
    packed = np.take_along_axis(Y, np.argsort(~finite, axis=1, kind="stable"), 1)
    mean = np.where(k > 0, np.where(finite, Y, 0.0).sum(1) / np.maximum(k, 1), np.nan)
    idx = (rng.random((n_boot, n_x, s)) * np.maximum(k, 1)[None, :, None]).astype(int)
    draws = packed[np.arange(n_x)[None, :, None], idx]
    inside = np.arange(s)[None, None, :] < k[None, :, None]
    boot = np.where(inside, draws, 0.0).sum(-1) / np.maximum(k, 1)
    inflate = np.sqrt(k / np.maximum(k - 1, 1))
    boot = mean + inflate * (boot - mean)
    return np.vstack([mean[None], boot])


def _ci(samples: np.ndarray, ci: float) -> tuple[float, float]:
    """Percentile interval by order statistics: no interpolation, so ±inf survive as bounds."""
    s = np.sort(samples[~np.isnan(samples)])
    if len(s) == 0:
        return np.nan, np.nan
    lo = s[int(np.floor((1 - ci) / 2 * (len(s) - 1)))]
    hi = s[int(np.ceil((1 + ci) / 2 * (len(s) - 1)))]
    return float(lo), float(hi)


# ------------------------------------------------------------------------ sample complexity

def _grid_nstar(xs: np.ndarray, means: np.ndarray, good: np.ndarray) -> np.ndarray:
    """Smallest grid x from which the mean is good at every larger x; inf when none."""
    stays = np.flip(np.logical_and.accumulate(np.flip(good, -1), -1), -1)
    return np.where(stays.any(-1), xs[stays.argmax(-1)], np.inf)


def _fit_sigmoid(t: np.ndarray, M: np.ndarray, chance: float | None) -> np.ndarray:
    """Least-squares y = a + (b-a)·σ(k(t-m)) for every row of M; returns (rows, 4) a, b, m, k.

    Variable projection: for fixed (m, k) the model is linear in (a, b), solved in closed form;
    (m, k) come from a coarse grid refined twice around each row's best. Batched over bootstrap
    rows, this is ~100x faster than one least_squares call per replicate and has no bad starts.
    a is the small-x level (fixed to `chance` when given); m is bounded to one octave beyond the
    grid and k (slope per octave) to [0.25, 12] so a step between two grid points is centred.
    """
    w = np.isfinite(M[0]).astype(float)
    Mw = np.nan_to_num(M) * w
    y0 = M[0][w > 0]
    span = max(np.ptp(y0), 1e-9)
    lo, hi = y0.min() - span, y0.max() + span
    s0 = w.sum()

    def dot(sig: np.ndarray, v: np.ndarray) -> np.ndarray:  # Σ_x sig·v -> (rows, G)
        return v @ sig[0].T if sig.shape[0] == 1 else np.einsum("bgn,bn->bg", sig, v)

    def solve(m: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, ...]:
        sig = 1.0 / (1.0 + np.exp(-k[..., None] * (t - m[..., None])))  # (1|B, G, n)
        s1, s2 = (sig * w).sum(-1), (sig * sig * w).sum(-1)
        if chance is None:
            t0 = Mw.sum(-1)[:, None]
            t1 = dot(sig, Mw)
            det = s0 * s2 - s1 ** 2
            ok = det > 1e-9 * s0 ** 2
            c = (s0 * t1 - s1 * t0) / np.where(ok, det, 1.0)
            a = (t0 - c * s1) / s0
            sse = (Mw * np.nan_to_num(M)).sum(-1)[:, None] - a * t0 - c * t1
            ok = ok & (a >= lo) & (a <= hi)
        else:
            z = (np.nan_to_num(M) - chance) * w
            t1 = dot(sig, z)
            ok = s2 > 1e-12
            c = t1 / np.where(ok, s2, 1.0)
            a = np.full_like(c, chance)
            sse = (z * z).sum(-1)[:, None] - c * t1
        ok = ok & (a + c >= lo) & (a + c <= hi)
        return np.where(ok, sse, np.inf), a, a + c

    rows = np.arange(M.shape[0])
    m_lim, k_lim = (t.min() - 1, t.max() + 1), (np.log(0.25), np.log(12.0))
    m_step, lk_step = 0.25, (k_lim[1] - k_lim[0]) / 9
    grid = np.meshgrid(np.arange(m_lim[0], m_lim[1] + 1e-9, m_step), np.linspace(*k_lim, 10))
    mm, kk = (g.ravel()[None] for g in grid)
    for level in range(3):  # coarse grid, then two refinements around each row's best
        sse, a, b = solve(mm, np.exp(kk))
        j = sse.argmin(1)
        bm, bk = np.broadcast_to(mm, sse.shape)[rows, j], np.broadcast_to(kk, sse.shape)[rows, j]
        m_step, lk_step = m_step / 4, lk_step / 4
        dm, dk = (d.ravel()[None] for d in np.meshgrid(np.arange(-4, 5) * m_step,
                                                         np.arange(-4, 5) * lk_step))
        mm, kk = np.clip(bm[:, None] + dm, *m_lim), np.clip(bk[:, None] + dk, *k_lim)
    out = np.stack([a[rows, j], b[rows, j], bm, np.exp(bk)], 1)
    out[~np.isfinite(sse[rows, j])] = np.nan
    return out


def _crossing(p: np.ndarray, t_lo: float, t_hi: float, thr: float, sign: float) -> np.ndarray:
    """x where the fitted sigmoid becomes good for good, read on [2^t_lo, 2^t_hi].

    inf when it is not good at 2^t_hi (never reached), 0 when already good at 2^t_lo (below the
    grid: "< min"), NaN when there is no fit. Beyond one octave past the grid we do not extrapolate.
    """
    a, b, m, k = p.T
    f = lambda tt: a + (b - a) / (1 + np.exp(-k * (tt - m)))  # noqa: E731
    good = lambda v: sign * (v - thr) <= 0  # noqa: E731
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.clip((thr - a) / (b - a), 1e-300, 1 - 1e-16)
        t_star = m + np.log(q / (1 - q)) / k
    out = np.where(good(f(t_hi)), np.where(good(f(t_lo)), 0.0, 2.0 ** np.clip(t_star, t_lo, t_hi)),
                   np.inf)
    return np.where(np.isnan(a), np.nan, out)


def sample_complexity(points: pd.DataFrame, x: str, y: str, by: Sequence[str],
                      threshold: float, mode: Mode = "min", n_boot: int = 1000,
                      ci: float = 0.9, seed: int = 0, chance: float | None = None) -> pd.DataFrame:
    """Per group of `by`: the data size n* from which the seed-mean of y meets the threshold.

    `n_star` is the smallest grid x where the mean is good and stays good at every larger x (inf
    with reached=False when never); `n_star_smooth` reads a sigmoid in log2 x fitted to the seed
    means at the threshold (0 = below the grid, inf = beyond it; needs >= 3 x values). Both come
    with percentile-bootstrap CIs over seeds; a bound may be inf when some resamples never reach.
    Diverged (NaN) seeds are left out of a mean; an x where every seed diverged counts as not good.
    """
    sign = 1.0 if mode == "min" else -1.0
    rng = np.random.default_rng(seed)
    rows = []
    for key, xs, Y in _groups(points, x, y, by):
        M = _boot_means(Y, n_boot, rng)
        grid = _grid_nstar(xs, M, sign * (np.nan_to_num(M, nan=np.inf * sign) - threshold) <= 0)
        t = np.log2(xs)
        if np.isfinite(M[0]).sum() >= 3:
            smooth = _crossing(_fit_sigmoid(t, M, chance), t[0] - 1, t[-1] + 1, threshold, sign)
        else:
            smooth = np.full(len(M), np.nan)
        lo, hi = _ci(grid[1:], ci)
        s_lo, s_hi = _ci(smooth[1:], ci)
        rows.append({**key, "n_star": grid[0], "n_star_lo": lo, "n_star_hi": hi,
                     "n_star_smooth": smooth[0], "n_star_smooth_lo": s_lo, "n_star_smooth_hi": s_hi,
                     "reached": bool(np.isfinite(grid[0])), "x_min": xs[0], "x_max": xs[-1],
                     "n_seeds": Y.shape[1]})
    return pd.DataFrame(rows, columns=[*by, *SC_COLUMNS])


class SlopeFit(NamedTuple):
    """`fits`: one row per remaining group (slope, CI, intercept); `points`: the rows used."""
    fits: pd.DataFrame
    points: pd.DataFrame


def scaling_slope(table: pd.DataFrame, axis: str, estimate: str = "n_star_smooth",
                  n_boot: int = 2000, ci: float = 0.9, seed: int = 0) -> SlopeFit:
    """Fit log n* = c + slope·log(axis) per group of the table's other `by` columns.

    The slope is the (inverse-)scaling exponent: n* ∝ axis^slope. Only reached groups with a
    finite estimate are used. Its CI is a parametric bootstrap: each log n* is drawn from a split
    normal matching its own CI (bounds beyond the grid clipped one octave past it), so it carries
    the seed uncertainty of every point; it does not widen for points off a straight line.
    """
    _require(table, [axis, estimate, f"{estimate}_lo", f"{estimate}_hi", "reached"], "table")
    others = [c for c in table.columns if c not in {*SC_COLUMNS, axis, "curve"}]
    z = float(ndtri(0.5 + ci / 2))
    rng = np.random.default_rng(seed)
    used = table[table["reached"] & np.isfinite(table[estimate]) & (table[estimate] > 0)]
    fits, kept = [], []
    grouped = used.groupby(others, dropna=False, sort=True) if others else [((), used)]
    for key, g in grouped:
        key = key if isinstance(key, tuple) else (key,)
        g = g.sort_values(axis)
        if g[axis].nunique() < 2:
            continue
        lx = np.log(g[axis].to_numpy(float))
        ln = np.log(g[estimate].to_numpy(float))
        lo = np.log(np.clip(g[f"{estimate}_lo"].to_numpy(float), g["x_min"] / 2, None))
        hi = np.log(np.clip(g[f"{estimate}_hi"].to_numpy(float), None, g["x_max"] * 2))
        draw = rng.standard_normal((n_boot, len(g)))
        ly = ln + np.where(draw < 0, ln - np.minimum(lo, ln), np.maximum(hi, ln) - ln) * draw / z
        ly = np.vstack([ln[None], ly])
        xc = lx - lx.mean()
        slopes = (ly - ly.mean(1, keepdims=True)) @ xc / (xc @ xc)
        s_lo, s_hi = _ci(slopes[1:], ci)
        fits.append({**dict(zip(others, key)), "slope": slopes[0], "slope_lo": s_lo,
                     "slope_hi": s_hi, "intercept": ln.mean() - slopes[0] * lx.mean(),
                     "n_points": len(g), "estimate": estimate})
        kept.append(g)
    cols = [*others, "slope", "slope_lo", "slope_hi", "intercept", "n_points", "estimate"]
    return SlopeFit(pd.DataFrame(fits, columns=cols),
                    pd.concat(kept) if kept else table.iloc[:0])


# ------------------------------------------------------------------------------ scaling law

def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def _fit_power_law(lx: np.ndarray, LY: np.ndarray, delta: float, iters: int = 30
                   ) -> np.ndarray:
    """Chinchilla approach 3 for every row of LY: min Σ huber(log y - log(A·x^-α + E)).

    θ = (log A, α, log E) with log ŷ = logaddexp(log A - α·log x, log E), as in Hoffmann et al.
    Multi-start from a grid of (α, E), each start fitted by a bounded Levenberg-Marquardt with
    Huber IRLS weights, batched over rows × starts; the best start per row is then polished.
    scipy's L-BFGS-B finds the same optima (tested) at ~7 ms a fit: too slow for starts ×
    bootstrap rows × groups, thousands of fits per curve.
    """
    n_rows = LY.shape[0]
    ly_min, ly_max = LY.min(), LY.max()
    lo = np.array([ly_min - 12, 0.0, ly_min - 12])
    hi = np.array([ly_max + 12, ALPHA_MAX, ly_max])
    starts = []
    for alpha in (0.3, 1.0, 2.5):
        for drop in (6.0, 0.3):
            le = LY.min(1) - drop
            gap = np.log(np.maximum(np.exp(LY) - np.exp(le)[:, None], 1e-3 * np.exp(LY)))
            la = np.median(gap + alpha * lx, 1)
            starts.append(np.stack([la, np.full(n_rows, alpha), le], 1))
    theta = np.clip(np.stack(starts, 1).reshape(-1, 3), lo, hi)
    theta, loss = _lm(lx, np.repeat(LY, len(starts), 0), theta, delta, lo, hi, iters)
    best = loss.reshape(n_rows, -1).argmin(1)
    theta = theta.reshape(n_rows, -1, 3)[np.arange(n_rows), best]
    return _lm(lx, LY, theta, delta, lo, hi, 5 * iters)[0]


def _lm(lx: np.ndarray, LY: np.ndarray, theta: np.ndarray, delta: float, lo: np.ndarray,
        hi: np.ndarray, iters: int) -> tuple[np.ndarray, np.ndarray]:
    """Batched projected Levenberg-Marquardt on the Huber loss; a step is kept only if it helps.

    A row leaves the batch after 5 steps without real progress, so cost follows the slow rows.
    """
    def evaluate(th: np.ndarray, ly: np.ndarray) -> tuple[np.ndarray, ...]:
        t1 = th[:, :1] - th[:, 1:2] * lx
        lyh = np.logaddexp(t1, th[:, 2:3])
        r = ly - lyh
        return r, np.exp(t1 - lyh), _huber(r, delta).sum(1)

    theta = theta.copy()
    r, share, loss = evaluate(theta, LY)
    lam = np.full(len(theta), 1e-2)
    stalled = np.zeros(len(theta), int)
    act = np.arange(len(theta))
    for _ in range(iters):
        ra, ua, la = r[act], share[act], lam[act]
        w = np.minimum(1.0, delta / np.maximum(np.abs(ra), 1e-300))
        psi, va = np.clip(ra, -delta, delta), 1 - ua  # d log ŷ/dθ = (u, -u·lx, v)
        wuu, wuv, wvv = w * ua * ua, w * ua * va, w * va * va
        h = [wuu.sum(1) * (1 + la) + 1e-9, -(wuu * lx).sum(1), wuv.sum(1),
             (wuu * lx * lx).sum(1) * (1 + la) + 1e-9, -(wuv * lx).sum(1),
             wvv.sum(1) * (1 + la) + 1e-9]  # damped JᵀWJ: H00 H01 H02 H11 H12 H22
        step = _solve3(h, [(psi * ua).sum(1), -(psi * ua * lx).sum(1), (psi * va).sum(1)])
        new = np.clip(theta[act] + step, lo, hi)
        r2, share2, loss2 = evaluate(new, LY[act])
        ok = loss2 <= loss[act]
        progress = loss[act] - loss2 > 1e-9 * loss[act] + 1e-12
        stalled[act] = np.where(progress, 0, stalled[act] + 1)
        keep = act[ok]
        theta[keep], r[keep], share[keep], loss[keep] = new[ok], r2[ok], share2[ok], loss2[ok]
        lam[act] = np.clip(np.where(ok, la / 3, la * 4), 1e-10, 1e10)
        act = act[stalled[act] < 5]
        if len(act) == 0:
            break
    return theta, loss


def _solve3(h: list[np.ndarray], g: list[np.ndarray]) -> np.ndarray:
    """Solve many symmetric 3x3 systems given their 6 upper entries (Cramer's rule, vectorised)."""
    a, b, c, d, e, f = h
    co = [d * f - e * e, c * e - b * f, b * e - c * d, a * f - c * c, b * c - a * e, a * d - b * b]
    det = a * co[0] + b * co[1] + c * co[2]
    inv = [[co[0], co[1], co[2]], [co[1], co[3], co[4]], [co[2], co[4], co[5]]]
    return np.stack([sum(inv[i][j] * g[j] for j in range(3)) / det for i in range(3)], 1)


def scaling_law(points: pd.DataFrame, x: str, y: str, by: Sequence[str], n_boot: int = 300,
                ci: float = 0.9, seed: int = 0, delta: float = 0.1,
                return_bootstrap: bool = False) -> pd.DataFrame | tuple[pd.DataFrame, list]:
    """Per group, fit y = A·x^(-α) + E to the seed means, with bootstrap CIs over seeds.

    Huber loss on log residuals makes one bad cell matter little. Chinchilla's delta 1e-3 suits
    thousands of runs with tiny residuals; means of a few seeds scatter by several percent, where
    1e-3 is least absolute deviations on ~8 points: wider CIs (+30% on synthetic draws) and slow.
    0.1 stays quadratic at that scale and linear for a cell that is off by > 10%.
    `rmse_log` is the root-mean-square log residual of the fit; x values whose mean is not > 0
    are left out, and a group with fewer than 3 x values gets NaN. With return_bootstrap, also a
    list (one per row) of (n_boot, 3) arrays of (A, α, E), for bands on plots.
    """
    rng = np.random.default_rng(seed)
    rows, boots = [], []
    for key, xs, Y in _groups(points, x, y, by):
        M = _boot_means(Y, n_boot, rng)
        keep = np.isfinite(M[0]) & (M[0] > 0)
        row = {**key, **{c: np.nan for c in SL_COLUMNS}, "n_points": int(keep.sum())}
        boot = np.full((n_boot, 3), np.nan)
        if keep.sum() >= 3:
            M = np.maximum(M[:, keep], M[0, keep].min() * 1e-3)  # inflated resamples stay > 0
            lx = np.log(xs[keep])
            ref = lx.mean()  # fit in x / geometric-mean(x): keeps log A well conditioned
            th = _fit_power_law(lx - ref, np.log(M), delta)
            params = np.stack([np.exp(th[:, 0] + th[:, 1] * ref), th[:, 1], np.exp(th[:, 2])], 1)
            resid = np.log(M[0]) - np.logaddexp(th[0, 0] - th[0, 1] * (lx - ref), th[0, 2])
            for name, col in (("A", 0), ("alpha", 1), ("E", 2)):
                row[name] = params[0, col]
                row[f"{name}_lo"], row[f"{name}_hi"] = _ci(params[1:, col], ci)
            row["rmse_log"] = float(np.sqrt(np.mean(resid ** 2)))
            boot = params[1:]
        rows.append(row)
        boots.append(boot)
    table = pd.DataFrame(rows, columns=[*by, *SL_COLUMNS])
    return (table, boots) if return_bootstrap else table


# ------------------------------------------------------------------------------- outputs

def _spec(spec: Any, name: str, default: Any = None) -> Any:
    return spec.get(name, default) if isinstance(spec, dict) else getattr(spec, name, default)


def write_curves(trials: pd.DataFrame, metrics: pd.DataFrame, curve_specs: Sequence[Any],
                 axes: Sequence[str], select: str, modes: dict[str, str], out_dir: str | Path,
                 n_boot: int = 500, seed: int = 0, positions: pd.DataFrame | None = None) -> list[Path]:
    """Fit every curve spec, write PNGs, `<kind>.parquet` tables and `summary.md`; return paths.

    Axes that vary but are neither x nor in `by` are added to `by`, so a line never mixes cells.
    The `curve` column (also the PNG names' stem) tells the specs of one kind apart. ``x: epoch``
    reads each cell's best trial along its training; ``position`` curves need ``positions``
    (positions.load_positions) and are skipped, with a warning, without them.
    """
    from orchestrator import plots  # matplotlib only when writing
    from orchestrator.positions import plot_positions, position_table, positions_markdown

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    tables: dict[str, list[pd.DataFrame]] = {"sample_complexity": [], "scaling_law": [], "position": []}
    slopes: list[pd.DataFrame] = []
    cache: dict[str, pd.DataFrame] = {}
    names: set[str] = set()
    md = ["# Curves", "", f"Each cell's best trial by `{select}` ({modes.get(select, 'min')}); "
          "[90% bootstrap CI over seeds].", ""]
    for i, spec in enumerate(curve_specs):
        kind, x, y = _spec(spec, "kind"), _spec(spec, "x"), _spec(spec, "y")
        by, at = list(_spec(spec, "by", []) or []), _spec(spec, "at", "final")
        if kind not in tables:
            raise ValueError(f"curves.{i}.kind: expected sample_complexity, scaling_law or position, "
                             f"got {kind!r}")
        for field, axis in [("x", x)] * (x not in (None, "epoch")) + [("by", b) for b in by]:
            if axis not in axes:
                raise ValueError(f"curves.{i}.{field}: {axis!r} is not an axis; "
                                 f"expected one of {list(axes)}")
        at = "all" if x == "epoch" else at
        if kind == "position" and (positions is None or positions.empty):
            warnings.warn(f"curves.{i}: no per-position results (positions/): {y} is not drawn")
            continue
        if kind != "position" and y not in metrics.columns:
            raise ValueError(f"curves.{i}.y: metric column {y!r} not in metrics; "
                             f"have {[c for c in metrics.columns if c not in _KEYS]}")
        if at not in cache:
            cache[at] = seed_points(trials, metrics, axes, select, modes, at)
        pts = cache[at]
        by += [a for a in axes if a != x and a not in by and pts[a].nunique(dropna=False) > 1]
        name = y + (f"_vs_{x}" if x else "") + (f"_by_{'_'.join(by)}" if by else "")
        name = name if name not in names else f"{name}_{i}"
        names.add(name)
        if kind == "position":
            table = position_table(pts, positions, y, by)
            paths.append(plot_positions(table, y, by, out / f"position_{name}.png"))
            md += positions_markdown(table, y, by)
        elif kind == "sample_complexity":
            if _spec(spec, "threshold") is None:
                raise ValueError(f"curves.{i}.threshold: required for sample_complexity")
            thr, mode = float(_spec(spec, "threshold")), "min" if _sign(modes, y) > 0 else "max"
            table = sample_complexity(pts, x, y, by, thr, mode, n_boot=n_boot, seed=seed,
                                      chance=_spec(spec, "chance"))
            paths.append(plots.plot_sample_complexity(
                pts, table, x, y, by, thr, mode, out / f"sample_complexity_{name}.png"))
            md += plots.sample_complexity_markdown(table, x, y, by, thr, mode, at)
            reached = table[table["reached"]]
            est = "n_star_smooth" if np.isfinite(reached["n_star_smooth"]).all() else "n_star"
            for axis in by:  # n* vs each numeric by-axis (width, depth, ...): the exponent
                dtype = pts[axis].dtype
                if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
                    continue
                fit = scaling_slope(table, axis, est, n_boot=4 * n_boot, seed=seed)
                if len(fit.fits):
                    paths.append(plots.plot_n_star(fit, table, axis, y,
                                                   out / f"n_star_vs_{axis}_{name}.png"))
                    md += plots.slope_markdown(fit, axis)
                    slopes.append(fit.fits.assign(curve=name, axis=axis))
        else:
            table, boots = scaling_law(pts, x, y, by, n_boot=n_boot // 2, seed=seed,
                                       return_bootstrap=True)
            paths.append(plots.plot_scaling_law(pts, table, boots, x, y, by,
                                                out / f"scaling_law_{name}.png"))
            md += plots.scaling_law_markdown(table, x, y, by, at)
        tables[kind].append(table.assign(curve=name)[["curve", *table.columns]])
    for kind, ts in [*tables.items(), ("scaling_slope", slopes)]:
        if ts:
            path = out / f"{kind}.parquet"
            pd.concat(ts, ignore_index=True).to_parquet(path, index=False)
            paths.append(path)
    (out / "summary.md").write_text("\n".join(md) + "\n")
    return paths + [out / "summary.md"]
