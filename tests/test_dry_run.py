"""``scalesweep run SPEC --dry-run``: exact trial counts and a measured cost estimate for a built-in, a
``module:function`` and a command trainable, with nothing written and Ray never imported; the estimate
scales with the epochs; a bad spec, or a trainable failing its calibration, is one line and exit 2."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import write_spec

TRAIN = textwrap.dedent("""
    import time

    def train(config, report):
        for epoch in range(1, config["epochs"] + 1):
            time.sleep(0.002 * config["n"])
            report({"epoch": epoch, "test_loss": 1 / (epoch * config["n"])})
""")
COMMAND = textwrap.dedent("""
    import json, os
    from toy import train

    print("a line that is not a report goes to the trial's log")
    train(json.loads(os.environ["SCALESWEEP_CONFIG"]), lambda m: print(json.dumps(m), flush=True))
""")
# Runs the CLI as `python -m orchestrator` does, then checks that the dry run never imported Ray.
DRIVER = "import sys; from orchestrator.cli import main; rc = main(); assert 'ray' not in sys.modules; sys.exit(rc)"

SYNTHETIC = {
    "name": "synthetic-dry",
    "trainable": "synthetic",
    "fixed": {"epochs": 3, "sleep_s": 0.01},
    "axes": {"lr": [1e-3, 1e-4], "size": [1, 2, 4]},
    "search": {"samples_per_cell": 3, "space": {"rate": {"uniform": [0.1, 1.0]}}},
    "seeds": 2,
    "resources": {"members_per_trial": 2},
    "scheduler": {"asha": {"grace_period": 1}},
}
ADAPTIVE = {  # tests/test_adaptive_sweep.py's spec: 2 groups × at most 6 probes of 15 sizes
    "name": "adaptive-dry",
    "trainable": "synthetic",
    "fixed": {"epochs": 2, "rate": 3.0, "noise": 0.0},
    "axes": {"lr": [1e-3, 1e-4], "size": {"adaptive": {"low": 1, "high": 16384}}},
    "search": {"algorithm": "grid-only"},
    "curves": [{"kind": "sample_complexity", "x": "size", "y": "test_loss", "threshold": 0.05}],
}
OWN = {
    "fixed": {"epochs": 5},
    "axes": {"n": [1, 2, 4, 8]},
    "search": {"samples_per_cell": 3, "space": {"lr": {"loguniform": [0.01, 1.0]}}},
    "seeds": 2,
    "metric": {"name": "test_loss"},
}


def _dry_run(spec: dict, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    path = write_spec(cwd / "spec.yaml", spec)
    return subprocess.run(
        [sys.executable, "-c", DRIVER, "run", str(path), "--dry-run", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _hours(ran: subprocess.CompletedProcess) -> float:
    """The estimate line's CPU-hours, after checking the output is the dry run's three lines."""
    assert ran.returncode == 0, ran.stderr[-3000:]
    lines = ran.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["dry run", "calibrated", "estimate"], lines
    found = re.fullmatch(r"estimate: ≤ (\S+) CPU-hours \(≤ .+ CPUs\), .+", lines[2])
    assert found, lines[2]
    return float(found[1])


def _assert_nothing_written(cwd: Path) -> None:
    assert sorted(p.name for p in cwd.iterdir()) == sorted(["spec.yaml", "toy.py", "cmd.py"])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A researcher's directory: a function trainable and a program wrapping it, found beside the spec."""
    (tmp_path / "toy.py").write_text(TRAIN)
    (tmp_path / "cmd.py").write_text(COMMAND)
    return tmp_path


@pytest.mark.parametrize(
    ("spec", "counts", "calibrated"),
    [
        (
            SYNTHETIC,
            "dry run: 6 cells × 3 samples = 18 trials (12 Tune trials, packs of 2), 2 seeds each",
            ["lr=0.001,size=1", "lr=0.001,size=4"],  # of equal work, the first
        ),
        (
            ADAPTIVE,
            "dry run: ≤ 12 of 30 cells × 1 samples = ≤ 12 trials (≤ 12 Tune trials, packs of 1), "
            "1 seeds each",
            ["lr=0.001,size=1", "lr=0.001,size=16384"],
        ),
        (
            {"name": "function-dry", "trainable": "toy:train", **OWN},
            "dry run: 4 cells × 3 samples = 12 trials (12 Tune trials, packs of 1), 2 seeds each",
            ["n=1", "n=8"],
        ),
        (
            {"name": "command-dry", "trainable": {"command": f"{sys.executable} cmd.py"}, **OWN},
            "dry run: 4 cells × 3 samples = 12 trials (12 Tune trials, packs of 1), 2 seeds each",
            ["n=1", "n=8"],
        ),
    ],
    ids=["synthetic", "adaptive", "function", "command"],
)
def test_dry_run_counts_calibrates_and_writes_nothing(
    project: Path, spec: dict, counts: str, calibrated: list[str]
) -> None:
    ran = _dry_run(spec, project)
    assert _hours(ran) > 0
    assert ran.stdout.startswith(counts), ran.stdout
    shown = re.findall(r"(?:calibrated: |; )(\S+): [0-9.e-]+ s/epoch", ran.stdout)
    assert shown == calibrated, ran.stdout
    _assert_nothing_written(project)  # no results root, no mlflow.db


def test_ten_times_the_epochs_costs_about_ten_times_more(project: Path) -> None:
    spec = {**SYNTHETIC, "scheduler": {}}
    short = _hours(_dry_run(spec, project, "--set", "fixed.epochs=3"))
    long = _hours(_dry_run(spec, project, "--set", "fixed.epochs=30"))
    assert 5 < long / short < 20, (short, long)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fixed": {"epochs": 3, "bogus": 1}}, "fixed.bogus"),
        ({"fixed": {"epochs": 3, "fail_epoch": 1}}, "the trainable failed: synthetic failure"),
    ],
    ids=["bad-key", "trainable-fails"],
)
def test_a_bad_spec_is_one_line_and_exit_2(project: Path, change: dict, message: str) -> None:
    ran = _dry_run({**SYNTHETIC, **change}, project)
    assert ran.returncode == 2 and ran.stdout == ""
    assert len(ran.stderr.splitlines()) == 1 and message in ran.stderr, ran.stderr
    _assert_nothing_written(project)
