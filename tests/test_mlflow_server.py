"""MLflow that never blocks a sweep, and the backfill from Parquet, against a real ``mlflow server``.

Every server here is a real ``python -m mlflow server`` on 127.0.0.1 with a sqlite backend in a
temporary directory, started and stopped (or SIGKILLed) by the test; sweeps run on the session's
real local Ray with the ``synthetic`` trainable; the CLI runs as a user runs it.
"""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time
import uuid
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from helpers import scalesweep as cli
from helpers import write_spec
from mlflow_server import Server
from test_k8s import free_port

import scalesweep
from orchestrator.answers.curves import sample_complexity
from orchestrator.spec.plan import plan_sweep, sweep_key
from orchestrator.spec.schema import SpecError, load_spec, parse_spec
from orchestrator.store.mlflow_source import load_from_mlflow
from orchestrator.store.mlflow_sync import sync_mlflow
from orchestrator.store.results import STATUSES, load_metrics, load_trials
from orchestrator.store.tracking import Tracker
from orchestrator.tune.run import run_sweep

SPEC = {
    "trainable": "synthetic",
    "fixed": {"epochs": 8},
    "axes": {"size": [1, 2, 4, 8], "rate": [0.3, 0.6]},
    "search": {"samples_per_cell": 2, "space": {"lr": {"loguniform": [1e-4, 1e-1]}}},
    "seeds": 2,
    "metric": {"name": "test_loss"},
    "scheduler": {"asha": {"grace_period": 3, "reduction_factor": 2}},
    "checkpoint_every_s": 0,
    "curves": [
        {
            "kind": "sample_complexity",
            "x": "size",
            "y": "test_loss",
            "by": ["rate"],
            "threshold": 0.3,
            "chance": 1.0,
        },
        {"kind": "scaling_law", "x": "size", "y": "test_loss", "by": ["rate"]},
    ],
}
KEYS_PER_EPOCH = 2 * (1 + 2)  # (train_loss, test_loss) × (seed mean + 2 seeds)
TIMES = ["seconds", "ended_at"]  # MLflow has the runs' times, Parquet the trials' own


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("mlflow-server")).start()
    try:
        yield srv
    finally:
        srv.kill(signal.SIGTERM)


def sweep(root: Path, name: str, uri: str | None, **fixed) -> tuple[Path, str | None]:
    """Run SPEC as ``name`` in-process on the session's Ray; (results dir, the tracker's error)."""
    spec = {**SPEC, "name": name, "fixed": {**SPEC["fixed"], **fixed}}
    outcome = run_sweep(plan_sweep(parse_spec(spec)), results_root=str(root), tracking_uri=uri)
    assert sum(outcome.counts.values()) == 16
    return outcome.results_dir, outcome.tracking_error


def mlflow_state(uri: str, name: str, results: Path) -> dict[str, dict]:
    """Per trial run of the sweep in ``results``: its status tag, params and every metric history."""
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    parents = client.search_runs(
        [experiment.experiment_id], f"tags.`scalesweep.sweep_dir` = '{results.resolve()}'"
    )
    assert len(parents) == 1
    runs = client.search_runs(
        [experiment.experiment_id],
        f"tags.`mlflow.parentRunId` = '{parents[0].info.run_id}'",
        max_results=1000,
    )
    return {
        r.data.tags["trial_id"]: {
            "status": r.data.tags["status"],
            "run_status": r.info.status,
            "params": r.data.params,
            "history": {
                k: sorted((m.step, m.value) for m in client.get_metric_history(r.info.run_id, k))
                for k in r.data.metrics
            },
        }
        for r in runs
    }


def assert_mlflow_matches_parquet(state: dict[str, dict], results: Path) -> None:
    """One run per trial, its final status, and each metric step exactly once with Parquet's value."""
    trials, metrics = load_trials(results), load_metrics(results)
    assert sorted(state) == sorted(trials.trial_id)
    for row in trials.itertuples():
        run = state[row.trial_id]
        assert run["status"] == row.status and run["run_status"] != "RUNNING"
        assert run["params"]["size"] == str(row.size) and float(run["params"]["lr"]) == row.lr
        for key, points in run["history"].items():
            steps = [s for s, _ in points]
            assert steps == list(range(1, row.epochs + 1)), (row.trial_id, key, steps)
        assert len(run["history"]) == KEYS_PER_EPOCH
        mine = metrics[metrics.trial_id == row.trial_id]
        for seed in (0, 1):
            expected = mine[mine.seed == seed].sort_values("epoch").test_loss.tolist()
            assert [v for _, v in run["history"][f"test_loss/seed_{seed}"]] == expected


def history_size(state: dict[str, dict]) -> int:
    return sum(len(points) for run in state.values() for points in run["history"].values())


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, ray_session, server):
    """A sweep tracked live by the server: the reference for the reading side."""
    results, error = sweep(tmp_path_factory.mktemp("tracked"), "tracked", server.uri)
    assert error is None
    return results


