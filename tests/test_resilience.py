"""Nothing breaks a sweep for good: stop signals, moved results, a cut journal, damaged Tune state, an
unreachable cluster or tracking server; and an embedded Ray that listens on loopback only and dies with
its driver.

Drivers here are real `scalesweep` processes in their own session, sent real signals.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
from helpers import recorded_rows, scalesweep, start_run, wait_until, write_spec
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

N_TRIALS = 12
SPEC = {
    "name": "resilience",
    "trainable": "synthetic",
    "fixed": {"epochs": 6, "sleep_s": 0.25},
    "axes": {"size": [1, 4], "rate": [0.2, 0.6]},
    "search": {"samples_per_cell": 3, "space": {"lr": {"loguniform": [1e-4, 1e-1]}}},
    "checkpoint_every_s": 0,
    "storage": {"results": "results", "tracking_uri": None},
}


def _stopped(tmp: Path, signum: int, **changes: object) -> tuple[Path, subprocess.CompletedProcess]:
    """A sweep stopped by ``signum`` once some trials are recorded and others run: SIGINT to its whole
    process group, as a terminal's Ctrl-C is; SIGTERM to the driver, as Kubernetes and `kill` send it."""
    spec = write_spec(tmp / "spec.yaml", {**SPEC, **changes})
    root = tmp / "results" / SPEC["name"]
    proc = start_run(spec, tmp)
    wait_until(lambda: recorded_rows(root) >= 3)
    (os.killpg if signum == signal.SIGINT else os.kill)(proc.pid, signum)
    _, err = proc.communicate(timeout=120)
    return root, subprocess.CompletedProcess(proc.args, proc.returncode, "", err)


def _assert_complete_exactly_once(root: Path) -> None:
    trials = pd.read_parquet(root / "trials.parquet")
    assert len(trials) == N_TRIALS and trials.trial_id.is_unique
    assert set(trials.status) == {"completed"}, trials[["trial_id", "status", "error"]]
    metrics = pd.read_parquet(root / "metrics")
    assert not metrics.duplicated(["trial_id", "epoch", "seed"]).any()
    assert set(metrics.trial_id) == set(trials.trial_id)
    storage = JournalStorage(JournalFileBackend(str(root / "studies" / "journal.log")))
    told = [t for s in storage.get_all_studies() for t in storage.get_all_trials(s._study_id)]
    finished = [t.user_attrs["trial_id"] for t in told if t.state.name == "COMPLETE"]
    assert sorted(finished) == sorted(trials.trial_id), "each recorded trial in its study, once"


@pytest.fixture(scope="module")
def interrupted(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess]:
    """One sweep stopped with Ctrl-C; tests resume copies of it."""
    return _stopped(tmp_path_factory.mktemp("interrupted"), signal.SIGINT)


def _copy(root: Path, tmp: Path) -> Path:
    copy = tmp / "elsewhere" / root.name
    shutil.copytree(root, copy)
    return copy


