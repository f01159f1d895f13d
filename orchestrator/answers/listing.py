"""``scalesweep ls``: the sweeps under a results root, one line each, to find a past sweep again.

It reads what ``scalesweep status`` reads (``spec.yaml``, ``trials.parquet``, the driver's lock) and
the sweep's plan, for its metric and for whether the recorded trials are the whole sweep. A damaged
sweep is listed with the one-line reason it cannot be read, so one bad directory hides no other.

States: running (a live driver holds it), finished (every trial recorded), stopped (no driver and some
trials recorded: ``scalesweep resume`` continues it), incomplete (no driver and no trial recorded) and
damaged (a file it needs cannot be read).
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestrator.answers.status import sweep_status
from orchestrator.spec.plan import SWEEP_FILE, load_plan
from orchestrator.spec.probes import sweep_complete
from orchestrator.spec.schema import SpecError
from orchestrator.store.results import STATUSES, read_trials, sweep_span

_HEADER = ("sweep", "state", "trials", "wall", "best", "started", "ended")


def _is_sweep(path: Path) -> bool:
    return path.is_dir() and any((path / f).exists() for f in ("spec.yaml", SWEEP_FILE))


def list_sweeps(root: Path) -> list[dict[str, Any]]:
    """One entry per sweep under ``root`` (or ``root`` alone when it is a sweep), oldest first."""
    if not root.is_dir():
        raise SpecError(
            f"{root}: not a directory; expected a results root holding results/<sweep> directories"
        )
    roots = [root] if _is_sweep(root) else [d for d in sorted(root.iterdir()) if _is_sweep(d)]
    entries = [_entry(d) for d in roots]
    return sorted(entries, key=lambda e: e["started_ts"])


def _started(root: Path) -> float:
    """When the sweep started by its files, for sorting a damaged one: ``sweep.json`` is written then and
    never again (``spec.yaml`` may be edited before a resume); without one, its ``spec.yaml``."""
    sweep = root / SWEEP_FILE
    return (sweep if sweep.exists() else root / "spec.yaml").stat().st_mtime


def _entry(root: Path) -> dict[str, Any]:
    started = _started(root)
    try:
        return _read(root, started)
    except (SpecError, OSError) as err:
        return {
            "sweep": root.name,
            "path": str(root),
            "state": "damaged",
            "reason": str(err),
            "started_ts": started,
        }


def _read(root: Path, fallback: float) -> dict[str, Any]:
    """A readable sweep's entry (``fallback``: its start by file time, for a sweep that recorded none);
    raises SpecError (or OSError) when a file it needs cannot be read."""
    status = sweep_status(root)
    plan = load_plan(root)
    trials = read_trials(root)
    rows = trials.to_pylist() if trials is not None else []
    cells = status["cells"].values()
    counts = {s: sum(c[s] for c in cells) for s in (*STATUSES, "running")}
    bests = [c["best"] for c in cells if c["best"] is not None]
    if status["driver"] == "running":
        state = "running"
    elif sweep_complete(plan, rows):
        state = "finished"
    else:
        state = "stopped" if rows else "incomplete"
    started, ended = sweep_span(root, plan, (row.get("ended_at") for row in rows))
    started = started if started is not None else fallback
    if state == "running":
        ended = None
        wall: float | None = time.time() - started
    else:
        wall = ended - started if ended is not None else None
    return {
        "sweep": plan.spec.name,
        "path": str(root),
        "state": state,
        "trials": counts,
        "recorded": status["done"],
        "total": status["total"],
        "wall_s": wall,
        "metric": plan.metric,
        "mode": plan.mode,
        "best": (min(bests) if plan.mode == "min" else max(bests)) if bests else None,
        "started": _iso(started),
        "ended": _iso(ended) if ended is not None else None,
        "started_ts": started,
    }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def as_json(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries without their sort key (the ISO times say the same)."""
    return [{k: v for k, v in e.items() if k != "started_ts"} for e in entries]


def format_listing(entries: list[dict[str, Any]], root: Path) -> str:
    """Aligned columns, newest last; a damaged sweep's reason runs on past its state."""
    if not entries:
        return f"{root}: no sweeps here (a sweep is a directory holding spec.yaml)"
    rows = [_HEADER, *(_cells(e) for e in entries)]
    full = [r for r in rows if len(r) == len(_HEADER)]
    widths = [max(len(r[i]) for r in full) for i in range(len(_HEADER) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, [*widths, 0])).rstrip() for r in rows)


def _cells(e: dict[str, Any]) -> tuple[str, ...]:
    if e["state"] == "damaged":
        return e["sweep"], e["state"], e["reason"]
    counts = ", ".join(f"{n} {s}" for s, n in e["trials"].items() if n) or "none"
    best = f"{e['metric']} {e['best']:.4g} ({e['mode']})" if e["best"] is not None else "-"
    return (
        e["sweep"],
        e["state"],
        f"{e['recorded']}/{e['total']}: {counts}",
        _duration(e["wall_s"]) if e["wall_s"] is not None else "-",
        best,
        _local(e["started"]),
        _local(e["ended"]) if e["ended"] else "-",
    )


def _local(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M")


def _duration(seconds: float) -> str:
    """3s, 4m 05s, 2h 07m, 3d 04h: two units at most, enough to tell sweeps apart."""
    s = round(seconds)
    for unit, size, small, small_size in (
        ("d", 86400, "h", 3600),
        ("h", 3600, "m", 60),
        ("m", 60, "s", 1),
    ):
        if s >= size:
            return f"{s // size}{unit} {s % size // small_size:02d}{small}"
    return f"{s}s"
