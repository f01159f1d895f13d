"""Curves on synthetic data with known answers: best-trial choice, n*, sigmoid n*, power laws."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

from orchestrator.answers.curves import (
    POOR_FIT_RMSE_LOG,
    SC_COLUMNS,
    SL_COLUMNS,
    fit_flag,
    sample_complexity,
    scaling_law,
    scaling_slope,
    seed_points,
)
from orchestrator.answers.figures import plot_scaling_law
from orchestrator.answers.kernels import huber as _huber
from orchestrator.answers.tables import scaling_law_markdown

AXES = ["n_train"]


# ------------------------------------------------------------------------------ seed_points


def _trial(tid: str, n: int, status: str, final: float, best: float | None = None) -> dict:
    return {
        "trial_id": tid,
        "cell": f"n_train={n}",
        "n_train": n,
        "lr": 1e-3,
        "status": status,
        "epochs": 5,
        "seconds": 1.0,
        "final_test_loss": final,
        "best_test_loss": final if best is None else best,
        "final_test_acc": 1 - final,
    }


def _curve(tid: str, losses: list[float], seeds: int = 2) -> list[dict]:
    return [
        {
            "trial_id": tid,
            "epoch": e,
            "seed": s,
            "test_loss": v + 0.01 * s,
            "test_acc": 1 - v - 0.01 * s,
        }
        for e, v in enumerate(losses)
        for s in range(seeds)
    ]


@pytest.fixture
def tiny() -> tuple[pd.DataFrame, pd.DataFrame]:
    trials = pd.DataFrame(
        [
            _trial("good", 16, "completed", 0.30),
            _trial("worse", 16, "completed", 0.50),
            _trial("pruned", 16, "pruned", 0.10),  # better value, but from a shorter budget
            _trial("errored", 16, "errored", 0.01),
            _trial("only_pruned", 32, "pruned", 0.40),
            _trial("diverged", 64, "diverged", np.nan),
        ]
    )
    metrics = pd.DataFrame(
        _curve("good", [0.9, 0.5, 0.2, 0.25, 0.3])
        + _curve("worse", [0.9, 0.7, 0.6, 0.55, 0.5])
        + _curve("pruned", [0.5, 0.1])
        + _curve("errored", [0.01])
        + _curve("only_pruned", [0.8, 0.4])
        + _curve("diverged", [np.nan, np.nan])
    )
    return trials, metrics


def test_seed_points_prefers_completed_best_trial_at_final_epoch(tiny):
    trials, metrics = tiny
    pts = seed_points(trials, metrics, AXES, "test_loss", {"test_loss": "min"})
    assert list(pts.columns[:5]) == ["cell", "n_train", "trial_id", "seed", "epoch"]
    chosen = pts.groupby("n_train")["trial_id"].first().to_dict()
    assert chosen == {16: "good", 32: "only_pruned", 64: "diverged"}
    good = pts[pts.trial_id == "good"]
    assert (good.epoch == 4).all() and len(good) == 2
    assert good.test_loss.tolist() == pytest.approx([0.30, 0.31])
    assert pts[pts.trial_id == "diverged"].test_loss.isna().all()


def test_seed_points_best_epoch_and_max_mode(tiny):
    trials, metrics = tiny
    best = seed_points(trials, metrics, AXES, "test_loss", {"test_loss": "min"}, at="best")
    assert (best[best.trial_id == "good"].epoch == 2).all()  # seed-mean 0.205 at epoch 2
    # Ranked by accuracy (max): the same best trial, since acc = 1 - loss here.
    acc = seed_points(trials, metrics, AXES, "test_acc", {"test_acc": "max"})
    assert acc.groupby("n_train")["trial_id"].first()[16] == "good"
    # Flip the metric's meaning: under "max" the worse-loss trial wins on loss.
    flipped = seed_points(trials, metrics, AXES, "test_loss", {"test_loss": "max"})
    assert flipped.groupby("n_train")["trial_id"].first()[16] == "worse"


def test_seed_points_names_the_missing_column(tiny):
    trials, metrics = tiny
    with pytest.raises(ValueError, match="'final_test_error'"):
        seed_points(trials, metrics, AXES, "test_error", {})
    with pytest.raises(ValueError, match="'embed_dim'"):
        seed_points(trials, metrics, ["embed_dim"], "test_loss", {})


# ------------------------------------------------------------------------ sample complexity


def _points(xs, fn, seeds: int, noise: float, seed: int = 0, **cols) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        [
            {"n": x, "seed": s, "err": fn(x) + rng.normal(0, noise), **cols}
            for x in xs
            for s in range(seeds)
        ]
    )


XS = 2 ** np.arange(3, 12)


def test_grid_n_star_on_noisy_step_curves():
    steps = {"a": 64, "b": 256, "c": 1024}
    pts = pd.concat(
        [
            _points(XS, lambda x, s=step: 0.9 * (x < s), 3, 0.05, i, group=g)
            for i, (g, step) in enumerate(steps.items())
        ]
    )
    table = sample_complexity(pts, "n", "err", ["group"], threshold=0.2, n_boot=300)
    assert list(table.columns) == ["group", *SC_COLUMNS]
    assert table.set_index("group")["n_star"].to_dict() == steps
    assert table["reached"].all() and (table["n_star_lo"] == table["n_star"]).all()
    # The sigmoid puts its crossing inside the step, between the last bad and first good x.
    assert ((table.n_star_smooth > table.n_star / 2) & (table.n_star_smooth <= table.n_star)).all()


def test_n_star_must_stay_below_threshold_and_max_mode():
    dip = {8: 0.9, 16: 0.05, 32: 0.6, 64: 0.05, 128: 0.02, 256: 0.0}
    table = sample_complexity(_points(dip, dip.get, 2, 0.0), "n", "err", [], 0.1)
    assert table.n_star[0] == 64
    acc = _points(dip, lambda x: 1 - dip[x], 2, 0.0)
    assert sample_complexity(acc, "n", "err", [], 0.9, mode="max").n_star[0] == 64


def test_never_reached_is_inf_with_honest_ci():
    pts = _points(XS, lambda x: 0.5 - 0.02 * np.log2(x), 3, 0.02)  # ends near 0.28
    row = sample_complexity(pts, "n", "err", [], 0.1, n_boot=200).iloc[0]
    assert not row.reached and np.isinf(row.n_star) and np.isinf(row.n_star_hi)
    assert np.isinf(row.n_star_smooth) and row.x_max == XS[-1]


def test_sigmoid_estimate_close_to_true_crossing():
    t0, k, thr = 7.3, 1.5, 0.1
    true = 2 ** (t0 + np.log((1 - thr) / thr) / k)  # where 1/(1+e^{k(t-t0)}) = thr: ~ 272
    curve = lambda x: 1 / (1 + np.exp(k * (np.log2(x) - t0)))  # noqa: E731
    for chance in (None, 1.0):
        row = sample_complexity(
            _points(XS, curve, 5, 0.02, 3), "n", "err", [], thr, n_boot=300, chance=chance
        ).iloc[0]
        assert abs(np.log2(row.n_star_smooth / true)) < 0.1
        assert row.n_star_smooth_lo <= true <= row.n_star_smooth_hi


def test_single_seed_single_x_and_diverged_seeds():
    one = sample_complexity(_points(XS, lambda x: 0.9 * (x < 100), 1, 0.01), "n", "err", [], 0.2)
    assert one.n_star[0] == one.n_star_lo[0] == one.n_star_hi[0] == 128
    assert one.n_star_smooth_lo[0] == one.n_star_smooth[0] == one.n_star_smooth_hi[0]
    single_x = sample_complexity(_points([64], lambda x: 0.0, 3, 0.01), "n", "err", [], 0.2)
    assert single_x.n_star[0] == 64 and np.isnan(single_x.n_star_smooth[0])
    pts = _points(XS, lambda x: 0.9 * (x < 100), 3, 0.01)
    pts.loc[(pts.n == 2048), "err"] = np.nan  # every seed diverged at the largest x
    pts.loc[(pts.n == 256) & (pts.seed == 0), "err"] = np.nan  # one seed diverged
    row = sample_complexity(pts, "n", "err", [], 0.2).iloc[0]
    assert not row.reached and row.n_seeds == 3
    pts["err"] = np.nan
    row = sample_complexity(pts, "n", "err", [], 0.2).iloc[0]
    assert not row.reached and np.isnan(row.n_star_smooth)


def test_points_errors_are_actionable():
    pts = _points(XS, lambda x: 0.0, 2, 0.0, group="a")
    with pytest.raises(ValueError, match="missing from `by`"):
        sample_complexity(pd.concat([pts, pts.assign(group="b")]), "n", "err", [], 0.1)
    with pytest.raises(ValueError, match="seed_points"):
        sample_complexity(pts.drop(columns="seed"), "n", "err", [], 0.1)
    with pytest.raises(ValueError, match="'test_error'"):
        sample_complexity(pts, "n", "test_error", [], 0.1)


# ------------------------------------------------------------------------------ scaling law


def _law(
    A: float, alpha: float, E: float, seeds: int, noise: float, seed: int, xs=XS, **cols
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        [
            {"n": x, "seed": s, **cols, "loss": (A * x**-alpha + E) * np.exp(rng.normal(0, noise))}
            for x in xs
            for s in range(seeds)
        ]
    )


def test_scaling_law_recovers_alpha_and_E():
    pts = pd.concat(
        [_law(3.0, 0.5, 0.05, 5, 0.02, 0, width=64), _law(10.0, 1.0, 0.2, 5, 0.02, 1, width=128)]
    )
    table = scaling_law(pts, "n", "loss", ["width"], n_boot=300).set_index("width")
    assert list(table.reset_index().columns) == ["width", *SL_COLUMNS]
    for w, (A, alpha, E) in {64: (3.0, 0.5, 0.05), 128: (10.0, 1.0, 0.2)}.items():
        r = table.loc[w]
        assert abs(r.alpha - alpha) < 0.05 and abs(r.E - E) < 0.15 * E and abs(r.A / A - 1) < 0.2
        assert r.alpha_lo <= alpha <= r.alpha_hi and r.E_lo <= E <= r.E_hi
        assert r.rmse_log < 0.03 and r.n_points == len(XS)


def test_batched_fit_matches_scipy_lbfgsb_multistart():
    """The batched Levenberg-Marquardt finds the optimum scipy's L-BFGS-B finds from 6 starts."""
    pts = _law(3.0, 0.5, 0.05, 3, 0.1, 7)
    means = pts.groupby("n")["loss"].mean()
    lx, ly = np.log(means.index.to_numpy(float)), np.log(means.to_numpy())
    ref_lx = lx.mean()

    def loss(th: np.ndarray) -> float:
        return _huber(ly - np.logaddexp(th[0] - th[1] * (lx - ref_lx), th[2]), 0.1).sum()

    starts = [(ly.mean(), a, ly.min() - d) for a in (0.3, 1.0, 2.5) for d in (6.0, 0.3)]
    bounds = [(ly.min() - 12, ly.max() + 12), (0.0, 5.0), (ly.min() - 12, ly.max())]
    best = min(
        (minimize(loss, np.array(s), method="L-BFGS-B", bounds=bounds) for s in starts),
        key=lambda r: r.fun,
    )
    row = scaling_law(pts, "n", "loss", [], n_boot=10).iloc[0]
    ours = np.array([np.log(row.A) - row.alpha * ref_lx, row.alpha, np.log(row.E)])
    assert loss(ours) <= best.fun + 1e-7
    assert abs(row.alpha - best.x[1]) < 1e-2


