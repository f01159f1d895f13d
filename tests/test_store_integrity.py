"""Damaged results files are an error naming the file (exit 2, one line, no traceback), never data;
what can be rebuilt is rebuilt by `resume`.

One real sweep (the synthetic trainable, MLflow on sqlite) is killed by a failpoint right after it
commits its first trial, in a real `scalesweep run` process: that is the ``killed`` directory (one
metric part, no trials.parquet). Resumed in-process on the session's Ray, it becomes ``finished``
(compacted metrics, curves). Each case damages a copy of one of them and runs the real CLI.

Copies that are resumed lose Tune's saved state first (as a driver killed before Tune saved any), so
that resume takes its one path that reads nothing but Parquet: the rebuilt files are what decides
what runs. Restoring Tune's own state is test_faults' subject.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import scalesweep, write_spec
from test_faults import _assert_complete_exactly_once

from orchestrator.cli import main
from orchestrator.spec.plan import load_plan
from orchestrator.store.lock import DriverLock
from orchestrator.store.parquet_io import DamagedFile, read_table, write_table
from orchestrator.store.positions import position_rows
from orchestrator.store.results import ResultsWriter, load_metrics, load_trials
from trainables import Row

N_TRIALS = 4
SPEC = {
    "name": "integrity",
    "trainable": "synthetic",
    "fixed": {"epochs": 3},
    "axes": {"size": [1, 4], "rate": [0.3, 0.6]},
    "search": {"samples_per_cell": 1, "space": {"lr": {"loguniform": [1e-4, 1e-1]}}},
    "seeds": 2,
    "scheduler": {"asha": None},
    "checkpoint_every_s": 0,
    "resources": {"max_concurrent_trials": 2},
    "curves": [
        {
            "kind": "sample_complexity",
            "x": "size",
            "y": "test_loss",
            "threshold": 0.3,
            "chance": 1.0,
        }
    ],
}


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sweep whose driver died right after writing its first trial's metric part."""
    cwd = tmp_path_factory.mktemp("integrity")
    spec = {**SPEC, "storage": {"results": "results", "tracking_uri": f"sqlite:///{cwd}/mlflow.db"}}
    driver = subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", str(write_spec(cwd / "spec.yaml", spec))],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "SCALESWEEP_KILL_AT": "after-metrics-write"},
    )
    assert driver.returncode == -signal.SIGKILL, driver.stderr[-2000:]
    root = cwd / "results" / "integrity"
    assert len(_parts(root)) == 1 and not (root / "trials.parquet").exists()
    return root


@pytest.fixture(scope="module")
def finished(killed: Path, ray_session: None) -> Path:
    """``killed`` resumed to its end: every trial recorded, metrics compacted, curves written."""
    root = resumable(killed, killed.parent / "finished")
    assert main(["resume", str(root)]) == 0
    assert list((root / "metrics").glob("compact-*.parquet")) and not _parts(root)
    return root


def _parts(root: Path) -> list[Path]:
    return sorted((root / "metrics").glob("part-*.parquet"))


def _compacted(root: Path) -> Path:
    (path,) = (root / "metrics").glob("compact-*.parquet")
    return path


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def empty(path: Path) -> None:
    path.write_bytes(b"")


