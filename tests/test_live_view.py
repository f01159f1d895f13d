"""The live view as a researcher sees it: a sweep run in a pseudo-terminal, its screen read back through a
terminal emulator. Running trials show their epoch, metric and searched values under their cell, cells
keep the grid's order, a failed trial's reason stays on screen, and no library log line gets in."""

from __future__ import annotations

from pathlib import Path

from helpers import write_spec
from terminal import run_in_terminal

SPEC = {
    "name": "live",
    "trainable": "synthetic",
    "fixed": {"epochs": 4, "rate": 1.0, "noise": 0.0, "sleep_s": 0.3},
    "axes": {"size": [1, 64], "fail_epoch": [0, 2]},
    "search": {
        "algorithm": "random",
        "samples_per_cell": 1,
        "space": {"lr": {"loguniform": [1e-4, 1e-2]}},
    },
    "report_every_s": 0,
    "storage": {"results": "results", "tracking_uri": "sqlite:///mlflow.db"},
}


def test_the_live_view_shows_running_trials_in_grid_order_with_reasons_and_no_library_chatter(
    tmp_path: Path,
) -> None:
    screens = run_in_terminal(write_spec(tmp_path / "s.yaml", SPEC), tmp_path)
    text = ["\n".join(lines) for lines in screens]
    running = [t for t in text if "epoch " in t and "/4" in t and "lr=" in t]
    assert running, "a running trial shows its epoch of 4 and its searched lr:\n" + text[-1]
    assert any("test_loss" in t.split("epoch ", 1)[1] for t in running), "and its current metric"
    final = text[-1]
    rows = [line.split()[0] for line in final.splitlines() if line.startswith(("size=",))]
    order = [f"size={s},fail_epoch={f}" for s in (1, 64) for f in (0, 2)]
    assert rows == [c for c in order if c in rows] and len(rows) >= 3, final
    assert final.count("errored size=") == 2 and "fail_epoch" in final.split("errored", 1)[1], final
    for noise in ("WARNING", " INFO ", "Trial trial_", "Token authentication"):
        assert not any(noise in t for t in text), f"{noise!r} reached the console"
    log = (tmp_path / "results" / "live" / "driver.log").read_text()
    assert "Token authentication" in log, "Ray's warning is kept in driver.log"
