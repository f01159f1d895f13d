"""Nothing lost: a killed driver resumes, failing and diverging trials are recorded, one driver at a time.

Drivers here are real `scalesweep` processes in their own process group, killed with SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pandas as pd
import pytest
from helpers import recorded_rows, scalesweep, start_run, wait_until, write_spec
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

N_TRIALS = 16
SPEC = {
    "name": "faults",
    "trainable": "synthetic",
    "fixed": {"epochs": 8, "sleep_s": 0.4},
    "axes": {"size": [1, 4], "rate": [0.2, 0.6]},
    "search": {"samples_per_cell": 4, "space": {"lr": {"loguniform": [1e-4, 1e-1]}}},
    "seeds": 2,
    "scheduler": {"asha": {"grace_period": 3}},
    "checkpoint_every_s": 0,
    "storage": {"results": "results", "tracking_uri": None},
}


def _assert_complete_exactly_once(root: Path, n_trials: int = N_TRIALS) -> None:
    trials = pd.read_parquet(root / "trials.parquet")
    assert len(trials) == n_trials and trials.trial_id.is_unique
    assert set(trials.status) <= {"completed", "pruned"}
    metrics = pd.read_parquet(root / "metrics")
    assert not metrics.duplicated(["trial_id", "epoch", "seed"]).any()
    assert set(metrics.trial_id) == set(trials.trial_id)
    per_trial = metrics.groupby("trial_id").epoch.agg(["min", "max", "count"])
    epochs = trials.set_index("trial_id").epochs.loc[per_trial.index]
    assert (per_trial["min"] == 1).all() and (per_trial["max"] == epochs).all()
    assert (per_trial["count"] == 2 * epochs).all(), "every epoch of every trial, both seeds, once"
    storage = JournalStorage(JournalFileBackend(str(root / "studies" / "journal.log")))
    told = [t for s in storage.get_all_studies() for t in storage.get_all_trials(s._study_id)]
    finished = [t.user_attrs["trial_id"] for t in told if t.state.name in ("COMPLETE", "PRUNED")]
    assert sorted(finished) == sorted(trials.trial_id), "each trial told to its study once"
    assert not [t for t in told if t.state.name == "RUNNING"]


@pytest.mark.parametrize("kill_at", ["early", "mid-sweep", "during-parquet-write"])
def test_killed_driver_resumes_without_loss_or_duplicates(tmp_path: Path, kill_at: str) -> None:
    # the last case packs two members per Tune trial: a pack killed between its members' commits
    packed = {"resources": {"members_per_trial": 2}} if kill_at == "during-parquet-write" else {}
    spec = write_spec(tmp_path / "spec.yaml", {**SPEC, **packed})
    root = tmp_path / "results" / "faults"
    env = (
        {"SCALESWEEP_KILL_AT": "after-metrics-write"} if kill_at == "during-parquet-write" else None
    )
    driver = start_run(spec, tmp_path, env=env)
    if kill_at == "early":
        wait_until(lambda: (root / "tune").exists())
    elif kill_at == "mid-sweep":
        wait_until(lambda: recorded_rows(root) >= 3)
        second = scalesweep(
            "resume", str(root), cwd=tmp_path, timeout=120
        )  # the lock refuses a second driver
        assert second.returncode == 2 and "another driver is running this sweep" in second.stderr
        assert second.stderr.count("\n") == 1
        status = json.loads(
            scalesweep("status", str(root), "--json", cwd=tmp_path, timeout=120).stdout
        )
        assert (
            status["driver"] == "running"
            and status["running"] >= 1
            and 3 <= status["done"] < N_TRIALS
        )
    if kill_at != "during-parquet-write":
        os.killpg(driver.pid, signal.SIGKILL)
    driver.wait(timeout=180)
    assert driver.returncode == -signal.SIGKILL
    assert recorded_rows(root) < N_TRIALS
    resumed = scalesweep("resume", str(root), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _assert_complete_exactly_once(root)


def test_resume_refuses_a_spec_whose_cells_changed(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path / "spec.yaml",
        {**SPEC, "fixed": {"epochs": 2}, "search": {"samples_per_cell": 1}, "scheduler": {}},
    )
    assert scalesweep("run", str(spec), cwd=tmp_path).returncode == 0
    root = tmp_path / "results" / "faults"
    text = (root / "spec.yaml").read_text().replace("- 0.6", "- 0.9")
    (root / "spec.yaml").write_text(text)
    proc = scalesweep("resume", str(root), cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert (
        "spec.yaml: axes changed since the sweep started (cells added: 2, removed: 2)"
        in proc.stderr
    )


def test_failing_and_diverging_trials_are_recorded_and_the_rest_complete(tmp_path: Path) -> None:
    spec = {
        **SPEC,
        "fixed": {"epochs": 5},
        "axes": {"size": [1], "fail_epoch": [0, 3], "diverge": [False, True]},
        "search": {"samples_per_cell": 1},
        "max_failures": 1,
        "scheduler": {},
    }
    proc = scalesweep("run", str(write_spec(tmp_path / "spec.yaml", spec)), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    trials = pd.read_parquet(tmp_path / "results" / "faults" / "trials.parquet").set_index("cell")
    assert trials.loc["size=1,fail_epoch=0,diverge=false"].status == "completed"
    assert trials.loc["size=1,fail_epoch=0,diverge=true"].status == "diverged"
    for cell in ("size=1,fail_epoch=3,diverge=false", "size=1,fail_epoch=3,diverge=true"):
        row = trials.loc[cell]
        assert row.status in ("errored", "diverged")
    failed = trials.loc["size=1,fail_epoch=3,diverge=false"]
    assert failed.status == "errored"
    assert "RuntimeError: synthetic failure at epoch 3" in failed.error
