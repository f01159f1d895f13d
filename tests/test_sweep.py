"""A tiny sweep end to end on a real local Ray, real Optuna journal storage, real MLflow (sqlite)."""

from __future__ import annotations

import mlflow
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from orchestrator.spec.plan import plan_sweep
from orchestrator.spec.schema import parse_spec
from orchestrator.store.results import load_metrics, load_trials
from orchestrator.tune.run import run_sweep

SPEC = {
    "name": "tiny",
    "trainable": "synthetic",
    "fixed": {"epochs": 6},
    "axes": {"size": [1, 4], "rate": [0.2, 0.6]},
    "search": {"samples_per_cell": 3, "space": {"lr": {"loguniform": [1e-4, 1e-1]}}},
    "seeds": 2,
    "metric": {"name": "test_loss"},
    "scheduler": {"asha": {"grace_period": 2, "reduction_factor": 2}},
}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, ray_session):
    root = tmp_path_factory.mktemp("sweep")
    uri = f"sqlite:///{root}/mlflow.db"
    plan = plan_sweep(parse_spec(SPEC))
    outcome = run_sweep(plan, results_root=str(root / "results"), tracking_uri=uri)
    return plan, outcome, uri


def test_every_trial_has_one_row_with_the_contract_columns(sweep) -> None:
    plan, outcome, _ = sweep
    table = pq.read_table(outcome.results_dir / "trials.parquet")
    assert table.num_rows == plan.spec.total_trials == 12
    schema = table.schema
    assert schema.field("trial_id").type == pa.string() and schema.field("cell").type == pa.string()
    assert schema.field("size").type == pa.int64() and schema.field("rate").type == pa.float64()
    assert schema.field("lr").type == pa.float64() and schema.field("epochs").type == pa.int64()
    for metric in ("train_loss", "test_loss"):
        assert schema.field(f"final_{metric}").type == pa.float64()
        assert schema.field(f"best_{metric}").type == pa.float64()
    trials = table.to_pandas()
    assert trials.trial_id.is_unique
    assert set(trials.status) <= {"completed", "pruned"} and (trials.status == "completed").any()
    assert (trials[trials.status == "completed"].epochs == 6).all()
    assert (trials[trials.status == "pruned"].epochs < 6).all()
    assert trials.groupby("cell").size().eq(3).all()
    assert sum(outcome.counts.values()) == 12


def test_metrics_hold_each_trial_epoch_seed_once(sweep) -> None:
    _, outcome, _ = sweep
    metrics, trials = load_metrics(outcome.results_dir), load_trials(outcome.results_dir)
    assert not metrics.duplicated(["trial_id", "epoch", "seed"]).any()
    assert set(metrics.trial_id) == set(trials.trial_id)
    rows_per_trial = metrics.groupby("trial_id").size()
    expected = trials.set_index("trial_id").epochs * 2  # 2 seeds per epoch
    assert (rows_per_trial.sort_index() == expected.sort_index()).all()
    assert set(metrics.seed) == {0, 1}


def test_each_cell_study_holds_its_own_trials_only(sweep) -> None:
    plan, outcome, _ = sweep
    storage = JournalStorage(
        JournalFileBackend(str(outcome.results_dir / "studies" / "journal.log"))
    )
    trials = load_trials(outcome.results_dir).set_index("trial_id")
    studies = storage.get_all_studies()
    assert sorted(s.study_name for s in studies) == sorted(c.key for c in plan.cells)
    for study in studies:
        told = storage.get_all_trials(study._study_id)
        ids = [t.user_attrs["trial_id"] for t in told]
        assert len(ids) == 3 and len(set(ids)) == 3
        assert (trials.loc[ids].cell == study.study_name).all()
        for t in told:
            row = trials.loc[t.user_attrs["trial_id"]]
            assert t.params["lr"] == pytest.approx(row.lr)
            assert t.state.name == {"completed": "COMPLETE", "pruned": "PRUNED"}[row.status]


def test_mlflow_has_a_parent_run_and_one_nested_run_per_trial(sweep) -> None:
    plan, outcome, uri = sweep
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 12
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    trials = load_trials(outcome.results_dir).set_index("trial_id")
    for run in children:
        tags = run.data.tags
        row = trials.loc[tags["trial_id"]]
        assert tags["cell"] == row.cell and tags["status"] == row.status
        assert float(run.data.params["lr"]) == pytest.approx(row.lr)
        history = client.get_metric_history(run.info.run_id, "test_loss")
        assert [m.step for m in history] == list(range(1, row.epochs + 1))
        assert history[-1].value == pytest.approx(row.final_test_loss)
        assert "test_loss/seed_1" in run.data.metrics


def test_status_reads_the_finished_sweep(sweep) -> None:
    from orchestrator.answers.status import sweep_status

    _, outcome, _ = sweep
    report = sweep_status(outcome.results_dir)
    assert report["done"] == report["total"] == 12
    assert report["driver"] == "stopped" and report["running"] == 0
    assert all(c["completed"] + c["pruned"] == 3 for c in report["cells"].values())
