"""write_curves end to end on a synthetic 30-cell × 3-seed sweep: files, columns, summary, PNGs."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from orchestrator.answers.curves import SC_COLUMNS, SL_COLUMNS, seed_points
from orchestrator.answers.tables import fmt_n, group_label, scaling_law_markdown
from orchestrator.answers.write import write_curves, write_sweep_curves
from orchestrator.spec.plan import SweepPlan, plan_sweep
from orchestrator.spec.schema import CurveSpec, parse_spec

AXES = ["embed_dim", "n_train", "vo_identity"]
MODES = {"test_loss": "min", "test_error": "min", "train_loss": "min"}
METRICS = ("train_loss", "test_loss", "test_error")


def make_sweep(
    seed: int = 0,
    widths=(64, 128, 256),
    ns=(16, 32, 64, 128, 256),
    seeds: int = 3,
    per_cell: int = 2,
    epochs: int = 6,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Copy-task-like sweep: vanilla n* doubles with width (256 never gets there), VO needs ~16."""
    rng = np.random.default_rng(seed)
    trials, metrics = [], []
    for w in widths:
        for n in ns:
            for vo in (False, True):
                cell = f"embed_dim={w},n_train={n},vo_identity={str(vo).lower()}"
                mid = 3.0 if vo else np.log2(w) - 0.5
                for j in range(per_cell):
                    tid = f"t{len(trials):04d}"
                    worse = 0.3 * (per_cell - 1 - j)  # the last trial of a cell is its best
                    err = np.clip(
                        1 / (1 + np.exp(2 * (np.log2(n) - mid)))
                        + worse
                        + rng.normal(0, 0.03, seeds),
                        0,
                        1,
                    )
                    loss = (4 * n**-0.6 + 0.05) * (1 + worse) * np.exp(rng.normal(0, 0.05, seeds))
                    rows = [
                        {
                            "trial_id": tid,
                            "epoch": e,
                            "seed": s,
                            "train_loss": loss[s] * d / 2,
                            "test_loss": loss[s] * d,
                            "test_error": min(1.0, err[s] * d),
                        }
                        for e in range(epochs)
                        for d in [np.exp((epochs - 1 - e) / 2)]
                        for s in range(seeds)
                    ]
                    metrics += rows
                    m = pd.DataFrame(rows)
                    per_epoch = m.groupby("epoch")[list(METRICS)].mean()
                    trials.append(
                        {
                            "trial_id": tid,
                            "cell": cell,
                            "embed_dim": w,
                            "n_train": n,
                            "vo_identity": vo,
                            "lr": 1e-3 * (j + 1),
                            "status": "completed",
                            "epochs": epochs,
                            "seconds": 1.0,
                            **{f"final_{k}": per_epoch[k].iloc[-1] for k in METRICS},
                            **{f"best_{k}": per_epoch[k].min() for k in METRICS},
                        }
                    )
    return pd.DataFrame(trials), pd.DataFrame(metrics)


SPECS = [
    CurveSpec(
        kind="sample_complexity",
        x="n_train",
        y="test_error",
        by=["embed_dim", "vo_identity"],
        threshold=0.1,
    ),
    CurveSpec(kind="scaling_law", x="n_train", y="test_loss", by=["embed_dim"]),
]


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, list[Path], float]:
    trials, metrics = make_sweep()
    assert trials["cell"].nunique() == 30
    out = tmp_path_factory.mktemp("curves")
    start = time.perf_counter()
    paths = write_curves(trials, metrics, SPECS, AXES, "test_loss", MODES, out)
    return out, paths, time.perf_counter() - start


def test_write_curves_writes_every_output(written):
    out, paths, seconds = written
    names = {p.name for p in paths}
    stem = "test_error_vs_n_train_by_embed_dim_vo_identity"
    assert names == {
        f"sample_complexity_{stem}.png",
        f"n_star_vs_embed_dim_{stem}.png",
        # vo_identity varies, so it joins `by` on its own: no line mixes cells
        "scaling_law_test_loss_vs_n_train_by_embed_dim_vo_identity.png",
        "sample_complexity.parquet",
        "scaling_law.parquet",
        "scaling_slope.parquet",
        "summary.md",
    }
    for p in paths:
        assert p.exists() and p.parent == out
        if p.suffix == ".png":
            with Image.open(p) as im:
                assert im.format == "PNG" and im.width > 600 and im.height > 350
            assert p.stat().st_size < 150_000
    print(f"write_curves on 30 cells x 3 seeds: {seconds:.2f} s")


