"""``scalesweep status``: trials per cell and the best metric so far, read from Parquet alone.

It reads only ``spec.yaml`` and ``trials.parquet`` (never Ray), so it answers from another shell
while a sweep runs, after it ends, and on a machine that only has the results directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator.spec.cells import expand
from orchestrator.spec.schema import SpecError, load_spec
from orchestrator.store.lock import DriverLock
from orchestrator.store.parquet_io import reading
from orchestrator.store.results import RUNNING_FILE, STATUSES, read_trials


def _empty() -> dict[str, Any]:
    return {**{s: 0 for s in STATUSES}, "running": 0, "best": None}


def sweep_status(root: Path) -> dict[str, Any]:
    spec_file = root / "spec.yaml"
    if not spec_file.exists():
        raise SpecError(
            f"{root}: no sweep here (expected {spec_file}); pass a results/<sweep> directory"
        )
    spec = load_spec(spec_file)
    metric, column = spec.metric.name, f"final_{spec.metric.name}"
    mode = spec.metric.mode or "min"
    cells = {c.key: _empty() for c in expand(spec.axes)}
    trials = read_trials(root, ["cell", "status", column])
    if trials is not None:
        table = trials.to_pydict()
        for cell, status, value in zip(table["cell"], table["status"], table[column]):
            entry = cells.setdefault(cell, _empty())
            entry[status] += 1
            if value is not None and value == value and status != "errored":
                best = entry["best"]
                entry["best"] = (
                    value
                    if best is None or (value < best if mode == "min" else value > best)
                    else best
                )
    live = DriverLock.held(root)
    if live and (root / RUNNING_FILE).exists():
        for cell in _running(root / RUNNING_FILE):
            cells.setdefault(cell, _empty())["running"] += 1
    done = sum(entry[s] for entry in cells.values() for s in STATUSES)
    report = {
        "sweep": spec.name,
        "metric": metric,
        "mode": mode,
        "total": spec.total_trials,
        "done": done,
        "running": sum(e["running"] for e in cells.values()),
        "remaining": spec.total_trials - done,
        "driver": "running" if live else "stopped",
        "cells": cells,
    }
    if spec.adaptive:
        report.update(_searches(root, cells))
    return report


def _searches(root: Path, cells: dict[str, Any]) -> dict[str, Any]:
    """An adaptive sweep: each group's bracket and n* so far, and only the cells probed; its total is
    the most the searches can take, and what is left is what the open searches may still need."""
    from orchestrator.spec.plan import load_plan
    from orchestrator.spec.probes import probes_of

    plan, trials = load_plan(root), read_trials(root)
    probes = probes_of(plan, trials.to_pylist() if trials is not None else [])
    searches = probes.table()
    most = plan.spec.most_trials
    done = sum(entry[s] for entry in cells.values() for s in STATUSES)
    return {
        "total": most,
        "remaining": 0 if probes.finished else max(0, most - done),
        "cells": {k: e for k, e in cells.items() if any(e[s] for s in (*STATUSES, "running"))},
        "adaptive": {"axis": probes.axis, "groups": searches},
    }


def _running(path: Path) -> list[str]:
    """The cells of the trials ``running.json`` lists (the live driver rewrites it every second)."""
    with reading(path, "the running driver rewrites it within a second: try again"):
        running = json.loads(path.read_text())
        if not isinstance(running, dict) or not all(isinstance(c, str) for c in running.values()):
            raise ValueError("expected a JSON object of trial id: cell")
        return list(running.values())


def format_status(report: dict[str, Any]) -> str:
    lines = [
        f"{report['sweep']}: {report['done']}/{report['total']} trials done, {report['running']} running, "
        f"{report['remaining']} to go; driver {report['driver']} (best {report['metric']}, {report['mode']})"
    ]
    if search := report.get("adaptive"):
        from orchestrator.answers.tables import (
            search_n_star,  # numpy and pandas: adaptive sweeps only
        )

        lines.append(
            f"adaptive {search['axis']}: per group, the bracket [fails at, succeeds at] and n*"
        )
        for g in search["groups"]:
            n_star = search_n_star(g)
            state = f"n* = {n_star}" if g["resolved"] else n_star
            flag = f"; not monotone at {g['non_monotone']}" if g["non_monotone"] else ""
            lines.append(
                f"  {g['group'] or '(all)'}: [{_or_dash(g['fails_at'])}, "
                f"{_or_dash(g['succeeds_at'])}] {state} after {g['probes']} probes{flag}"
            )
    columns = (*STATUSES, "running")
    width = max(len(k) for k in report["cells"])
    lines.append(f"{'cell':{width}s}  " + "  ".join(f"{s:>9s}" for s in columns) + "       best")
    for key, entry in report["cells"].items():
        best = f"{entry['best']:.4g}" if entry["best"] is not None else "-"
        lines.append(
            f"{key:{width}s}  " + "  ".join(f"{entry[s]:9d}" for s in columns) + f"  {best:>9s}"
        )
    return "\n".join(lines)


def _or_dash(value: Any) -> str:
    return "-" if value is None else str(value)
