"""Helpers for tests: write a spec, run the CLI as a user would, check a trainable's checkpoints."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from trainables import ConfigError, Report, Reporter


def write_spec(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def scalesweep(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """The CLI as a user runs it: a fresh process, captured stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_run(spec: Path, cwd: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    """``scalesweep run SPEC`` as a background driver in its own session (signals reach it alone)."""
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", str(spec), *args],
        cwd=cwd,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def recorded_rows(root: Path) -> int:
    """Trials recorded in ``root/trials.parquet`` so far (0 before it exists)."""
    try:
        return pq.read_table(root / "trials.parquet").num_rows
    except (FileNotFoundError, OSError):
        return 0


def wait_until(condition: Callable[[], bool], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def reports_of(
    train: Callable[[dict[str, Any], Reporter], None], config: dict[str, Any]
) -> list[Report]:
    """Every report of one ``train(config, report)`` run, in order."""
    reports: list[Report] = []
    train(config, Reporter(reports.append))
    return reports


def values(report: Report, metric: str) -> list[float]:
    """``metric`` of each of the report's rows, in row order (NaN on diverged rows)."""
    return [row.metrics[metric] for row in report.rows]


def curve_mean(report: Report, curve: str) -> list[float]:
    """Per position, the mean of ``curve`` over the report's rows that have not diverged."""
    live = [row.curves[curve] for row in report.rows if not row.diverged]
    return [math.fsum(position) / len(live) for position in zip(*live)]


class Checkpointing(Reporter):
    """Keeps the state of one chosen epoch, and can hand a saved state back as a restore."""

    def __init__(self, save_at: int | None = None, restore: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.reports: list[Report] = []
        self.save_at, self.restore, self.saved = save_at, restore, None

    def __call__(self, metrics: Report, state: Any = None) -> None:
        self.reports.append(metrics)
        if metrics.epoch == self.save_at:
            self.saved = state()

    def restored_state(self) -> dict[str, Any] | None:
        return self.restore


def assert_restore_continues_identically(
    train: Callable[[dict[str, Any], Reporter], None],
    config: dict[str, Any],
    save_at: int,
    last: int,
) -> None:
    """A run restored from its checkpoint at ``save_at`` makes exactly the reports the uninterrupted run made
    after it; one restored from its last checkpoint (epoch ``last``) reports the final state again."""
    from orchestrator.store.statefile import read_state, write_state

    full = Checkpointing(save_at=save_at)
    train(config, full)
    with tempfile.TemporaryDirectory() as tmp:  # through the file a trial's checkpoint is
        write_state(Path(tmp) / "state.npz", {"state": full.saved})
        saved = read_state(Path(tmp) / "state.npz")["state"]
    resumed = Checkpointing(restore=saved)
    train(config, resumed)
    later = [r for r in full.reports if r.epoch > save_at]
    assert later and resumed.reports == later
    final_state = Checkpointing(save_at=last)
    train(config, final_state)
    again = Checkpointing(restore=final_state.saved)
    train(config, again)
    assert again.reports == full.reports[-1:] and again.reports[0].epoch == last


def assert_config_error(
    resolve: Callable[[Mapping[str, Any]], dict[str, Any]],
    config: dict[str, Any],
    key: str,
    fragment: str,
) -> None:
    """``resolve(config)`` raises a ConfigError naming ``key``, whose message says what was expected."""
    with pytest.raises(ConfigError) as info:
        resolve(config)
    assert info.value.key == key
    assert "expected" in str(info.value) and fragment in str(info.value)


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """One torch thread: on 2 shared, loaded cores two threads ran ~9× slower than one
    (docs/science.md, Training settings)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run_with_member_1_diverging(trainer_cls: Any, config: dict[str, Any]) -> tuple[Any, Report]:
    """Trains ``config`` as a pack of two one-seed members, member 1 with learning rate 1e30 (it blows up);
    returns the trainer and its final report, after checking that member 1 alone is reported as diverged,
    with NaN metrics."""
    trainer = trainer_cls({**config, "seeds": 1, "members": [{}, {"lr": 1e30}]})
    reports: list[Report] = []
    trainer.run(Reporter(reports.append))
    final = reports[-1]
    seed = trainer.cfg["seed"]
    assert [(r.member, r.seed, r.diverged) for r in final.rows] == [
        (0, seed, False),
        (1, seed, True),
    ]
    kept, blown = final.rows
    assert kept.metrics and set(blown.metrics) == set(kept.metrics)
    assert all(math.isnan(blown.metrics[k]) and not math.isnan(v) for k, v in kept.metrics.items())
    return trainer, final
