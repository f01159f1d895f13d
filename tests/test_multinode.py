"""A sweep on an existing multi-node Ray (`--address`), which loses a worker node mid-sweep.

The cluster is real: `ray start --head` with one CPU and `ray start --address` with two, on
127.0.0.1. The worker is killed with SIGKILL (its raylet and trial processes with it) while it runs
trials; Tune retries those trials on the head from their checkpoints and the sweep completes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from helpers import write_spec
from loopback import LoopbackCluster

N_TRIALS = 12
SPEC = {
    "name": "multinode",
    "trainable": "synthetic",
    "fixed": {"epochs": 8, "sleep_s": 0.4},
    "axes": {"size": [1, 4], "rate": [0.2, 0.6]},
    "search": {"samples_per_cell": 3, "space": {"lr": {"loguniform": [1e-4, 1e-1]}}},
    "seeds": 2,
    "checkpoint_every_s": 0,
    "max_failures": 3,
    "storage": {"results": "results", "tracking_uri": None},
}


def _running(root: Path) -> int:
    try:
        return len(json.loads((root / "running.json").read_text()))
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def test_a_sweep_uses_both_nodes_and_completes_when_the_worker_dies(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "spec.yaml", SPEC)
    root = tmp_path / "results" / SPEC["name"]
    cluster = LoopbackCluster(["--num-cpus=1"], [["--num-cpus=2"]])
    log = tmp_path / "driver.log"
    driver = None
    try:
        driver = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "run", str(spec), "--address", cluster.address],
            cwd=tmp_path,
            env=cluster.env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=open(log, "w"),
        )
        deadline = time.monotonic() + 240
        peak = 0
        while peak < 3:  # the head has one CPU: three trials at once means the worker runs two
            assert driver.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"never more than {peak} trials at once"
            peak = max(peak, _running(root))
            time.sleep(0.1)
        cluster.kill_node(1)
        assert driver.wait(timeout=480) == 0, log.read_text()[-3000:]
    finally:
        if driver is not None and driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
        cluster.kill()

    trials = pd.read_parquet(root / "trials.parquet")
    assert len(trials) == N_TRIALS and trials.trial_id.is_unique
    assert set(trials.status) == {"completed"}, trials[["trial_id", "status", "error"]]
    assert (trials.epochs == SPEC["fixed"]["epochs"]).all()
    metrics = pd.read_parquet(root / "metrics")
    assert not metrics.duplicated(["trial_id", "epoch", "seed"]).any()
    assert len(metrics) == N_TRIALS * SPEC["fixed"]["epochs"] * SPEC["seeds"]


def test_a_module_function_from_the_spec_directory_runs_on_another_node(tmp_path: Path) -> None:
    """The module lives only beside the spec, which no worker's path holds: it travels with the trials."""
    (tmp_path / "mymodel").mkdir()
    (tmp_path / "mymodel" / "__init__.py").write_text("")
    (tmp_path / "mymodel" / "fit.py").write_text(
        "import os\n\n"
        "from mymodel.helpers import loss_at\n\n\n"
        "def train(config, report):\n"
        "    for epoch in range(1, config['epochs'] + 1):\n"
        "        report({'epoch': epoch, 'test_loss': loss_at(epoch, config['seed']), 'pid': os.getpid()})\n"
    )
    (tmp_path / "mymodel" / "helpers.py").write_text(
        "def loss_at(epoch, seed):\n    return 1.0 / (epoch + seed)\n"
    )
    spec = write_spec(
        tmp_path / "spec.yaml",
        {
            "name": "shipped",
            "trainable": "mymodel.fit:train",
            "fixed": {"epochs": 3},
            "axes": {"n": [1, 2, 3]},
            "seeds": 2,
            "storage": {"results": "results", "tracking_uri": None},
        },
    )
    elsewhere = (
        tmp_path / "elsewhere"
    )  # the driver runs from another directory: the spec's is what counts
    elsewhere.mkdir()
    cluster = LoopbackCluster(
        ["--num-cpus=0"], [["--num-cpus=2"]]
    )  # every trial runs on the worker node
    try:
        run = subprocess.run(
            [sys.executable, "-m", "orchestrator", "run", str(spec), "--address", cluster.address],
            cwd=elsewhere,
            env=cluster.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        cluster.kill()
    assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-3000:]
    trials = pd.read_parquet(elsewhere / "results" / "shipped" / "trials.parquet")
    assert len(trials) == 3 and set(trials.status) == {"completed"}, trials[["status", "error"]]
    metrics = pd.read_parquet(elsewhere / "results" / "shipped" / "metrics")
    assert len(metrics) == 3 * 3 * 2 and set(metrics.seed) == {0, 1}
    assert (metrics.test_loss == 1.0 / (metrics.epoch + metrics.seed)).all()
