"""A results directory travels: a copy (every file's mtime reset, as a copy or an archive does) reports
the wall time and status its original does, reads its curves back from MLflow and syncs into the runs
its original wrote, found by the sweep's id; the sweep's parent run carries its answers, so MLflow's
own search finds a sweep by what it found.

One real sweep of the ``synthetic`` trainable (16 trials of 2 epochs) with MLflow on a sqlite file;
with rate 3 and no noise, n* is 8 at lr 1e-3 and 64 at lr 1e-4 (see test_adaptive_sweep.py).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from helpers import write_spec
from mlflow.entities import Run

from orchestrator.cli import main

SPEC = {
    "name": "moved",
    "trainable": "synthetic",
    "fixed": {"epochs": 2, "rate": 3.0, "noise": 0.0},
    "axes": {"lr": [1e-3, 1e-4], "size": [1, 2, 4, 8, 16, 32, 64, 128]},
    "search": {"algorithm": "grid-only"},
    "report_every_s": 0,
    "curves": [
        {
            "kind": "sample_complexity",
            "x": "size",
            "y": "test_loss",
            "by": ["lr"],
            "threshold": 0.05,
        }
    ],
}


@pytest.fixture(scope="module")
def moved(tmp_path_factory: pytest.TempPathFactory, ray_session) -> tuple[Path, Path, str]:
    """(the sweep's results, a copy of them elsewhere with every mtime an hour later, the MLflow URI)."""
    tmp = tmp_path_factory.mktemp("relocatable")
    uri = f"sqlite:///{tmp}/mlflow.db"
    spec = write_spec(tmp / "moved.yaml", SPEC)
    assert main(["run", str(spec), "--results", str(tmp / "results"), "--tracking-uri", uri]) == 0
    original, copy = tmp / "results" / "moved", tmp / "elsewhere" / "moved"
    shutil.copytree(original, copy)
    later = time.time() + 3600
    for path in [copy, *copy.rglob("*")]:
        os.utime(path, (later, later))
    return original, copy, uri


def _out(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def _runs(uri: str) -> list[Run]:
    client = mlflow.MlflowClient(uri)
    return client.search_runs([client.get_experiment_by_name("moved").experiment_id])


def _parents(runs: list[Run]) -> list[Run]:
    return [r for r in runs if r.data.tags.get("scalesweep.kind") == "sweep"]


def test_a_copy_reports_the_same_wall_and_status(moved, capsys) -> None:
    original, copy, _ = moved
    walls = []
    for root in (original, copy):
        _out(capsys, "report", str(root))
        walls.append(re.search(r"- wall: ([\d,]+) s", (root / "report.md").read_text())[1])
    assert walls[0] == walls[1] and int(walls[0].replace(",", "")) > 0, walls
    assert _out(capsys, "status", str(original), "--json") == _out(
        capsys, "status", str(copy), "--json"
    )


def test_curves_from_mlflow_work_on_the_copy(moved, capsys) -> None:
    original, copy, uri = moved
    _out(capsys, "curves", str(copy), "--from-mlflow", uri)
    n_star = [
        pd.read_parquet(root / "curves" / "sample_complexity.parquet").set_index("lr").n_star
        for root in (original, copy)
    ]
    assert n_star[0].to_dict() == n_star[1].to_dict() == {1e-3: 8, 1e-4: 64}


def test_a_sync_from_the_copy_adds_no_run(moved, capsys) -> None:
    _, copy, uri = moved
    before = _runs(uri)
    out = _out(capsys, "sync-mlflow", str(copy), "--tracking-uri", uri)
    assert "0 runs created, 0 completed, 0 metric values" in out, out
    after = _runs(uri)
    assert len(after) == len(before) == 17  # the parent and 16 trials
    assert len(_parents(after)) == 1


def test_mlflow_finds_the_sweep_by_its_answers(moved, monkeypatch) -> None:
    _, _, uri = moved
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    (run,) = mlflow.search_runs(
        experiment_names=["moved"],
        filter_string="metrics.`n_star/lr_0.001` = 8 and metrics.`n_star/lr_0.0001` > 32",
        output_format="list",
    )
    metrics, tags = run.data.metrics, run.data.tags
    assert tags["scalesweep.kind"] == "sweep" and run.info.status == "FINISHED"
    assert tags["n_star/lr_0.001"].startswith("8 [") and "n_star_slope/lr" in metrics
    assert metrics["trials/completed"] + metrics["trials/pruned"] == 16


def test_a_parent_run_found_by_its_directory_alone_is_adopted(moved, capsys) -> None:
    """A run written before parent runs carried the sweep's id: the sync finds it by the directory
    and tags it, no new run."""
    original, _, uri = moved
    client = mlflow.MlflowClient(uri)
    (parent,) = (r.info.run_id for r in _parents(_runs(uri)))
    client.delete_tag(parent, "scalesweep.sweep_id")
    _out(capsys, "sync-mlflow", str(original), "--tracking-uri", uri)
    assert len(_runs(uri)) == 17
    sweep_id = json.loads((original / "sweep.json").read_text())["id"]
    assert client.get_run(parent).data.tags["scalesweep.sweep_id"] == sweep_id


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"scalesweep {importlib.metadata.version('scalesweep')}\n"