def _resume(root: Path) -> subprocess.CompletedProcess:
    proc = scalesweep("resume", str(root), cwd=root.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_ctrl_c_stops_cleanly_says_how_to_resume_and_exits_130(interrupted) -> None:
    root, proc = interrupted
    assert proc.returncode == 130, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("stopped by SIGINT with ")
    assert f"scalesweep resume {root.relative_to(root.parents[1])}" in last
    assert "Traceback" not in proc.stderr
    assert 3 <= recorded_rows(root) < N_TRIALS
    assert not (root / "curves").exists(), "no curves for a sweep that did not finish"


def test_sigterm_checkpoints_running_trials_stops_with_143_and_a_moved_directory_resumes(
    tmp_path: Path,
) -> None:
    root, proc = _stopped(tmp_path, signal.SIGTERM, checkpoint_every_s=3600)
    assert proc.returncode == 143, proc.stderr[-3000:]
    assert "SIGTERM received" not in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("stopped by SIGTERM")
    recorded = set(pd.read_parquet(root / "trials.parquet").trial_id)
    unrecorded = [d for d in (root / "tune").iterdir() if d.is_dir() and d.name not in recorded]
    assert unrecorded and all(list(d.glob("checkpoint_*")) for d in unrecorded), (
        "every trial running at the stop checkpointed for it (its own period is an hour)"
    )
    moved = tmp_path / "moved" / root.name
    moved.parent.mkdir()
    root.rename(moved)  # no absolute path of the old place may be load-bearing
    _resume(moved)
    _assert_complete_exactly_once(moved)


def test_a_journal_line_cut_mid_write_is_dropped_and_told_again_from_parquet(
    interrupted, tmp_path: Path
) -> None:
    root = _copy(interrupted[0], tmp_path)
    journal = root / "studies" / "journal.log"
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[:2]) + lines[2][: len(lines[2]) // 2])  # the rest lost
    proc = _resume(root)
    assert "dropped" in proc.stderr
    _assert_complete_exactly_once(root)
    assert list((root / "studies").glob("journal.log.damaged-*"))


def test_damaged_tune_state_reschedules_what_parquet_lacks(interrupted, tmp_path: Path) -> None:
    root = _copy(interrupted[0], tmp_path)
    for state in (root / "tune").glob("experiment_state-*.json"):
        state.write_text(state.read_text()[:100])
    _resume(root)
    _assert_complete_exactly_once(root)
    # and once more with Tune's pickled tuner itself unreadable
    root = _copy(interrupted[0], tmp_path / "again")
    (root / "tune" / "tuner.pkl").write_bytes(b"not a pickle")
    _resume(root)
    _assert_complete_exactly_once(root)


def _tree(pid: int) -> list[psutil.Process]:
    parent = psutil.Process(pid)
    return [parent, *parent.children(recursive=True)]


def test_embedded_ray_listens_on_loopback_only_and_dies_with_a_killed_driver(
    tmp_path: Path,
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", SPEC)
    root = tmp_path / "results" / SPEC["name"]
    proc = start_run(spec, tmp_path)
    try:
        wait_until(lambda: recorded_rows(root) >= 1)
        processes = _tree(proc.pid)
        listening = {
            (p.name(), c.laddr.ip)
            for p in processes
            for c in p.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        }
        assert listening, "the embedded Ray listens somewhere"
        outside = {
            (n, ip) for n, ip in listening if ip not in ("127.0.0.1", "::ffff:127.0.0.1", "::1")
        }
        assert not outside, f"listening beyond loopback: {outside}"
        processes = _tree(proc.pid)[1:]  # what Ray started, workers included
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while (
        alive := [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    ) and (time.monotonic() < deadline):
        time.sleep(0.2)
    assert not alive, f"outlived the driver: {[p.name() for p in alive]}"


def test_an_unreachable_address_fails_in_one_line_before_anything_is_written(
    tmp_path: Path,
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", SPEC)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for address in (f"127.0.0.1:{port}", "no-such-host.invalid:6379", "nonsense"):
        started = time.monotonic()
        proc = scalesweep("run", str(spec), "--address", address, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert len(proc.stderr.strip().splitlines()) == 1 and address in proc.stderr
        assert time.monotonic() - started < 30
    assert not (tmp_path / "results").exists()


def test_a_tracking_server_that_never_answers_holds_the_sweep_only_briefly(tmp_path: Path) -> None:
    """It accepts connections and says nothing: the sweep finishes, warns in one line, and exits."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                pass

    threading.Thread(target=accept, daemon=True).start()
    try:
        spec = {
            **SPEC,
            "fixed": {"epochs": 3},
            "search": {"samples_per_cell": 1},
            "storage": {
                "results": "results",
                "tracking_uri": f"http://127.0.0.1:{server.getsockname()[1]}",
            },
        }
        started = time.monotonic()
        proc = scalesweep("run", str(write_spec(tmp_path / "spec.yaml", spec)), cwd=tmp_path)
        took = time.monotonic() - started
    finally:
        stop.set()
        server.close()
        for conn in held:
            conn.close()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert recorded_rows(tmp_path / "results" / SPEC["name"]) == 4
    assert "MLflow" in proc.stderr and "sync-mlflow" in proc.stderr
    assert took < 60, f"the driver waited {took:.0f}s on a silent tracking server"


def test_a_sweep_whose_every_trial_diverged_exits_1_saying_so(tmp_path: Path) -> None:
    spec = {**SPEC, "fixed": {"epochs": 3, "diverge": True}, "search": {"samples_per_cell": 1}}
    proc = scalesweep("run", str(write_spec(tmp_path / "spec.yaml", spec)), cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "no trial finished with a finite test_loss (4 diverged" in proc.stderr.splitlines()[-1]


def test_an_unwritable_results_root_fails_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    spec = write_spec(tmp_path / "spec.yaml", {**SPEC, "storage": {"results": "afile/results"}})
    proc = scalesweep("run", str(spec), cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "cannot write" in proc.stderr


def test_resume_continues_the_study_search_from_json_state(interrupted) -> None:
    """The searcher's saved state is data: JSON, no pickle."""
    root = interrupted[0]
    states = list((root / "tune").glob("searcher-state-*"))
    assert states and all(isinstance(json.loads(p.read_text()), dict) for p in states)
