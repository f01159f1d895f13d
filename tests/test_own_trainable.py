"""A researcher's own trainable, swept three ways from a throwaway package outside the project: as
``module:function`` from the CLI, as ``{command: ...}``, and with ``scalesweep.run()`` from a script whose
function lives in ``__main__``. Each sweep is real: local Ray, ASHA, MLflow on sqlite, Parquet, curves."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from helpers import scalesweep, write_spec

SEEDS = 3
EPOCHS = 12
# A noisy learner whose loss falls with ``lr`` (best at 0.3) and with ``n``: ASHA has bad trials to prune.
TRAIN = textwrap.dedent("""
    import random

    def train(config, report):
        rng = random.Random(config["seed"])
        w = 0.0
        for epoch in range(1, config["epochs"] + 1):
            w += min(config["lr"], 0.3) * (1 - w) * config["n"] / (config["n"] + 1) + rng.gauss(0, 0.02)
            loss = (1 - w) ** 2 + 0.5 / config["n"]
            report({"epoch": epoch, "test_loss": loss, "test_error": float(loss > 0.3), "note": "text is ignored"})
""")
COMMAND = textwrap.dedent("""
    import json, os, sys
    from toypkg.learner import train

    config = json.loads(os.environ["SCALESWEEP_CONFIG"])
    given = dict(arg.split("=", 1) for arg in sys.argv[1:])
    assert json.loads(given["lr"]) == config["lr"] and int(given["seed"]) == config["seed"], (given, config)
    print("a line that is not a report goes to the trial's log")
    train(config, lambda metrics: print(json.dumps(metrics), flush=True))
""")
SCRIPT = textwrap.dedent("""
    import json, sys
    import scalesweep
    {train}
    if __name__ == "__main__":
        spec = json.loads(sys.argv[1])
        trials = scalesweep.run(spec, trainable=train, results=sys.argv[2], tracking_uri=sys.argv[3])
        print(json.dumps({{"rows": len(trials), "module": train.__module__}}))
""")


def _spec(name: str, trainable: object) -> dict:
    return {
        "name": name,
        "trainable": trainable,
        "fixed": {"epochs": EPOCHS},
        "axes": {"n": [1, 2, 4, 8]},
        "search": {
            "algorithm": "random",
            "samples_per_cell": 3,
            "space": {"lr": {"loguniform": [0.003, 1.0]}},
        },
        "seeds": SEEDS,
        "metric": {"name": "test_loss"},
        "scheduler": {"asha": {"grace_period": 2, "reduction_factor": 3}},
        "resources": {
            "max_concurrent_trials": 1
        },  # one at a time: ASHA sees the same order every run
        "report_every_s": 0,
        "max_failures": 0,
        "curves": [
            {"kind": "scaling_law", "x": "n", "y": "test_loss"},
            {"kind": "sample_complexity", "x": "n", "y": "test_error", "threshold": 0.5},
        ],
    }


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    """A throwaway project outside the repository: toypkg/learner.py and a script using it."""
    root = tmp_path_factory.mktemp("researcher")
    (root / "toypkg").mkdir()
    (root / "toypkg" / "__init__.py").write_text("")
    (root / "toypkg" / "learner.py").write_text(TRAIN)
    (root / "train_cmd.py").write_text(COMMAND)
    (root / "drive.py").write_text(SCRIPT.format(train=TRAIN))
    return root


def _check_sweep(root: Path, uri: str, name: str) -> None:
    """One row per trial, three distinct seeds per trial in metrics/, ASHA pruning, MLflow runs, a curve."""
    results = root / name
    trials = pd.read_parquet(results / "trials.parquet")
    assert len(trials) == 12 and trials.trial_id.is_unique
    assert set(trials.status) <= {"completed", "pruned"}, trials[["status", "error"]]
    assert (trials.status == "pruned").any() and (trials.status == "completed").any()
    assert {"final_test_loss", "best_test_loss", "final_test_error"} <= set(trials.columns)
    assert "final_note" not in trials.columns  # only numeric keys are metrics
    metrics = pd.read_parquet(results / "metrics")
    assert not metrics.duplicated(["trial_id", "epoch", "seed"]).any()
    seeds = metrics.groupby("trial_id").seed.agg(lambda s: tuple(sorted(set(s))))
    assert set(seeds) == {(0, 1, 2)} and set(seeds.index) == set(trials.trial_id)
    last = metrics.sort_values("epoch").groupby(["trial_id", "seed"]).tail(1)
    mean = last.groupby("trial_id").test_loss.mean()  # the trial's metric is the seed mean
    assert trials.set_index("trial_id").final_test_loss.sub(mean).abs().max() < 1e-12
    fit = pd.read_parquet(results / "curves" / "scaling_law.parquet")
    assert len(fit) == 1 and fit.iloc[0].notna().any()
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs(
        [experiment.experiment_id], "tags.`mlflow.parentRunId` != ''", max_results=100
    )
    assert len(runs) == 12
    one = runs[0].data.metrics
    assert {"test_loss", "test_loss/seed_0", "test_loss/seed_1", "test_loss/seed_2"} <= set(one)


def test_module_function_from_the_cli(package: Path, tmp_path: Path) -> None:
    spec = write_spec(package / "function.yaml", _spec("function", "toypkg.learner:train"))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    ran = scalesweep(
        "run", str(spec), "--results", str(tmp_path), "--tracking-uri", uri, cwd=tmp_path
    )
    assert ran.returncode == 0, ran.stderr[
        -3000:
    ]  # run from elsewhere: the module is found beside the spec
    _check_sweep(tmp_path, uri, "function")


def test_a_command_as_trainable(package: Path, tmp_path: Path) -> None:
    spec = write_spec(
        package / "command.yaml", _spec("command", {"command": f"{sys.executable} train_cmd.py"})
    )
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    ran = scalesweep(
        "run", str(spec), "--results", str(tmp_path), "--tracking-uri", uri, cwd=package
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    _check_sweep(tmp_path, uri, "command")


def test_python_api_with_a_function_in_main(package: Path, tmp_path: Path) -> None:
    spec = {k: v for k, v in _spec("api", None).items() if k != "trainable"}
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    ran = subprocess.run(
        [sys.executable, "drive.py", json.dumps(spec), str(tmp_path), uri],
        cwd=package,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert json.loads(ran.stdout.strip().splitlines()[-1]) == {"rows": 12, "module": "__main__"}
    _check_sweep(tmp_path, uri, "api")
