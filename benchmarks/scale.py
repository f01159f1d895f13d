"""Driver cost at scale: peak RSS as trials accumulate, per-trial overhead, `status` latency.

    .venv/bin/python benchmarks/scale.py [--trials 2000] [--members 1 16] [--status-trials 10000]

Runs ``scalesweep run`` on N trivial trials (the synthetic trainable, one epoch, no sleep) with
per-cell Optuna, Parquet and no MLflow, as a user would, once per --members K (members per Tune
trial), and samples the driver's peak RSS (VmHWM) when 25%, 50% and 100% of the trials are done.
Ratios, all from this run:
- RSS growth: peak at N over peak at N/4; memory that grows linearly with trials shows as ≈ 4.
- per-trial overhead: (wall − the trials' own seconds / CPUs) / N, and the steady-state seconds per
  trial between N/4 and N done (Ray's start excluded).
- packing: per-trial overhead with K members per Tune trial against the first --members value.
- status: ``sweep_status`` on a results directory of --status-trials trials, against one of 100.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _spec(name: str, trials: int, members: int = 1) -> dict:
    cells = 50
    sizes = list(range(1, 11))
    rates = [round(0.1 * (i + 1), 1) for i in range(cells // len(sizes))]
    return {
        "name": name,
        "trainable": "synthetic",
        "fixed": {"epochs": 1},
        "axes": {"size": sizes, "rate": rates},
        "search": {
            "samples_per_cell": math.ceil(trials / cells),
            "space": {"lr": {"loguniform": [1e-4, 1e-1]}},
        },
        "storage": {"tracking_uri": None},
        "checkpoint_every_s": 0,
        "resources": {"members_per_trial": members},
    }


def _hwm_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1))


def run_sweep(trials: int, members: int, work: Path) -> dict:
    """The CLI in a subprocess; the driver's peak RSS read from /proc at the progress milestones."""
    work.mkdir()
    spec = _spec("scale", trials, members)
    total = spec["search"]["samples_per_cell"] * 50
    (work / "spec.yaml").write_text(yaml.safe_dump(spec))
    marks: dict[int, float] = {}
    at: dict[int, float] = {}
    wanted = {total // 4, total // 2, total}
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", "spec.yaml"],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    for line in proc.stdout:
        done = re.match(r"\[(\d+)/\d+", line)
        if done and (n := int(done.group(1))) in wanted:
            marks[n], at[n] = _hwm_kib(proc.pid) / 1024, time.monotonic() - start
            print(
                f"  {n:6d} trials done at {at[n]:6.1f}s, driver peak RSS {marks[n]:.0f} MiB",
                flush=True,
            )
    if proc.wait() != 0:
        raise SystemExit(f"the sweep failed (exit {proc.returncode})")
    wall = time.monotonic() - start
    own = pq.read_table(work / "results" / "scale" / "trials.parquet", columns=["seconds"]).column(
        0
    )
    return {"total": total, "wall": wall, "own": sum(own.to_pylist()), "rss": marks, "at": at}


def status_latency(trials: int, work: Path) -> float:
    """Seconds for ``sweep_status`` on a finished sweep of ``trials`` rows (best of 5)."""
    from orchestrator.answers.status import sweep_status
    from orchestrator.spec.plan import plan_sweep
    from orchestrator.spec.schema import dump_spec, parse_spec
    from orchestrator.store.results import TRIALS_FILE, trials_schema

    spec = parse_spec(_spec(f"status-{trials}", trials))
    plan = plan_sweep(spec, "bench")
    root = work / spec.name
    root.mkdir()
    (root / "spec.yaml").write_text(dump_spec(spec))
    cells = plan.cells
    rows = [
        {
            "trial_id": f"t{i:06d}",
            "cell": cells[i % len(cells)].key,
            **cells[i % len(cells)].values,
            "lr": 1e-3,
            "status": "completed",
            "epochs": 1,
            "seconds": 0.01,
            "error": None,
            "final_train_loss": 0.5,
            "best_train_loss": 0.5,
            "final_test_loss": 0.5 + i * 1e-6,
            "best_test_loss": 0.5,
        }
        for i in range(trials)
    ]
    pq.write_table(
        pa.Table.from_pylist(rows, schema=trials_schema(plan, plan.modes)), root / TRIALS_FILE
    )
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        report = sweep_status(root)
        best = min(best, time.perf_counter() - start)
    assert report["done"] == trials
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--members", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--status-trials", type=int, default=10_000)
    args = parser.parse_args()
    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sweeps = {}
        for k in args.members:
            print(
                f"sweep of {args.trials} trivial trials on {cpus} CPUs, {k} members per Tune trial:"
            )
            sweeps[k] = run_sweep(args.trials, k, work / f"k{k}")
        status_big = status_latency(args.status_trials, work)
        status_small = status_latency(100, work)
        cli_start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "orchestrator",
                "status",
                str(work / f"status-{args.status_trials}"),
            ],
            check=True,
            capture_output=True,
        )
        cli = time.perf_counter() - cli_start
    overheads = {}
    for k, sweep in sweeps.items():
        total, rss = sweep["total"], sweep["rss"]
        overheads[k] = (sweep["wall"] - sweep["own"] / cpus) / total
        quarter = (
            total // 4
        )  # steady state: from N/4 to N done, past Ray's start and the first trials
        steady = (sweep["at"][total] - sweep["at"][quarter]) / (total - quarter)
        print(
            f"\n{k} members per Tune trial: wall {sweep['wall']:.1f}s for {total} trials "
            f"({total / sweep['wall']:.1f} trials/s); trials' own time {sweep['own']:.1f}s"
        )
        print(
            f"  per-trial orchestration overhead: {overheads[k] * 1000:.1f} ms over the whole command (Ray's "
            f"start included), {steady * 1000:.1f} ms between {quarter} and {total} trials done"
        )
        print("  driver peak RSS: " + ", ".join(f"{n}: {m:.0f} MiB" for n, m in rss.items()))
        print(
            f"  RSS growth {total} vs {quarter} trials: {rss[total] / rss[quarter]:.2f}x (linear growth would be 4x)"
        )
    first = args.members[0]
    for k in args.members[1:]:
        print(
            f"per-trial overhead with {k} members per Tune trial: {overheads[first] / overheads[k]:.1f}x lower "
            f"than with {first}"
        )
    print(
        f"status on {args.status_trials} trials: {status_big * 1000:.0f} ms in-process, {cli:.2f}s as a CLI "
        f"(Python start included); {status_big / status_small:.1f}x the 100-trial time"
    )


if __name__ == "__main__":
    main()