def test_unreachable_at_start_sweep_completes_and_sync_backfills_idempotently(
    tmp_path, ray_session, server, capsys
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    results, error = sweep(tmp_path, "unreachable", dead)
    err = capsys.readouterr().err
    assert (
        error is not None and err.count("warning: MLflow tracking at") == 1 and dead in err
    )  # warned once
    trials = load_trials(results)
    assert (
        len(trials) == 16 and len(load_metrics(results)) == trials.epochs.sum() * 2
    )  # every epoch × seed

    proc = cli("sync-mlflow", str(results), "--tracking-uri", server.uri, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "16 runs created, 16 completed" in proc.stdout
    state = mlflow_state(server.uri, "unreachable", results)
    assert_mlflow_matches_parquet(state, results)

    again = sync_mlflow(results, server.uri)
    assert (
        again.runs_created,
        again.runs_completed,
        again.metrics_logged,
        again.artifacts_logged,
    ) == (0, 0, 0, 0)
    assert mlflow_state(server.uri, "unreachable", results) == state


def test_server_killed_mid_sweep_then_restarted_sync_fills_the_gaps(
    tmp_path, ray_session, server, capsys
) -> None:
    finished_at_kill: list[int] = []

    def kill_once_some_trials_are_recorded() -> None:
        client = mlflow.MlflowClient(server.uri)
        while (experiment := client.get_experiment_by_name("killed")) is None:
            time.sleep(0.3)
        while True:
            runs = client.search_runs([experiment.experiment_id], max_results=1000)
            # done as sync sees it: the final status tag and the run terminated (the kill may fall between)
            done = [
                r
                for r in runs
                if r.data.tags.get("status") in STATUSES and r.info.status != "RUNNING"
            ]
            if len(done) >= 2:
                finished_at_kill.append(len(done))
                server.kill()
                return
            time.sleep(0.3)

    killer = threading.Thread(target=kill_once_some_trials_are_recorded, daemon=True)
    killer.start()
    try:
        results, error = sweep(tmp_path, "killed", server.uri, sleep_s=0.25)
        killer.join(timeout=10)
        assert finished_at_kill and finished_at_kill[0] < 16 and error is not None  # died mid-sweep
        assert capsys.readouterr().err.count("warning: MLflow tracking at") == 1
        assert len(load_trials(results)) == 16  # the sweep completed regardless

        server.start()  # the same sqlite store and port
        report = sync_mlflow(results, server.uri)
        assert 0 < report.runs_completed <= 16 - finished_at_kill[0] and report.metrics_logged > 0
        state = mlflow_state(server.uri, "killed", results)
        assert_mlflow_matches_parquet(state, results)
        assert (
            len({tuple(sorted(r["params"])) for r in state.values()}) == 1
        )  # live and backfilled runs agree

        again = sync_mlflow(results, server.uri)
        assert (again.runs_created, again.runs_completed, again.metrics_logged) == (0, 0, 0)
        assert history_size(mlflow_state(server.uri, "killed", results)) == history_size(state)
    finally:
        if server.proc.poll() is not None:  # the other tests share this server
            server.start()


def test_a_run_cut_off_mid_trial_gets_only_its_missing_steps(tmp_path, tracked, server) -> None:
    # the same Parquet as another sweep (a new id): one MLflow has not seen
    results = tmp_path / "copy"
    shutil.copytree(tracked, results, ignore=shutil.ignore_patterns("tune", ".driver.lock"))
    record = json.loads((results / "sweep.json").read_text())
    (results / "sweep.json").write_text(json.dumps({**record, "id": uuid.uuid4().hex}))
    trials, metrics = load_trials(results), load_metrics(results)
    cut = trials[trials.status == "completed"].iloc[0]
    spec = load_spec(results / "spec.yaml")
    tracker = Tracker(server.uri, spec, results, sweep_key(results, spec))  # died after epoch 4
    tracker.start_sweep(results / "spec.yaml", {})
    tracker.trial_started(
        cut.trial_id, cut.cell, {"size": int(cut["size"]), "rate": cut.rate, "lr": cut.lr}
    )
    for epoch in range(1, 5):
        rows = metrics[(metrics.trial_id == cut.trial_id) & (metrics.epoch == epoch)].sort_values(
            "seed"
        )
        tracker.trial_epoch(
            cut.trial_id,
            epoch,
            {
                "test_loss": rows.test_loss.mean(),
                **{f"test_loss/seed_{s}": v for s, v in zip(rows.seed, rows.test_loss)},
            },
        )
    tracker.close()
    assert tracker.failed is None

    report = sync_mlflow(results, server.uri)
    assert report.runs_created == 15 and report.runs_completed == 16
    state = mlflow_state(server.uri, "tracked", results)
    assert_mlflow_matches_parquet(state, results)  # steps 1-4 of the cut run were not logged twice
    assert sync_mlflow(results, server.uri).metrics_logged == 0


def test_curves_from_mlflow_equal_curves_from_parquet(tmp_path, tracked, server) -> None:
    plan = plan_sweep(load_spec(tracked / "spec.yaml"))
    trials, metrics = load_from_mlflow(plan, tracked, server.uri)
    by = ["trial_id", "epoch", "seed"]
    pd.testing.assert_frame_equal(
        trials.drop(columns=TIMES).sort_values("trial_id").reset_index(drop=True),
        load_trials(tracked).drop(columns=TIMES).sort_values("trial_id").reset_index(drop=True),
    )
    pd.testing.assert_frame_equal(
        metrics.sort_values(by).reset_index(drop=True),
        load_metrics(tracked).sort_values(by).reset_index(drop=True),
    )

    proc = cli("curves", str(tracked), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # a slope needs two n* the grid brackets; censored ones alone give none, from either source
    kinds = ("sample_complexity", "scaling_law", "scaling_slope")
    tables = [t for t in kinds if (tracked / "curves" / f"{t}.parquet").exists()]
    assert {"sample_complexity", "scaling_law"} <= set(tables)
    from_parquet = {t: pd.read_parquet(tracked / "curves" / f"{t}.parquet") for t in tables}
    proc = cli("curves", str(tracked), "--from-mlflow", server.uri, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert tables == [t for t in kinds if (tracked / "curves" / f"{t}.parquet").exists()]
    for t in tables:
        ours, theirs = (
            df.sort_values(list(df.columns[:2])).reset_index(drop=True)
            for df in (pd.read_parquet(tracked / "curves" / f"{t}.parquet"), from_parquet[t])
        )
        pd.testing.assert_frame_equal(ours, theirs)


def test_python_api_loads_trials_and_fits_as_the_cli(tracked) -> None:
    df = scalesweep.load(tracked)
    pd.testing.assert_frame_equal(df, load_trials(tracked))
    assert {"cell", "size", "rate", "lr", "status", "final_test_loss"} <= set(df.columns)
    written = pd.read_parquet(tracked / "curves" / "sample_complexity.parquet").drop(
        columns="curve"
    )
    table = scalesweep.curves.sample_complexity(
        df, "size", "test_loss", ["rate"], 0.3, n_boot=500, chance=1.0
    )
    pd.testing.assert_frame_equal(table, written)  # the notebook gets the CLI's numbers
    points = scalesweep.load_points(tracked)
    assert scalesweep.curves.scaling_law(points, "size", "test_loss", ["rate"]).equals(
        scalesweep.curves.scaling_law(tracked, "size", "test_loss", ["rate"])
    )
    fast = df[df.rate == 0.6]  # a filtered frame keeps its directory: points of its trials only
    pd.testing.assert_frame_equal(
        scalesweep.load_points(fast), points[points.rate == 0.6].reset_index(drop=True)
    )
    assert len(scalesweep.curves.scaling_law(fast, "size", "test_loss", [])) == 1
    with pytest.raises(ValueError, match="scalesweep.load"):
        scalesweep.load_points(pd.DataFrame({"trial_id": ["x"]}))


def test_chance_fixes_the_sigmoid_level_in_written_curves(tracked) -> None:
    written = pd.read_parquet(tracked / "curves" / "sample_complexity.parquet").drop(
        columns="curve"
    )
    points = scalesweep.load_points(tracked)
    fixed = sample_complexity(points, "size", "test_loss", ["rate"], 0.3, n_boot=500, chance=1.0)
    free = sample_complexity(points, "size", "test_loss", ["rate"], 0.3, n_boot=500)
    pd.testing.assert_frame_equal(written, fixed)
    assert not fixed.n_star_smooth.equals(free.n_star_smooth)
    with pytest.raises(SpecError, match="curves.0: chance: only sample_complexity"):
        parse_spec(
            SPEC
            | {
                "name": "x",
                "curves": [{"kind": "scaling_law", "x": "size", "y": "test_loss", "chance": 0.5}],
            }
        )


def test_sync_bad_input_is_one_line_and_exit_2(tmp_path) -> None:
    proc = cli("sync-mlflow", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no sweep here" in proc.stderr
    root = tmp_path / "off"
    root.mkdir()
    write_spec(root / "spec.yaml", SPEC | {"name": "off", "storage": {"tracking_uri": None}})
    proc = cli("sync-mlflow", str(root), cwd=tmp_path)
    assert (
        proc.returncode == 2
        and proc.stderr.count("\n") == 1
        and "pass --tracking-uri" in proc.stderr
    )
