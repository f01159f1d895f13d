"""The public trainable contract without Ray: seeds as lockstep replicas, their checkpoints, the typed report,
bad trainables rejected at validate in one line, and an installed package's Trainable found by name."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from helpers import scalesweep, write_spec

from trainables import Report, Reporter, Row, Trainable, run_trainable, seed_mean


class Recorder(Reporter):
    """Keeps every report, saves the state at ``save_at`` and hands ``restore`` back as a restored state."""

    def __init__(self, save_at: int | None = None, restore: Any = None) -> None:
        super().__init__()
        self.reports: list[Report] = []
        self.save_at, self.restore, self.saved = save_at, restore, None

    def __call__(self, report: Report, state: Any = None) -> None:  # type: ignore[override]
        self.reports.append(report)
        if report.epoch == self.save_at:
            self.saved = state()

    def restored_state(self) -> Any:
        return self.restore


def counting(config: dict[str, Any], report: Reporter) -> None:
    """A pure-Python trainable with a checkpoint: its state is (epoch, value)."""
    epoch, value = report.restored_state() or (0, float(config["seed"]))
    while epoch < config["epochs"]:
        epoch += 1
        value = value * 0.5 + config["seed"]
        report(
            {"epoch": epoch, "loss": value, "seed_seen": config["seed"]},
            state=lambda e=epoch, v=value: (e, v),
        )


def test_seeds_run_as_replicas_whose_rows_carry_their_seed() -> None:
    recorder = Recorder()
    run_trainable(Trainable(train=counting), {"epochs": 4, "seed": 10}, 3, recorder)
    assert [r.epoch for r in recorder.reports] == [1, 2, 3, 4]
    for report in recorder.reports:
        assert [row.seed for row in report.rows] == [10, 11, 12]
        assert all(row.metrics["seed_seen"] == row.seed for row in report.rows)
    assert seed_mean(recorder.reports[0].rows, "loss") == pytest.approx((15 + 16.5 + 18) / 3)


def test_a_restore_continues_every_replica_from_one_consistent_checkpoint() -> None:
    full = Recorder(save_at=2)
    run_trainable(Trainable(train=counting), {"epochs": 5, "seed": 0}, 3, full)
    resumed = Recorder(restore=full.saved)
    run_trainable(Trainable(train=counting), {"epochs": 5, "seed": 0}, 3, resumed)
    assert resumed.reports == full.reports[2:]


def test_one_failing_seed_fails_the_trial_and_stops_the_others() -> None:
    def flaky(config: dict[str, Any], report: Reporter) -> None:
        for epoch in range(1, 100):
            if config["seed"] == 1 and epoch == 3:
                raise RuntimeError("seed 1 blew up")
            report({"epoch": epoch, "loss": 1.0})

    recorder = Recorder()
    with pytest.raises(RuntimeError, match="seed 1 blew up"):
        run_trainable(Trainable(train=flaky), {}, 3, recorder)
    assert [r.epoch for r in recorder.reports] == [1, 2]


def test_the_seed_mean_skips_diverged_rows_and_says_when_nothing_is_left() -> None:
    rows = [
        Row(0, 0, {"loss": 1.0}),
        Row(0, 1, {"loss": math.nan}, diverged=True),
        Row(0, 2, {"loss": 3.0}),
    ]
    assert seed_mean(rows, "loss") == 2.0
    assert math.isnan(seed_mean(rows[1:2], "loss"))
    assert seed_mean(rows, "accuracy") is None
    assert Report.from_wire(Report(3, rows).to_wire()).rows[2] == rows[2]


def test_declared_keys_are_typed_and_checked() -> None:
    trainable = Trainable(
        train=counting, defaults={"epochs": 10, "lr": 0.1, "seed": 0}, metrics={"loss": "min"}
    )
    assert trainable.resolved({"epochs": "3"}) == {"epochs": 3, "lr": 0.1, "seed": 0}
    with pytest.raises(ValueError, match=r"lrr: unknown key; did you mean 'lr'\?"):
        trainable.resolved({"lrr": 1})


BAD = {
    "a module that does not exist": ("nowhere.at_all:train", "no module named 'nowhere'"),
    "a module that raises on import": (
        "broken:train",
        "importing 'broken' failed: ZeroDivisionError",
    ),
    "a missing attribute": ("fine:nothing", "module 'fine' has no attribute 'nothing'"),
    "a wrong signature": ("fine:one_argument", "expected a function taking (config, report)"),
    "not a function": (
        "fine:NUMBER",
        "expected a function train(config, report) or a scalesweep.Trainable",
    ),
    "a command not found": (
        {"command": "no-such-program-here --flag"},
        "'no-such-program-here' not found",
    ),
    "a script not found": ({"command": "python missing.py"}, "'missing.py': no such file"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_trainable_is_one_line_and_exit_2_at_validate_and_run(
    tmp_path: Path, case: str
) -> None:
    trainable, fragment = BAD[case]
    (tmp_path / "broken.py").write_text("1 / 0\n")
    (tmp_path / "fine.py").write_text("NUMBER = 3\n\ndef one_argument(config):\n    pass\n")
    spec = write_spec(
        tmp_path / "spec.yaml", {"name": "bad", "trainable": trainable, "axes": {"n": [1]}}
    )
    for command in ("validate", "run"):
        result = scalesweep(command, str(spec), cwd=tmp_path)
        assert result.returncode == 2, (command, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert lines[0].startswith(f"error: {spec}: trainable") and fragment in lines[0], lines[0]
    assert not (tmp_path / "results").exists()


def test_a_sweep_whose_trainable_never_reports_the_metric_exits_1_with_that_line_last(
    tmp_path: Path,
) -> None:
    (tmp_path / "quiet.py").write_text(
        textwrap.dedent("""
        def train(config, report):
            for epoch in range(1, 4):
                report({"epoch": epoch, "loss": 1.0 / epoch})
    """)
    )
    spec = write_spec(
        tmp_path / "spec.yaml",
        {
            "name": "quiet",
            "trainable": "quiet:train",
            "axes": {"n": [1, 2]},
            "seeds": 2,
            "max_failures": 0,
            "metric": {"name": "test_loss"},
            "storage": {"tracking_uri": None},
            "curves": [{"kind": "scaling_law", "x": "n", "y": "test_loss"}],
        },
    )
    result = scalesweep("run", str(spec), cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert (
        last.startswith("error: every trial failed")
        and "'test_loss'" in last
        and "reported: loss" in last
    )
    errors = (
        __import__("pandas").read_parquet(tmp_path / "results" / "quiet" / "trials.parquet").error
    )
    assert errors.str.contains("never reported the metric 'test_loss'").all()


ENTRY_PACKAGE = {
    "toolkit/__init__.py": textwrap.dedent("""
        from scalesweep import Trainable

        LINREG = Trainable(train="toolkit.heavy:train", defaults={"epochs": 10, "lr": 0.01, "seed": 0},
                           metrics={"test_loss": "min"})
    """),
    "toolkit/heavy.py": "import torch\n\ndef train(config, report):\n    pass\n",
    "toolkit-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: toolkit\nVersion: 1.0\n",
    "toolkit-1.0.dist-info/entry_points.txt": "[scalesweep.trainables]\nlinreg = toolkit:LINREG\n",
}


def test_an_installed_trainable_is_found_by_name_and_validates_without_torch(
    tmp_path: Path,
) -> None:
    for name, text in ENTRY_PACKAGE.items():
        (tmp_path / "site" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "site" / name).write_text(text)
    good = {
        "name": "lin",
        "trainable": "linreg",
        "fixed": {"epochs": 5},
        "axes": {"lr": [0.1, 0.01]},
    }
    write_spec(tmp_path / "good.yaml", good)
    write_spec(tmp_path / "bad.yaml", {**good, "fixed": {"epochs": 5, "learning_rate": 0.1}})
    probe = textwrap.dedent("""
        import json, sys, time
        from orchestrator.cli import main
        out = {}
        for spec in ("good.yaml", "bad.yaml"):
            start = time.perf_counter()
            out[spec] = main(["validate", spec])
            out[spec + " ms"] = round(1000 * (time.perf_counter() - start), 1)
        out["torch"] = "torch" in sys.modules
        print(json.dumps(out))
    """)
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PYTHONPATH": str(tmp_path / "site")},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    print(out)  # the milliseconds, for the record (no timing threshold in tests)
    assert out["good.yaml"] == 0 and out["bad.yaml"] == 2 and out["torch"] is False
    assert (
        "bad.yaml: fixed.learning_rate: unknown key; expected one of ['epochs', 'lr', 'seed']"
        in result.stderr
    )
