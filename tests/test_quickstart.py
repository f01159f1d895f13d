"""The quickstart spec, shrunk with --set, through the real CLI: Parquet, a curve PNG, MLflow runs."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
from helpers import scalesweep

QUICKSTART = Path(__file__).resolve().parent.parent / "sweeps" / "quickstart.yaml"


def test_shrunk_quickstart_end_to_end(tmp_path: Path) -> None:
    proc = scalesweep(
        "run",
        str(QUICKSTART),
        "--set",
        "fixed.epochs=12",
        "--set",
        "axes.embed_dim=[16]",
        "--set",
        "axes.n_train=[4,16]",
        "--set",
        "search.samples_per_cell=1",
        "--set",
        "scheduler.asha.grace_period=4",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    root = tmp_path / "results" / "quickstart"
    trials = pd.read_parquet(root / "trials.parquet")
    assert len(trials) == 4 and trials.trial_id.is_unique
    assert set(trials.cell) == {
        f"embed_dim=16,n_train={n},vo_identity={v}" for n in (4, 16) for v in ("false", "true")
    }
    assert trials.final_test_error.between(0, 1).all() and "final_test_acc" in trials
    metrics = pd.read_parquet(root / "metrics")
    assert not metrics.duplicated(["trial_id", "epoch", "seed"]).any() and set(metrics.seed) == {
        0,
        1,
    }
    assert list((root / "curves").glob("*.png")) and (root / "curves" / "summary.md").exists()
    assert "quickstart: 4 trials" in proc.stdout
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("quickstart").experiment_id])
    assert len(runs) == 5 and sum("mlflow.parentRunId" in r.data.tags for r in runs) == 4
