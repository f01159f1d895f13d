"""`scalesweep ls` and `scalesweep compare` on two real sweeps that differ in one fixed value.

The `synthetic` trainable's loss is known (floor = (log10 lr + 2.5)² / (1 + size), the rest falling as
exp(-rate·epoch)): after 2 epochs with no noise, test_loss ≤ 0.05 at lr 1e-4 from size 64 at rate 3,
and at no size of the grid at rate 2, so the two sweeps' n* differ in that group.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from helpers import write_spec

from orchestrator.cli import main
from orchestrator.store.lock import DriverLock

SPEC = {
    "name": "fast",
    "trainable": "synthetic",
    "fixed": {"epochs": 2, "rate": 3.0, "noise": 0.0},
    "axes": {"lr": [1e-3, 1e-4], "size": [4, 16, 64]},
    "search": {"algorithm": "grid-only"},
    "seeds": 2,
    "report_every_s": 0,
    "curves": [{"kind": "sample_complexity", "x": "size", "y": "test_loss", "threshold": 0.05}],
    "storage": {"results": "results", "tracking_uri": None},
}
FIGURE = "test_loss_vs_size_final.png"


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory, ray_session: None) -> Path:
    """A results root with sweeps `fast` (rate 3) then `slow` (rate 2), and a folder that is no sweep."""
    tmp = tmp_path_factory.mktemp("ls_compare")
    root = tmp / "results"
    for name, rate in (("fast", 3.0), ("slow", 2.0)):
        spec = {**SPEC, "name": name, "fixed": {**SPEC["fixed"], "rate": rate}}
        profile = ["--profile"] if name == "fast" else []
        spec_file = str(write_spec(tmp / f"{name}.yaml", spec))
        assert main(["run", spec_file, "--results", str(root), *profile]) == 0
    (root / "notes").mkdir()
    (root / "notes" / "todo.txt").write_text("not a sweep")
    return root


def test_run_profile_writes_the_drivers_phases_in_order_and_each_tune_trials_span(
    results: Path,
) -> None:
    doc = json.loads((results / "fast" / "timeline.json").read_text())
    names = [name for name, _ in doc["marks"]]
    assert names == [
        "imports done",
        "spec planned",
        "Ray up",
        "results and MLflow open, packs sized, Tune imported",
        "Tune done",
        "Parquet compacted",
        "curves written",
        "answer printed",
    ]
    times = [at for _, at in doc["marks"]]
    assert times == sorted(times) and times[0] > 0
    spans = list(doc["trials"].values())
    assert len(spans) == pq.read_table(results / "fast" / "trials.parquet").num_rows
    assert all(times[3] <= s["start"] < s["end"] <= times[4] and s["worker"] for s in spans)
    assert not (results / "slow" / "timeline.json").exists(), "only a run with --profile writes one"


def _copy(results: Path, sweep: str, to: Path) -> Path:
    return Path(shutil.copytree(results / sweep, to / sweep))


def test_ls_lists_both_sweeps_finished_oldest_first_and_skips_other_folders(
    results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ls", str(results)]) == 0
    header, fast, slow = capsys.readouterr().out.splitlines()
    assert header.split() == ["sweep", "state", "trials", "wall", "best", "started", "ended"]
    for line, name in ((fast, "fast"), (slow, "slow")):
        assert line.split()[:4] == [name, "finished", "6/6:", "6"] and "completed" in line
        assert " test_loss " in line and "(min)" in line
    assert main(["ls", str(results), "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [(e["sweep"], e["state"], e["trials"]["completed"]) for e in entries] == [
        ("fast", "finished", 6),
        ("slow", "finished", 6),
    ]
    assert all(e["started"] <= e["ended"] and e["wall_s"] > 0 and e["best"] > 0 for e in entries)
    assert main(["ls", str(results / "slow"), "--json"]) == 0  # a sweep's own directory: itself
    assert [e["sweep"] for e in json.loads(capsys.readouterr().out)] == ["slow"]


def test_ls_tells_running_stopped_incomplete_and_damaged_sweeps(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    running, stopped, incomplete, damaged = (
        _copy(results, "fast", tmp_path / k) for k in ("a", "b", "c", "d")
    )
    trials = pq.read_table(stopped / "trials.parquet")
    pq.write_table(trials.slice(0, 3), stopped / "trials.parquet")
    (incomplete / "trials.parquet").unlink()
    (damaged / "trials.parquet").write_bytes(b"PAR1 cut short")
    lock = DriverLock(running).acquire()
    try:
        states = {}
        for path in (running, stopped, incomplete, damaged):
            assert main(["ls", str(path.parent), "--json"]) == 0
            (entry,) = json.loads(capsys.readouterr().out)
            states[path] = entry["state"], entry.get("reason", "")
    finally:
        lock.release()
    assert states[running][0] == "running" and states[stopped][0] == "stopped"
    assert states[incomplete][0] == "incomplete" and states[damaged][0] == "damaged"
    assert states[damaged][1].startswith(f"{damaged / 'trials.parquet'}: damaged (")
    assert main(["ls", str(damaged.parent)]) == 0
    (line,) = capsys.readouterr().out.splitlines()[1:]
    assert line.split()[:2] == ["fast", "damaged"] and "trials.parquet: damaged" in line


def test_compare_prints_the_diff_n_star_side_by_side_and_overlays_each_common_curve(
    results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", str(results / "fast"), str(results / "slow")]) == 0
    out = capsys.readouterr().out
    diff = out.split("## Spec diff")[1].split("##")[0]
    assert "- fixed.rate: 3.0 → 2.0" in diff and "- name: fast → slow" in diff
    assert diff.count("→") == 2
    assert "| group | fast | slow |" in out
    assert "| lr=0.0001 | 64 [64, 64] | > 64 [> 64, > 64] |" in out
    assert "| lr=0.001 | 16 [16, 16] | 16 [16, 16] |" in out
    figure = results / "fast" / "compare-slow" / FIGURE
    assert f"]({figure})" in out and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_to_a_file_writes_its_figures_beside_it(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "docs" / "rate.md"
    assert main(["compare", str(results / "fast"), str(results / "slow"), "-o", str(out)]) == 0
    md = out.read_text()
    assert "- fixed.rate: 3.0 → 2.0" in md and f"](rate-{FIGURE})" in md
    assert (out.parent / f"rate-{FIGURE}").read_bytes()[:4] == b"\x89PNG"


def test_sweeps_with_no_common_curve_still_get_the_spec_diff(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = _copy(results, "slow", tmp_path)
    spec = yaml.safe_load((other / "spec.yaml").read_text())
    spec["curves"][0]["y"] = "train_loss"  # curves may change after a sweep ran
    (other / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert main(["compare", str(results / "fast"), str(other)]) == 0
    out = capsys.readouterr().out
    assert "- curves.0.y: test_loss → train_loss" in out
    assert "No curve is common to these sweeps" in out and "n* on the grid" not in out


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["compare", "{root}/fast", "{root}/notes"], "{root}/notes: not a sweep (expected "),
        (["compare", "{root}/fast"], "{root}/fast: expected two sweeps or more"),
        (["ls", "{root}/missing"], "{root}/missing: not a directory; expected a results root"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    results: Path, command: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([a.format(root=results) for a in command]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: {expected.format(root=results)}")


def test_the_timeline_counts_from_the_drivers_own_start() -> None:
    """The profile's clock starts when the process did (to a clock tick), not up to a second before."""
    import subprocess
    import sys
    import time

    before = time.time()
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import orchestrator.tune.timeline as t; print(t.Timeline().origin)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert before - 0.02 <= float(out.stdout) <= time.time()