def test_parquet_tables_have_the_documented_columns(written):
    out, _, _ = written
    sc = pd.read_parquet(out / "sample_complexity.parquet")
    assert list(sc.columns) == ["curve", "embed_dim", "vo_identity", *SC_COLUMNS]
    assert len(sc) == 6
    by_key = sc.set_index(["embed_dim", "vo_identity"])
    assert by_key.loc[(64, False), "n_star"] == 128 and by_key.loc[(128, False), "n_star"] == 256
    assert not by_key.loc[(256, False), "reached"] and np.isinf(by_key.loc[(256, False), "n_star"])
    assert (by_key.xs(True, level="vo_identity")["n_star"] <= 32).all()
    sl = pd.read_parquet(out / "scaling_law.parquet")
    assert list(sl.columns) == ["curve", "embed_dim", "vo_identity", *SL_COLUMNS]
    assert (sl["alpha"].between(0.3, 1.0)).all() and (sl["alpha_lo"] <= sl["alpha_hi"]).all()
    slopes = pd.read_parquet(out / "scaling_slope.parquet").set_index("vo_identity")
    assert slopes.loc[False, "slope"] > 0.5  # vanilla: more width needs more data


def test_summary_prints_never_reached_and_cis(written):
    out, _, _ = written
    text = (out / "summary.md").read_text()
    assert "## Sample complexity: test_error ≤ 0.1 vs n_train" in text
    assert "| 256 | false | > 256 [" in text  # never reached within the grid
    assert "## Scaling law: test_loss = A·n_train^(-α) + E" in text
    assert "embed_dim^slope" in text and text.count("|---|") >= 3


def test_write_curves_is_robust(tmp_path):
    trials, metrics = make_sweep(seeds=1, ns=(16,), widths=(64, 128))  # one seed, one x
    metrics.loc[metrics.trial_id == trials.trial_id.iloc[-1], "test_error"] = np.nan  # diverged
    specs = [
        {
            "kind": "sample_complexity",
            "x": "n_train",
            "y": "test_error",
            "by": [],
            "threshold": 0.1,
            "at": "best",
        },
        {"kind": "scaling_law", "x": "n_train", "y": "test_loss", "by": []},
    ]
    paths = write_curves(trials, metrics, specs, AXES, "test_loss", MODES, tmp_path)
    assert (tmp_path / "summary.md") in paths and len(list(tmp_path.glob("*.png"))) == 2
    sl = pd.read_parquet(tmp_path / "scaling_law.parquet")
    assert sl["alpha"].isna().all() and (sl["n_points"] == 1).all()
    with pytest.warns(UserWarning, match="curves.0: no metric column 'test_acc'.*: skipped"):
        paths = write_curves(
            trials,
            metrics,
            [{"kind": "scaling_law", "x": "n_train", "y": "test_acc"}],
            AXES,
            "test_loss",
            MODES,
            tmp_path / "missing",
        )
    assert paths == [tmp_path / "missing" / "summary.md"]
    with pytest.raises(ValueError, match="curves.0.by: 'depth' is not an axis"):
        write_curves(
            trials,
            metrics,
            [{"kind": "scaling_law", "x": "n_train", "y": "test_loss", "by": ["depth"]}],
            AXES,
            "test_loss",
            MODES,
            tmp_path,
        )


def test_two_specs_of_one_kind_share_a_table(tmp_path):
    trials, metrics = make_sweep(widths=(64, 128))
    specs = [
        CurveSpec(
            kind="sample_complexity",
            x="n_train",
            y="test_error",
            by=["embed_dim", "vo_identity"],
            threshold=t,
        )
        for t in (0.1, 0.3)
    ]
    write_curves(trials, metrics, specs, AXES, "test_loss", MODES, tmp_path)
    sc = pd.read_parquet(tmp_path / "sample_complexity.parquet")
    assert sc["curve"].nunique() == 2 and len(sc) == 8


def test_labels_for_people():
    assert group_label({"embed_dim": 128, "vo_identity": True}) == "embed_dim=128, vo_identity=true"
    assert group_label({}) == "all"
    assert fmt_n(np.inf, hi_bound=2048) == "> 2048" and fmt_n(0.0, lo_bound=4) == "< 4"
    assert fmt_n(4.0, lo_bound=4) == "≤ 4" and fmt_n(8.0, lo_bound=4) == "8", "censored below"
    assert fmt_n(203.4) == "203" and fmt_n(12.34) == "12.3"
    fit = dict(
        zip(SL_COLUMNS, [5.0, 0.1, 5.0, 1.0, 0.5, 2.0, 1e-9, 1e-12, 0.1, 2.5, 7, "at bound"])
    )
    md = "\n".join(scaling_law_markdown(pd.DataFrame([fit]), "n", "loss", [], "final"))
    assert "5.000 [0.100, 5.000] †" in md and "not a power law" in md


def test_seed_points_from_the_synthetic_sweep_picks_best_trial():
    trials, metrics = make_sweep(widths=(64,), ns=(16, 32))
    pts = seed_points(trials, metrics, AXES, "test_loss", MODES)
    best = trials.sort_values("final_test_loss").drop_duplicates("cell")
    assert set(pts["trial_id"]) == set(best["trial_id"]) and len(pts) == 4 * 3
    assert (pts["epoch"] == 5).all()


