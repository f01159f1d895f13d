"""Report cadence: a trial holds reports back (each one sent costs the driver and stalls the trial) and sends
at once the ones early stopping decides on, so what a sweep records does not depend on the cadence.

Real local Ray, real Parquet, the synthetic trainable; one trial at a time so that ASHA sees the same
trials in the same order in both sweeps compared.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from ray import tune
from ray.tune.schedulers import AsyncHyperBandScheduler

from orchestrator.spec.plan import plan_sweep
from orchestrator.spec.schema import parse_spec
from orchestrator.store.results import load_metrics, load_trials
from orchestrator.tune.run import run_sweep
from orchestrator.tune.scheduling import rung_epochs

SPEC = {
    "trainable": "synthetic",
    "fixed": {"epochs": 12, "sleep_s": 0.02},
    "axes": {"fail_epoch": [0, 7]},
    "search": {
        "algorithm": "random",
        "samples_per_cell": 6,
        "space": {"lr": {"loguniform": [1e-4, 1e-1]}},
    },
    "seeds": 2,
    "metric": {"name": "test_loss"},
    "scheduler": {"asha": {"grace_period": 1, "reduction_factor": 2}},
    "resources": {"members_per_trial": 1, "max_concurrent_trials": 1},
    "max_failures": 0,
}


@pytest.mark.parametrize(
    "epochs, grace, factor", [(12, 1, 2), (100, 5, 3), (81, 1, 3), (8, 8, 2), (50, 2, 2.5)]
)
def test_rung_epochs_are_where_rays_asha_decides(epochs: int, grace: int, factor: float) -> None:
    spec = {
        **SPEC,
        "fixed": {"epochs": epochs},
        "scheduler": {"asha": {"grace_period": grace, "reduction_factor": factor}},
    }
    asha = AsyncHyperBandScheduler(
        time_attr="epoch",
        metric="m",
        mode="min",
        max_t=epochs,
        grace_period=grace,
        reduction_factor=factor,
    )
    assert sorted(rung_epochs(plan_sweep(parse_spec({"name": "x", **spec})))) == sorted(
        milestone for milestone, _ in asha._brackets[0]._rungs
    )


@pytest.mark.usefixtures("ray_session")
def test_reports_held_back_record_the_same_trials_epochs_and_early_stops_as_reports_sent_each_epoch(
    tmp_path: Path,
) -> None:
    def sweep(name: str, report_every_s: float) -> Path:
        plan = plan_sweep(parse_spec({"name": name, **SPEC, "report_every_s": report_every_s}))
        return run_sweep(plan, results_root=str(tmp_path), tracking_uri=None).results_dir

    each, held = sweep("each", 0), sweep("held", 1000)
    keys = ["cell", "lr"]
    a, b = (load_trials(root).set_index(keys).sort_index() for root in (each, held))
    assert set(a.status) == {"completed", "pruned", "errored"}, (
        "ASHA stopped trials and some raised"
    )
    assert (
        a.loc[a.status == "errored", "epochs"] == 6
    ).all()  # the epochs held back when it raised are kept
    columns = ["status", "epochs", "final_test_loss", "best_test_loss", "final_train_loss"]
    pd.testing.assert_frame_equal(a[columns], b[columns])

    def metrics(root: Path) -> pd.DataFrame:
        trials = load_trials(root)[["trial_id", *keys]]
        return (
            load_metrics(root)
            .merge(trials)
            .drop(columns="trial_id")
            .set_index([*keys, "epoch", "seed"])
            .sort_index()
        )

    pd.testing.assert_frame_equal(metrics(each), metrics(held))

    sent = {
        root: [
            t.last_result["training_iteration"]
            for t in tune.ExperimentAnalysis(str(root / "tune")).trials
            if t.last_result.get("epoch") == 12
        ]
        for root in (each, held)
    }
    assert sent[each] and set(sent[each]) == {12}
    assert set(sent[held]) == {5}, "one report per rung (1, 2, 4, 8) and the last"