def test_scaling_law_edge_cases():
    few = scaling_law(_law(3, 0.5, 0.05, 3, 0.05, 0, xs=[16, 32]), "n", "loss", [], n_boot=20)
    assert few.n_points[0] == 2 and np.isnan(few.alpha[0])
    one = scaling_law(_law(3, 0.5, 0.05, 1, 0.05, 0), "n", "loss", [], n_boot=20).iloc[0]
    assert one.alpha_lo == pytest.approx(one.alpha) and one.alpha_hi == pytest.approx(one.alpha)
    table, boots = scaling_law(
        _law(3, 0.5, 0.05, 3, 0.05, 0), "n", "loss", [], n_boot=20, return_bootstrap=True
    )
    assert boots[0].shape == (20, 3) and np.isfinite(boots[0]).all()


def test_a_clean_power_law_is_not_flagged():
    row = scaling_law(_law(3.0, 0.5, 0.05, 3, 0.05, 0), "n", "loss", [], n_boot=50).iloc[0]
    assert row.fit_flag == "" and row.rmse_log < POOR_FIT_RMSE_LOG


def test_a_step_that_no_power_law_follows_is_flagged_as_a_poor_fit():
    step = pd.DataFrame(
        [{"n": x, "seed": s, "loss": 0.9 if x < 64 else 1e-4} for x in XS for s in range(3)]
    )
    row = scaling_law(step, "n", "loss", [], n_boot=50).iloc[0]
    assert row.rmse_log > POOR_FIT_RMSE_LOG
    assert f"poor fit (rmse_log {row.rmse_log:.2f})" in row.fit_flag