def _synthetic_sweep(root: Path, status: str, test_loss: float | None) -> SweepPlan:
    """A 3-cell synthetic sweep on disk (trials.parquet, metrics/) whose trials all end in ``status``;
    ``test_loss`` None: no metric rows at all (every trial failed before its first epoch)."""
    plan = plan_sweep(
        parse_spec(
            {
                "name": "failed",
                "trainable": "synthetic",
                "axes": {"size": [1, 2, 4]},
                "seeds": 2,
                "search": {"algorithm": "grid-only"},
                "storage": {"tracking_uri": None},
                "curves": [
                    {"kind": "sample_complexity", "x": "size", "y": "test_loss", "threshold": 0.5},
                    {"kind": "scaling_law", "x": "size", "y": "test_loss"},
                    {"kind": "scaling_law", "x": "size", "y": "train_loss"},
                ],
            }
        )
    )
    final = np.nan if test_loss is None else test_loss
    train = {
        n: 0.5 / n if status == "completed" else final for n in (1, 2, 4)
    }  # completed: only test_loss is NaN
    trials = pd.DataFrame(
        [
            {
                "trial_id": f"t{i}",
                "cell": f"size={n}",
                "size": n,
                "status": status,
                "epochs": 2,
                "seconds": 1.0,
                "error": None,
                "final_test_loss": final,
                "best_test_loss": final,
                "final_train_loss": train[n],
                "best_train_loss": train[n],
            }
            for i, n in enumerate([1, 2, 4])
        ]
    )
    root.mkdir(parents=True)
    trials.to_parquet(root / "trials.parquet", index=False)
    if test_loss is not None:
        (root / "metrics").mkdir()
        pd.DataFrame(
            [
                {
                    "trial_id": f"t{i}",
                    "epoch": e,
                    "seed": s,
                    "test_loss": test_loss,
                    "train_loss": train[n],
                }
                for i, n in enumerate([1, 2, 4])
                for e in (1, 2)
                for s in (0, 1)
            ]
        ).to_parquet(root / "metrics" / "part-0.parquet", index=False)
    return plan


@pytest.mark.parametrize(
    "status, test_loss",
    [("errored", None), ("errored", 1.0), ("diverged", np.nan), ("completed", np.nan)],
)
def test_a_sweep_whose_trials_all_failed_skips_its_curves_with_a_warning(
    tmp_path, status, test_loss
):
    """Curves are fitted after a run has written its results: one with nothing to fit (y absent or all
    NaN at the cells' best trials) is skipped with a one-line warning instead of failing the run."""
    plan = _synthetic_sweep(tmp_path / "sweep", status, test_loss)
    with pytest.warns(UserWarning) as caught:
        paths = write_sweep_curves(plan, tmp_path / "sweep")
    skipped = [str(w.message) for w in caught if "skipped" in str(w.message)]
    assert all(m.count("\n") == 0 for m in skipped)
    curves = tmp_path / "sweep" / "curves"
    if (
        status == "completed"
    ):  # only test_loss is all NaN: the train_loss scaling law is still drawn
        assert [m[:9] for m in skipped] == ["curves.0:", "curves.1:"]
        assert {p.name for p in paths} == {
            "scaling_law_train_loss_vs_size.png",
            "scaling_law.parquet",
            "summary.md",
        }
        assert set(pd.read_parquet(curves / "scaling_law.parquet")["curve"]) == {
            "train_loss_vs_size"
        }
    else:
        assert len(skipped) == 3 and paths == [curves / "summary.md"]
    assert (curves / "summary.md").read_text().startswith("# Curves")


def test_every_figure_also_has_svg_and_pdf_beside_it(written):
    out, paths, _ = written
    for png in (p for p in paths if p.suffix == ".png"):
        assert png.with_suffix(".svg").read_text().lstrip().startswith("<?xml")
        assert png.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"


def test_the_band_is_a_bootstrap_ci_of_the_seed_mean_not_the_range():
    from orchestrator.answers.figures import _mean_ci

    values = pd.Series([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
    low, high = _mean_ci(values)
    assert 0.0 <= low <= 0.1 <= high < 1.0, "narrower than min–max, around the mean"
    assert _mean_ci(pd.Series([0.3])) == (0.3, 0.3)


def test_more_than_ten_groups_differ_in_dash_or_marker_not_only_colour():
    from orchestrator.answers.figures import line_styles

    keys = [{"a": i, "b": i % 3, "c": 0} for i in range(14)]
    styles = line_styles(keys, ["a", "b", "c"])  # three by-axes: the tab10 cycle
    looks = {(s["color"], s["linestyle"], s["marker"]) for s in styles}
    assert len(looks) == 14