def scramble(path: Path) -> None:
    """200 random bytes (fixed seed) over the middle of the file."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2 - 100
    data[middle : middle + 200] = random.Random(0).randbytes(200)
    path.write_bytes(bytes(data))


DAMAGE = [truncate, empty, scramble]


def copy(root: Path, tmp_path: Path) -> Path:
    return shutil.copytree(root, tmp_path / root.name)


def resumable(root: Path, tmp_path: Path) -> Path:
    """A copy without Tune's saved state (see the module's docstring)."""
    root = copy(root, tmp_path)
    shutil.rmtree(root / "tune")
    return root


def one_line_error(capsys: pytest.CaptureFixture[str], args: list[str], names: Path | str) -> str:
    """Run the CLI in-process; assert exit 2 and exactly one stderr line, naming ``names``."""
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: ") and str(names) in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("command", ["status", "curves", "report", "sync-mlflow"])
def test_a_damaged_trials_file_is_one_line_that_says_resume_rebuilds_it(
    finished: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    damage: Callable,
) -> None:
    root = copy(finished, tmp_path)
    damage(root / "trials.parquet")
    line = one_line_error(capsys, [command, str(root)], root / "trials.parquet")
    assert f"scalesweep resume {root}" in line


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("command", ["curves", "report", "sync-mlflow", "resume"])
def test_a_damaged_compacted_metrics_file_is_one_line_and_resume_refuses_it(
    finished: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    damage: Callable,
) -> None:
    """Its epoch rows are in no other file: every command stops, resume too (it would record trials
    without their curves)."""
    root = copy(finished, tmp_path)
    damage(_compacted(root))
    one_line_error(capsys, [command, str(root)], _compacted(root))
    assert (root / "trials.parquet").exists() and _compacted(root).exists()  # nothing moved


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("command", ["curves", "sync-mlflow"])
def test_a_damaged_metric_part_is_one_line(
    killed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, damage: Callable
) -> None:
    root = copy(killed, tmp_path)
    (part,) = _parts(root)
    damage(part)
    one_line_error(capsys, [command, str(root)], part)


def test_a_damaged_positions_file_of_a_recorded_trial_is_one_line_and_resume_refuses_it(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy(finished, tmp_path)
    trial_id = load_trials(root).trial_id.iloc[0]
    rows = [Row(0, seed, {}, curves={"acc_by_k": [0.5, 0.75, 1.0] * 50}) for seed in (0, 1)]
    (root / "positions").mkdir()
    part = root / "positions" / f"part-{trial_id}.parquet"
    write_table(position_rows(trial_id, rows), part)
    scramble(part)
    for command in ("curves", "resume"):
        one_line_error(capsys, [command, str(root)], part)


def test_a_damaged_curves_table_is_one_line_that_says_curves_rewrites_it(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy(finished, tmp_path)
    table = root / "curves" / "sample_complexity.parquet"
    scramble(table)
    line = one_line_error(capsys, ["report", str(root)], table)
    assert f"scalesweep curves {root}" in line


def test_a_trials_file_is_not_rebuilt_from_metrics_that_do_not_carry_its_rows(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A compacted file written before compacted files carried their trials' rows: resume refuses to
    rebuild trials.parquet without them, and moves nothing."""
    root = copy(finished, tmp_path)
    compacted = _compacted(root)
    table = pq.read_table(compacted)
    absorbed = {b"scalesweep.absorbed": table.schema.metadata[b"scalesweep.absorbed"]}
    pq.write_table(table.replace_schema_metadata(absorbed), compacted)
    empty(root / "trials.parquet")
    line = one_line_error(capsys, ["resume", str(root)], root / "trials.parquet")
    assert "cannot be rebuilt" in line and str(compacted) in line
    assert (root / "trials.parquet").exists() and not list(root.glob("_trials.parquet.damaged-*"))


SWEEP_JSON = {
    "not JSON": lambda record: "{not json",
    "a list": lambda record: "[]",
    "a field missing": lambda record: json.dumps({k: v for k, v in record.items() if k != "axes"}),
    "a wrong type": lambda record: json.dumps({**record, "seeds": "three"}),
    "directory not a path": lambda record: json.dumps({**record, "directory": 5}),
}


@pytest.mark.parametrize("case", SWEEP_JSON)
@pytest.mark.parametrize("command", ["curves", "report", "resume"])
def test_a_bad_sweep_json_is_one_line(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, case: str
) -> None:
    root = copy(finished, tmp_path)
    sweep = root / "sweep.json"
    sweep.write_text(SWEEP_JSON[case](json.loads(sweep.read_text())))
    one_line_error(capsys, [command, str(root)], sweep)


SPEC_YAML = {
    "not YAML": lambda text: text + "\naxes: [unclosed\n",
    "a wrong type": lambda text: text.replace("seeds: 2", "seeds: three"),
    "not text": lambda text: text[:40] + "\udcff\udcfe" + text[40:],
}