@pytest.mark.parametrize(
    "alpha,lo,hi,rmse_log,expected",
    [
        (1.2, 0.8, 5.0, 5.58, "alpha CI at bound (5); poor fit (rmse_log 5.58)"),
        (0.0, 0.0, 0.3, 0.05, "alpha at bound (0)"),
        (5.0, 3.0, 5.0, 0.05, "alpha at bound (5)"),
        (1.2, 0.0, 5.0, 0.05, "alpha CI at bound (0, 5)"),
        (1.2, 0.8, 1.6, 0.05, ""),
    ],
)
def test_fit_flag_names_a_bound_alpha_or_its_ci_reaches_and_a_poor_fit(
    alpha: float, lo: float, hi: float, rmse_log: float, expected: str
):
    row = {"alpha": alpha, "alpha_lo": lo, "alpha_hi": hi, "rmse_log": rmse_log}
    assert fit_flag(row) == expected


def test_a_flagged_fit_is_marked_and_explained_in_the_summary_table():
    table = scaling_law(_law(3.0, 0.5, 0.05, 3, 0.05, 0), "n", "loss", [], n_boot=20)
    ok = "\n".join(scaling_law_markdown(table, "n", "loss", [], "final"))
    assert "| fit |" in ok and "| ok |" in ok and "†" not in ok
    table.loc[0, "fit_flag"] = "poor fit (rmse_log 5.58)"
    flagged = "\n".join(scaling_law_markdown(table, "n", "loss", [], "final"))
    assert "] † |" in flagged and "| poor fit (rmse_log 5.58) |" in flagged
    assert "† a flagged fit" in flagged


