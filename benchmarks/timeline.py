"""A sweep's timeline.json (``scalesweep run --profile``) as a Gantt chart and as seconds by phase.

    .venv/bin/python benchmarks/timeline.py results/<sweep>/timeline.json [--wall S] [-o PNG]

The seconds beyond the ideal (wall − the trials' own seconds / CPUs) are split into: the start-up
(process start to the first trial, when no core trains), the exit (the last trial's end to the process's
exit), and the middle: cores without a trial between the first start and the last end, per CPU.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _spans(doc: dict[str, Any]) -> list[tuple[str, float, float]]:
    return sorted(
        (t["worker"], t["start"], t["end"])
        for t in doc["trials"].values()
        if t.get("start") is not None and t.get("end") is not None
    )


def where_seconds_went(
    doc: dict[str, Any], wall: float, own: float, cpus: int
) -> list[tuple[str, float]]:
    """Seconds of wall beyond the ideal, by phase: start-up phases (between the driver's marks up to the
    first trial), the idle cores in the middle, the tail, the exit; the last line is their sum."""
    spans = _spans(doc)
    first, last = min(s for _, s, _ in spans), max(e for _, _, e in spans)
    out: list[tuple[str, float]] = []
    before = 0.0
    for name, at in doc["marks"]:
        if at <= first:
            out.append((f"start-up: until {name}", at - before))
            before = at
    out.append(("start-up: until the first trial started", first - before))
    busy = sum(min(e, last) - max(s, first) for _, s, e in spans)  # driver-side spans
    out.append(("middle: cores without a trial, per CPU", (last - first) - busy / cpus))
    out.append(("middle: trials' spans beyond their own seconds", (busy - own) / cpus))
    after = last
    for name, at in doc["marks"]:
        if at > last:
            out.append((f"end: until {name}", at - after))
            after = at
    out.append(("end: until the process exited", wall - after))
    out.append(("total beyond the ideal", wall - own / cpus))
    return out


def draw_timeline(doc: dict[str, Any], wall: float, path: Path) -> Path:
    """Trials as bars on one lane per worker process, the driver's marks as labelled lines."""
    spans = _spans(doc)
    workers = sorted({w for w, _, _ in spans})
    fig, ax = plt.subplots(figsize=(11, 1.6 + 0.35 * len(workers) + 0.12 * len(doc["marks"])))
    for lane, worker in enumerate(workers):
        bars = [(s, e - s) for w, s, e in spans if w == worker]
        ax.broken_barh(bars, (lane - 0.35, 0.7), facecolors="tab:blue", edgecolor="white")
    for i, (name, at) in enumerate(doc["marks"]):
        ax.axvline(at, color="tab:red", lw=0.8, alpha=0.7)
        ax.text(at, len(workers) - 0.3 + 0.28 * (i % 4), f" {name}", fontsize=7, color="tab:red")
    ax.axvline(wall, color="black", lw=1)
    ax.text(wall, -0.9, " exit", fontsize=7)
    ax.set_yticks(range(len(workers)), [f"worker {w}" for w in workers], fontsize=7)
    ax.set_ylim(-1, len(workers) + 1)
    ax.set_xlim(0, wall * 1.02)
    ax.set_xlabel("seconds since the command started")
    ax.set_title(f"{len(spans)} Tune trials, {wall:.1f} s from the command to its exit", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("timeline", type=Path)
    parser.add_argument("--wall", type=float, help="the command's wall (default: its last mark)")
    parser.add_argument("-o", "--output", type=Path, default=Path("timeline.png"))
    args = parser.parse_args()
    doc = json.loads(args.timeline.read_text())
    wall = args.wall or doc["marks"][-1][1]
    print(draw_timeline(doc, wall, args.output))


if __name__ == "__main__":
    main()
