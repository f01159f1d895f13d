"""Checkpoints on S3 (`storage.checkpoints: s3://...`), as multi-machine Ray needs: a real S3 server
(moto's, on 127.0.0.1) behind pyarrow.fs. The driver is killed mid-sweep and resumed from the
experiment state in the bucket; results stay on the driver's disk, exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from helpers import recorded_rows, scalesweep, start_run, wait_until, write_spec
from test_faults import SPEC, _assert_complete_exactly_once
from test_k8s import free_port

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def s3_server():
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (
                    "moto_server did not start"
                )
                time.sleep(0.2)
        fs = pafs.S3FileSystem(
            access_key="testing",
            secret_key="testing",
            region="us-east-1",
            endpoint_override=f"127.0.0.1:{port}",
            scheme="http",
            allow_bucket_creation=True,
        )
        fs.create_dir("sweeps")
        yield (
            fs,
            f"s3://sweeps/checkpoints?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1",
        )
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _checkpoints(fs: pafs.FileSystem, experiment: str) -> list[str]:
    infos = fs.get_file_info(pafs.FileSelector(experiment, recursive=True, allow_not_found=True))
    return [i.path for i in infos if i.type == pafs.FileType.Directory and "/checkpoint_" in i.path]


def test_checkpoints_on_s3_survive_a_killed_driver(tmp_path: Path, s3_server, monkeypatch) -> None:
    fs, uri = s3_server
    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)  # the driver and its Ray workers inherit these
    spec = write_spec(
        tmp_path / "spec.yaml",
        {
            **SPEC,
            "search": {**SPEC["search"], "samples_per_cell": 2},
            "storage": {**SPEC["storage"], "checkpoints": uri},
        },
    )
    root = tmp_path / "results" / SPEC["name"]
    experiment = f"sweeps/checkpoints/{SPEC['name']}/tune"
    driver = start_run(spec, tmp_path)
    seen: set[str] = set()

    def progress() -> bool:
        seen.update(_checkpoints(fs, experiment))
        return recorded_rows(root) >= 3

    wait_until(progress)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    assert seen, "trial checkpoints were written to the bucket"
    assert not (root / "tune").exists(), "nothing of Tune's on the driver's disk"
    names = [Path(i.path).name for i in fs.get_file_info(pafs.FileSelector(experiment))]
    assert "tuner.pkl" in names and any(n.startswith("experiment_state-") for n in names)

    resumed = scalesweep("resume", str(root), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _assert_complete_exactly_once(root, n_trials=8)
    assert _checkpoints(fs, experiment) == [], "a recorded trial's checkpoints are deleted"


def test_an_unusable_checkpoints_uri_is_one_line_and_exit_2(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path / "spec.yaml",
        {**SPEC, "storage": {"tracking_uri": None, "checkpoints": "nosuch://x/y"}},
    )
    proc = scalesweep("run", str(spec), cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: storage.checkpoints: cannot open 'nosuch://x/y'")
    assert not (tmp_path / "results" / SPEC["name"] / "trials.parquet").exists()