def test_a_flagged_fit_is_named_in_the_legend_and_noted_on_the_plot(tmp_path):
    steps = pd.concat(
        [
            _law(3.0, 0.5, 0.05, 3, 0.05, 0, width=64),
            pd.DataFrame(
                [
                    {"n": x, "seed": s, "width": 128, "loss": 0.9 if x < 64 else 1e-4}
                    for x in XS
                    for s in range(3)
                ]
            ),
        ]
    )
    table, boots = scaling_law(steps, "n", "loss", ["width"], n_boot=20, return_bootstrap=True)
    plot_scaling_law(steps, table, boots, "n", "loss", ["width"], tmp_path / "law.png")
    svg = (
        tmp_path / "law.svg"
    ).read_text()  # matplotlib keeps each text as a comment beside its glyphs
    flag = table.set_index("width").fit_flag
    assert flag[64] == "" and f"[{flag[128]}] -->" in svg and "<!-- Flagged fits" in svg


# ----------------------------------------------------------------------------- slope of n*


def _n_star_row(w: float, n: float, **changes: object) -> dict:
    return {
        "embed_dim": w,
        "n_star": n,
        "n_star_lo": n * 0.8,
        "n_star_hi": n * 1.25,
        "n_star_smooth": n,
        "n_star_smooth_lo": n * 0.9,
        "n_star_smooth_hi": n * 1.1,
        "reached": True,
        "x_min": 2.0,
        "x_max": 4096.0,
        "n_seeds": 3,
        **changes,
    }


def test_scaling_slope_recovers_exponent_over_bracketed_groups():
    rows = [
        _n_star_row(w, 4.0 * w**exponent, vo_identity=vo)
        for vo, exponent in ((False, 1.0), (True, 0.0))
        for w in (64, 128, 256, 512)
    ]
    fit = scaling_slope(pd.DataFrame(rows), "embed_dim", seed=1)
    f = fit.fits.set_index("vo_identity")
    assert f.loc[False, "slope"] == pytest.approx(1.0)
    assert f.loc[True, "slope"] == pytest.approx(0.0, abs=1e-9)
    assert (f.slope_lo < f.slope).all() and (f.slope < f.slope_hi).all()
    assert (f.slope_hi - f.slope_lo).max() < 0.5 and (f.n_points == 4).all()
    assert (f.n_censored == 0).all() and len(fit.points) == 8


def test_a_censored_n_star_is_carried_into_the_slope_not_left_out():
    line = [_n_star_row(w, 4.0 * w) for w in (64, 128, 256, 512)]  # n* = 4·width, to 2048
    beyond = {"n_star": np.inf, "n_star_smooth": np.inf, "reached": False}
    consistent = scaling_slope(
        pd.DataFrame([*line, _n_star_row(4096, np.inf, **beyond)]), "embed_dim"
    )
    (row,) = consistent.fits.to_dict("records")
    assert row["n_censored"] == 1 and row["n_points"] == 5
    assert row["slope"] == pytest.approx(1.0, abs=0.01), "n* > 4096 where the line says 16384"
    # "never reached" at width 1024, where the line says 4096: evidence that n* grows faster
    bending = scaling_slope(pd.DataFrame([*line, _n_star_row(1024, np.inf, **beyond)]), "embed_dim")
    assert bending.fits.slope.iloc[0] > 1.05
    # at or below the grid's first value: censored below, pulling the other way
    below = scaling_slope(pd.DataFrame([_n_star_row(32, 2.0), *line]), "embed_dim")
    assert below.fits.n_censored.iloc[0] == 1 and below.fits.slope.iloc[0] > 1.0
    # a group the grid brackets nowhere has no slope: only bounds
    none = scaling_slope(pd.DataFrame([_n_star_row(w, 2.0) for w in (64, 128, 256)]), "embed_dim")
    assert none.fits.empty