@pytest.mark.parametrize("case", SPEC_YAML)
@pytest.mark.parametrize("command", ["status", "curves", "report", "sync-mlflow", "resume"])
def test_a_bad_spec_in_a_results_directory_is_one_line(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, case: str
) -> None:
    root = copy(finished, tmp_path)
    spec = root / "spec.yaml"
    spec.write_bytes(SPEC_YAML[case](spec.read_text()).encode(errors="surrogateescape"))
    one_line_error(capsys, [command, str(root)], spec)


def test_a_damaged_running_file_under_a_live_driver_is_one_line(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy(finished, tmp_path)
    (root / "running.json").write_text('{"t1": ')
    lock = DriverLock(
        root
    ).acquire()  # status reads running.json only while a driver holds the sweep
    try:
        one_line_error(capsys, ["status", str(root)], root / "running.json")
    finally:
        lock.release()


def test_the_cli_process_prints_one_line_and_no_traceback(finished: Path, tmp_path: Path) -> None:
    root = copy(finished, tmp_path)
    scramble(root / "trials.parquet")
    proc = scalesweep("status", str(root), cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"error: {root}/trials.parquet: damaged (")


# ------------------------------------------------------------------------------------ rebuilt


def test_resume_rebuilds_a_damaged_trials_file_from_the_compacted_metrics(
    finished: Path, tmp_path: Path
) -> None:
    root = resumable(finished, tmp_path)
    before = load_trials(root).set_index("trial_id").sort_index()
    truncate(root / "trials.parquet")
    assert main(["resume", str(root)]) == 0
    assert len(list(root.glob("_trials.parquet.damaged-*"))) == 1, "moved aside, not deleted"
    after = load_trials(root).set_index("trial_id").sort_index()
    assert after.equals(before[after.columns])
    _assert_complete_exactly_once(root, N_TRIALS)


def test_resume_rebuilds_a_damaged_trials_file_from_the_metric_parts(
    killed: Path, tmp_path: Path
) -> None:
    root = resumable(killed, tmp_path)
    empty(root / "trials.parquet")
    assert main(["resume", str(root)]) == 0
    assert list(root.glob("_trials.parquet.damaged-*"))
    _assert_complete_exactly_once(root, N_TRIALS)


def test_resume_sets_aside_the_damaged_part_of_a_trial_never_recorded_and_reruns_it(
    killed: Path, tmp_path: Path
) -> None:
    root = resumable(killed, tmp_path)
    (part,) = _parts(root)
    scramble(part)
    assert main(["resume", str(root)]) == 0
    assert list(part.parent.glob(f"_{part.name}.damaged-*")), "moved aside, not deleted"
    _assert_complete_exactly_once(root, N_TRIALS)


# ------------------------------------------------------------------------------- checksums


def test_every_parquet_file_has_page_checksums_and_a_flipped_data_byte_is_caught(
    killed: Path, finished: Path, tmp_path: Path
) -> None:
    root = copy(finished, tmp_path)
    files = [root / "trials.parquet", _compacted(root), *(root / "curves").glob("*.parquet")]
    files += _parts(copy(killed, tmp_path / "killed"))
    assert len(files) == 4
    for path in files:
        column = pq.ParquetFile(path).metadata.row_group(0).column(0)
        start = column.dictionary_page_offset or column.data_page_offset
        last = start + column.total_compressed_size - 1  # the last byte of the column's last page
        data = bytearray(path.read_bytes())
        data[last] ^= 0xFF
        path.write_bytes(bytes(data))
        with pytest.raises(DamagedFile, match="CRC checksum verification failed"):
            read_table(path)


def test_files_written_without_checksums_still_read(finished: Path, tmp_path: Path) -> None:
    root = copy(finished, tmp_path)
    metrics = load_metrics(root)
    for path in (root / "trials.parquet", _compacted(root)):
        pq.write_table(pq.read_table(path), path)  # as earlier versions wrote them
    assert main(["status", str(root)]) == 0
    assert load_metrics(root).equals(metrics)
    assert len(ResultsWriter(load_plan(root), root).finished) == N_TRIALS
