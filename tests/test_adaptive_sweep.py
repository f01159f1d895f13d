"""An adaptive data axis end to end: the search finds the full grid's n* per group with few probes, flags
a non-monotone group, survives a killed driver without running a probe twice, and says in `validate`
what it saves.

The `synthetic` trainable's loss at lr and size is known: floor = (log10 lr + 2.5)² / (1 + size), plus
exp(-rate·epoch) of what is left. With rate 3 and 2 epochs, test_loss ≤ 0.05 from size 8 at lr 1e-3 and
from size 64 at lr 1e-4 on the powers of two.
"""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path

import pandas as pd
import pytest
from helpers import recorded_rows, scalesweep, start_run, wait_until, write_spec

from orchestrator.cli import main
from orchestrator.spec.adaptive import max_probes

GRID = [2**i for i in range(15)]  # 1 .. 16384
SPEC = {
    "name": "adaptive",
    "trainable": "synthetic",
    "fixed": {"epochs": 2, "rate": 3.0, "noise": 0.0},
    "axes": {"lr": [1e-3, 1e-4], "size": {"adaptive": {"low": 1, "high": 16384}}},
    "search": {"algorithm": "grid-only"},
    "report_every_s": 0,
    "curves": [{"kind": "sample_complexity", "x": "size", "y": "test_loss", "threshold": 0.05}],
    "storage": {"results": "results", "tracking_uri": None},
}
EXPECTED = {1e-3: 8, 1e-4: 64}


def _n_star(root: Path) -> dict[float, float]:
    table = pd.read_parquet(root / "curves" / "sample_complexity.parquet")
    return dict(zip(table.lr, table.n_star))


def test_validate_says_how_many_cells_the_search_takes_at_most(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(write_spec(tmp_path / "s.yaml", SPEC))]) == 0
    out = capsys.readouterr().out
    assert (
        "adaptive size: at most 12 of the grid's 30 cells (2 groups × ≤6 probes of 15 values)"
        in out
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"curves": []},
            "axes.size: an adaptive axis is searched for n*; expected exactly one curve",
        ),
        (
            {
                "axes": {
                    "lr": {"adaptive": {"low": 1, "high": 4}},
                    "size": {"adaptive": {"low": 1, "high": 4}},
                }
            },
            "expected one adaptive axis at most",
        ),
        (
            {"axes": {"size": {"adaptive": {"low": 8, "high": 4}}}},
            "axes.size.adaptive: high must be >= low",
        ),
        (
            {"axes": {"size": {"adaptive": {"low": 1, "high": 4, "ratio": 1}}}},
            "axes.size.adaptive.ratio",
        ),
    ],
)
def test_a_bad_adaptive_axis_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict, expected: str
) -> None:
    assert main(["validate", str(write_spec(tmp_path / "s.yaml", {**SPEC, **change}))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err


def test_the_search_finds_the_full_grids_n_star_with_few_probes(tmp_path: Path) -> None:
    adaptive = scalesweep("run", str(write_spec(tmp_path / "a.yaml", SPEC)), cwd=tmp_path)
    assert adaptive.returncode == 0, adaptive.stderr[-3000:]
    grid = {**SPEC, "name": "grid", "axes": {"lr": [1e-3, 1e-4], "size": GRID}}
    full = scalesweep("run", str(write_spec(tmp_path / "g.yaml", grid)), cwd=tmp_path)
    assert full.returncode == 0, full.stderr[-3000:]
    root = tmp_path / "results" / "adaptive"
    assert _n_star(root) == _n_star(tmp_path / "results" / "grid") == EXPECTED
    trials = pd.read_parquet(root / "trials.parquet")
    per_group = trials.groupby("lr").size()
    assert (per_group <= max_probes(len(GRID))).all() and max_probes(len(GRID)) == 2 + math.ceil(
        math.log2(15)
    )
    assert trials.cell.is_unique, "each probe once"
    curve = pd.read_parquet(root / "curves" / "sample_complexity.parquet")
    assert dict(zip(curve.lr, curve.fails_at)) == {1e-3: 4, 1e-4: 32}, "the bracket beside n*"
    search = pd.read_parquet(root / "curves" / "adaptive_search.parquet")
    assert set(zip(search.n_star, search.fails_at)) == {(8, 4), (64, 32)}
    (slope,) = pd.read_parquet(root / "curves" / "scaling_slope.parquet").itertuples()
    assert slope.axis == "lr" and slope.n_points == 2 and -1.2 < slope.slope < -0.6, (
        "n* vs lr from the searched n*: 8 at 1e-3, 64 at 1e-4, a slope of about log 8 / log 0.1"
    )
    status = scalesweep("status", str(root), cwd=tmp_path).stdout
    assert "lr=0.001: [4, 8] n* = 8 after" in status and "lr=0.0001: [32, 64] n* = 64" in status


NON_MONOTONE = """
import time

LOSS = {1: 0.9, 2: 0.9, 4: 0.01, 8: 0.01, 16: 0.9, 32: 0.01, 64: 0.01, 128: 0.01}


def train(config, report):
    time.sleep(1.0)  # both workers busy: the two ends run together, then two probes between them
    report({"epoch": 1, "test_loss": LOSS[config["size"]]})
"""


def test_a_non_monotone_group_is_flagged(tmp_path: Path) -> None:
    """With two workers and one group, the search probes in pairs (k-ary): 1 and 128, then 16 and 4,
    and 4 succeeding below the failing 16 is a contradiction the results must show."""
    (tmp_path / "bumpy.py").write_text(NON_MONOTONE)
    spec = {
        **SPEC,
        "name": "bumpy",
        "trainable": "bumpy:train",
        "fixed": {},
        "axes": {"size": {"adaptive": {"low": 1, "high": 128}}},
    }
    proc = scalesweep("run", str(write_spec(tmp_path / "b.yaml", spec)), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    root = tmp_path / "results" / "bumpy"
    (row,) = pd.read_parquet(root / "curves" / "adaptive_search.parquet").to_dict("records")
    assert row["n_star"] == 32 and row["fails_at"] == 16, row
    assert "4" in row["non_monotone"] and "16" in row["non_monotone"], row
    assert "| (all) | [16, 32] | 32 |" in (root / "curves" / "summary.md").read_text()


def test_a_killed_driver_resumes_the_search_without_running_a_probe_twice(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "s.yaml", {**SPEC, "fixed": {**SPEC["fixed"], "sleep_s": 0.25}})
    root = tmp_path / "results" / "adaptive"
    driver = start_run(spec, tmp_path)
    wait_until(lambda: recorded_rows(root) >= 4)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.communicate(timeout=60)
    before = set(pd.read_parquet(root / "trials.parquet").cell)
    resumed = scalesweep("resume", str(root), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    trials = pd.read_parquet(root / "trials.parquet")
    assert trials.cell.is_unique and before <= set(trials.cell), "no probe ran twice"
    assert (trials.groupby("lr").size() <= max_probes(len(GRID))).all()
    assert _n_star(root) == EXPECTED
