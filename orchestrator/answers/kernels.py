"""Batched numerical kernels behind the curve fits: bootstrap means, percentile CIs, the sigmoid
and power-law fits. Arrays in, arrays out (numpy only), one row per bootstrap replicate, so a
curve's thousands of fits run as a few vectorised passes instead of a Python loop.
"""

from __future__ import annotations

import numpy as np

ALPHA_MAX = 5.0  # bounds α to [0, 5]: a fit at either end means "not a power law here"


def boot_means(Y: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
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


def percentile_ci(samples: np.ndarray, ci: float) -> tuple[float, float]:
    """Percentile interval by order statistics: no interpolation, so ±inf survive as bounds."""
    s = np.sort(samples[~np.isnan(samples)])
    if len(s) == 0:
        return np.nan, np.nan
    lo = s[int(np.floor((1 - ci) / 2 * (len(s) - 1)))]
    hi = s[int(np.ceil((1 + ci) / 2 * (len(s) - 1)))]
    return float(lo), float(hi)


def grid_n_star(xs: np.ndarray, means: np.ndarray, good: np.ndarray) -> np.ndarray:
    """Smallest grid x from which the mean is good at every larger x; inf when none."""
    stays = np.flip(np.logical_and.accumulate(np.flip(good, -1), -1), -1)
    return np.where(stays.any(-1), xs[stays.argmax(-1)], np.inf)


def fit_sigmoid(t: np.ndarray, M: np.ndarray, chance: float | None) -> np.ndarray:
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
            det = s0 * s2 - s1**2
            ok = det > 1e-9 * s0**2
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
    for _ in range(3):  # coarse grid, then two refinements around each row's best
        sse, a, b = solve(mm, np.exp(kk))
        j = sse.argmin(1)
        bm, bk = np.broadcast_to(mm, sse.shape)[rows, j], np.broadcast_to(kk, sse.shape)[rows, j]
        m_step, lk_step = m_step / 4, lk_step / 4
        dm, dk = (
            d.ravel()[None]
            for d in np.meshgrid(np.arange(-4, 5) * m_step, np.arange(-4, 5) * lk_step)
        )
        mm, kk = np.clip(bm[:, None] + dm, *m_lim), np.clip(bk[:, None] + dk, *k_lim)
    out = np.stack([a[rows, j], b[rows, j], bm, np.exp(bk)], 1)
    out[~np.isfinite(sse[rows, j])] = np.nan
    return out


def sigmoid_crossing(
    p: np.ndarray, t_lo: float, t_hi: float, thr: float, sign: float
) -> np.ndarray:
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
    out = np.where(
        good(f(t_hi)), np.where(good(f(t_lo)), 0.0, 2.0 ** np.clip(t_star, t_lo, t_hi)), np.inf
    )
    return np.where(np.isnan(a), np.nan, out)


def huber(r: np.ndarray, delta: float) -> np.ndarray:
    """Huber loss: quadratic within ±delta, linear beyond, so one far-off cell pulls a fit little."""
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def fit_power_law(lx: np.ndarray, LY: np.ndarray, delta: float, iters: int = 30) -> np.ndarray:
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


def _lm(
    lx: np.ndarray,
    LY: np.ndarray,
    theta: np.ndarray,
    delta: float,
    lo: np.ndarray,
    hi: np.ndarray,
    iters: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Batched projected Levenberg-Marquardt on the Huber loss; a step is kept only if it helps.

    A row leaves the batch after 5 steps without real progress, so cost follows the slow rows.
    """

    def evaluate(th: np.ndarray, ly: np.ndarray) -> tuple[np.ndarray, ...]:
        t1 = th[:, :1] - th[:, 1:2] * lx
        lyh = np.logaddexp(t1, th[:, 2:3])
        r = ly - lyh
        return r, np.exp(t1 - lyh), huber(r, delta).sum(1)

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
        h = [
            wuu.sum(1) * (1 + la) + 1e-9,
            -(wuu * lx).sum(1),
            wuv.sum(1),
            (wuu * lx * lx).sum(1) * (1 + la) + 1e-9,
            -(wuv * lx).sum(1),
            wvv.sum(1) * (1 + la) + 1e-9,
        ]  # damped JᵀWJ: H00 H01 H02 H11 H12 H22
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
