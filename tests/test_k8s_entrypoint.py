"""The RayJob's exact entrypoint on a real two-node Ray on loopback: the closest honest stand-in for a
KubeRay cluster here. A first attempt is cut off with its whole cluster (a lost head); the retry runs
on a NEW cluster, as KubeRay's retries do, and resumes from the shared directory standing in for the
/data volume. While the first attempt runs, a second driver is refused.

What it maps: /spec and /data to directories here, the MLflow service to the MLflow server run from
the cpu overlay's Deployment, and each Ray node's `ray start` flags from the RayJob's rayStartParams.
What it cannot show: KubeRay itself (submission, retries, pod lifecycle), NFS semantics, images.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pandas as pd
from helpers import recorded_rows, write_spec
from loopback import LoopbackCluster
from test_k8s import by_kind, needs_kubectl, start_mlflow_from_manifest, stop

from orchestrator.k8s.render import build_overlay, render
from orchestrator.spec.schema import load_spec

N_TRIALS = 16
SPEC = {  # 16 trials of 3 s, 2 at a time: long enough that attempt 1 is still running when it is cut off
    "name": "k8s-resume",
    "trainable": "synthetic",
    "fixed": {"epochs": 6, "sleep_s": 0.5},
    "axes": {"size": [1, 4], "rate": [0.2, 0.6]},
    "search": {"samples_per_cell": 4, "space": {"lr": {"loguniform": [1e-4, 1e-1]}}},
    "seeds": 2,
    "checkpoint_every_s": 0,
}


def ray_start_flags(params: dict[str, str]) -> list[str]:
    """rayStartParams as KubeRay passes them to `ray start`: --key=value."""
    return [f"--{key}={value}" for key, value in params.items()]


def rayjob_cluster(rayjob: dict) -> LoopbackCluster:
    """The RayJob's head and first worker group, one worker, with their rayStartParams."""
    cluster = rayjob["spec"]["rayClusterSpec"]
    return LoopbackCluster(
        ray_start_flags(cluster["headGroupSpec"]["rayStartParams"]),
        [ray_start_flags(cluster["workerGroupSpecs"][0]["rayStartParams"])],
    )


def entrypoint_argv(rayjob: dict, spec_dir: Path, data_dir: Path, mlflow_port: int) -> list[str]:
    """The RayJob's entrypoint, word for word, with the pod's paths and service mapped to local ones."""
    words = shlex.split(rayjob["spec"]["entrypoint"])
    assert words[0] == "scalesweep"
    mapping = {
        "/spec/spec.yaml": str(spec_dir / "spec.yaml"),
        "/data/results": str(data_dir / "results"),
        "http://scalesweep-mlflow:5000": f"http://127.0.0.1:{mlflow_port}",
    }
    mapped = [mapping.get(w, w) for w in words[1:]]
    assert len(set(mapped) & set(mapping.values())) == 3, (
        "the entrypoint's paths or service changed"
    )
    return [sys.executable, "-m", "orchestrator", *mapped]


@needs_kubectl
def test_the_rayjob_entrypoint_resumes_on_a_new_cluster_and_never_runs_twice(
    tmp_path: Path,
) -> None:
    (tmp_path / "spec").mkdir()
    spec_path = write_spec(tmp_path / "spec" / "spec.yaml", SPEC)
    objects, _ = render(load_spec(spec_path), spec_path.read_text(), build_overlay("cpu"))
    rayjob = by_kind(objects, "RayJob")[0]
    data = tmp_path / "data"  # the shared volume: results here, MLflow artifacts here too
    server, mlflow_port = start_mlflow_from_manifest(tmp_path / "mlflow")
    argv = entrypoint_argv(rayjob, spec_path.parent, data, mlflow_port)
    root = data / "results" / SPEC["name"]
    clusters: list[LoopbackCluster] = []
    drivers: list[subprocess.Popen] = []
    log = tmp_path / "attempt1.log"
    try:
        clusters.append(rayjob_cluster(rayjob))  # attempt 1's RayCluster
        env = {**clusters[0].env, "RAY_ADDRESS": clusters[0].address}
        first = subprocess.Popen(
            argv,
            env=env,
            cwd=tmp_path,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=open(log, "w"),
        )
        drivers.append(first)
        deadline = time.monotonic() + 300
        while recorded_rows(root) < 3:
            assert first.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "attempt 1 made no progress"
            time.sleep(0.2)

        overlap = subprocess.run(
            argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        assert (
            overlap.returncode == 2 and "another driver is running this sweep" in overlap.stderr
        ), overlap.stderr

        assert first.poll() is None, "attempt 1 finished before it could be cut off"
        clusters[0].kill()  # the head is lost, the driver with it: the attempt fails
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        before = set(pd.read_parquet(root / "trials.parquet").trial_id)
        assert 3 <= len(before) < N_TRIALS

        clusters.append(rayjob_cluster(rayjob))  # the retry: a NEW RayCluster, same volume
        env["RAY_ADDRESS"] = clusters[1].address
        second = subprocess.run(
            argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600
        )
        assert second.returncode == 0, second.stderr[-3000:]
    finally:
        for driver in drivers:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
                driver.wait()
        for cluster in clusters:
            cluster.kill()
        stop(server)

    trials = pd.read_parquet(root / "trials.parquet")
    assert len(trials) == N_TRIALS and trials.trial_id.is_unique and before <= set(trials.trial_id)
    assert set(trials.status) == {"completed"} and (trials.epochs == SPEC["fixed"]["epochs"]).all()
    metrics = pd.read_parquet(root / "metrics")
    assert not metrics.duplicated(["trial_id", "epoch", "seed"]).any()
    assert set(metrics.trial_id) == set(trials.trial_id)
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow' / 'db' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(SPEC["name"])
    assert experiment is not None and client.search_runs([experiment.experiment_id])
