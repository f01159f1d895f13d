"""Per-position curves end to end: an in-context sweep stores each trial's accuracy by context
position in positions/, and the `position` curve draws the model against oracle and baseline;
a sample-complexity curve over training steps (x: epoch) reads the same sweep."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from helpers import scalesweep, write_spec

from orchestrator.store.positions import load_positions

K, STEPS, SEEDS = 8, 60, 2
SPEC = {
    "name": "positions",
    "trainable": "incontext",
    "fixed": {
        "task": "logistic_regression",
        "k": K,
        "alpha": 10,
        "depth": 1,
        "heads": 1,
        "batch_size": 32,
        "steps": STEPS,
        "eval_every": 20,
        "n_eval": 64,
        "lr": 3e-3,
    },
    "axes": {"d": [2], "embed_dim": [8, 16]},
    "search": {"algorithm": "grid-only"},
    "seeds": SEEDS,
    "metric": {"name": "test_acc", "mode": "max"},
    "storage": {"tracking_uri": None},
    "curves": [
        {"kind": "position", "y": "acc_by_k", "by": ["embed_dim"]},
        {
            "kind": "sample_complexity",
            "x": "epoch",
            "y": "test_acc",
            "by": ["embed_dim"],
            "threshold": 0.6,
        },
    ],
}


def test_position_curves_are_stored_per_seed_and_drawn_against_the_references(
    tmp_path: Path,
) -> None:
    proc = scalesweep("run", str(write_spec(tmp_path / "spec.yaml", SPEC)), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    root = tmp_path / "results" / "positions"
    trials = pd.read_parquet(root / "trials.parquet")
    positions = load_positions(root)
    assert (
        len(positions) == len(trials) * SEEDS * K
        and not positions.duplicated(["trial_id", "seed", "position"]).any()
    )
    assert {"acc_by_k", "oracle_acc_by_k", "baseline_acc_by_k"} <= set(positions.columns)
    # the curve's mean over positions is the scalar the trial reported at its last step
    per_trial = positions.groupby("trial_id").acc_by_k.mean()
    final = trials.set_index("trial_id").final_test_acc
    assert (per_trial - final.loc[per_trial.index]).abs().max() < 1e-6

    table = pd.read_parquet(root / "curves" / "position.parquet")
    assert sorted(table.embed_dim.unique()) == [8, 16] and set(table.position) == set(range(K))
    assert {"acc_by_k_se", "oracle_acc_by_k", "baseline_acc_by_k"} <= set(table.columns)
    assert (table.oracle_acc_by_k > 0.8).all(), "the oracle knows w at every position"
    assert (root / "curves" / "position_acc_by_k_by_embed_dim.png").stat().st_size > 0
    assert "acc_by_k by context position" in (root / "curves" / "summary.md").read_text()

    steps = pd.read_parquet(root / "curves" / "sample_complexity.parquet")
    assert sorted(steps.embed_dim) == [8, 16] and (steps.x_max == STEPS).all(), (
        "x is the training step"
    )


def test_a_position_curve_the_trainable_does_not_report_is_one_line_and_exit_2(
    tmp_path: Path,
) -> None:
    spec = {**SPEC, "curves": [{"kind": "position", "y": "test_acc"}]}
    proc = scalesweep("validate", str(write_spec(tmp_path / "spec.yaml", spec)), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "curves.0.y: 'test_acc' is not a per-position curve incontext reports" in proc.stderr
