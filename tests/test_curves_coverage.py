"""Do the 90% CIs cover the truth about 90% of the time? Measured over 50 seeded synthetic draws.

Why 0.75..1.0: with 50 draws at a true coverage of 0.90 the observed rate has sd
sqrt(.9·.1/50) ≈ 0.042, so 0.75 is 3.5 sd below: an honest interval fails with p < 1e-3 (and the
draws are seeded, so the test is deterministic). What it catches: an interval that ignores seed
noise, or one half as wide as it should be (that covers ~59%). Measured here: alpha 0.92, E 0.96,
smooth n* 0.84; the plain bootstrap without the sqrt(k/(k-1)) inflation gives 0.84, 0.86, 0.78.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from orchestrator.answers.curves import sample_complexity, scaling_law

DRAWS, SEEDS = 50, 3
XS = 2.0 ** np.arange(3, 12)


def _draw(rng: np.random.Generator, mean: np.ndarray, noise: str, scale: float) -> pd.DataFrame:
    eps = rng.normal(0, scale, (len(XS), SEEDS))
    y = mean[:, None] * np.exp(eps) if noise == "log" else mean[:, None] + eps
    return pd.DataFrame(
        {"n": np.repeat(XS, SEEDS), "seed": np.tile(np.arange(SEEDS), len(XS)), "y": y.ravel()}
    )


def test_alpha_ci_coverage():
    A, alpha, E = 3.0, 0.5, 0.05
    rng = np.random.default_rng(2024)
    hits = {"alpha": 0, "E": 0}
    for i in range(DRAWS):
        pts = _draw(rng, A * XS**-alpha + E, "log", 0.1)
        row = scaling_law(pts, "n", "y", [], n_boot=300, seed=i).iloc[0]
        hits["alpha"] += row.alpha_lo <= alpha <= row.alpha_hi
        hits["E"] += row.E_lo <= E <= row.E_hi
    for name, h in hits.items():
        assert 0.75 <= h / DRAWS <= 1.0, (name, h / DRAWS)


def test_smooth_n_star_ci_coverage():
    t0, k, thr = 7.3, 1.5, 0.1
    true = 2 ** (t0 + np.log((1 - thr) / thr) / k)
    rng = np.random.default_rng(7)
    hits = 0
    for i in range(DRAWS):
        pts = _draw(rng, 1 / (1 + np.exp(k * (np.log2(XS) - t0))), "add", 0.05)
        row = sample_complexity(pts, "n", "y", [], thr, n_boot=500, seed=i).iloc[0]
        hits += row.n_star_smooth_lo <= true <= row.n_star_smooth_hi
    assert 0.75 <= hits / DRAWS <= 1.0, hits / DRAWS
