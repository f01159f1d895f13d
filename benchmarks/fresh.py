"""Runs for benchmarks in a fresh Python process each (its own local Ray), so no run warms another."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COPY_TASK = {
    "task": "copy",
    "model": "transformer",
    "depth": 1,
    "heads": 1,
    "embed_dim": 32,
    "n_train": 16,
    "n_test": 256,
    "eval_every": 10,
}
"""The short real trial the orchestration and packing benchmarks sweep: the copy-task transformer at
width 32 on 16 samples (about a second on a core at 300 epochs)."""

SWEEP = textwrap.dedent("""
    import json, sys
    import pyarrow.parquet as pq
    from orchestrator.spec.plan import plan_sweep
    from orchestrator.tune.run import run_sweep
    from orchestrator.spec.schema import load_spec, parse_spec
    spec, work = sys.argv[1], sys.argv[2]
    plan = plan_sweep(load_spec(spec), spec) if spec.endswith(".yaml") else plan_sweep(parse_spec(json.loads(spec)))
    outcome = run_sweep(plan, work, "sqlite:///" + work + "/mlflow.db")
    own = sum(pq.read_table(outcome.results_dir / "trials.parquet", columns=["seconds"]).column(0).to_pylist())
    print(json.dumps({"wall": outcome.seconds, "own": own, "trials": sum(outcome.counts.values()),
                      "packs": sorted(set(plan.pack_sizes.values()))}))
""")
"""`scalesweep run` in-process on spec (argv 1: JSON, or a YAML file's path) under work (argv 2):
its wall (Ray's start excluded), the trials' own seconds, the trials recorded and the pack sizes used."""


def run_json(code: str, *args: str) -> dict:
    """Run ``code`` with ``args`` in a fresh interpreter; its last stdout line, as JSON."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_sweep(spec: dict | Path, work: Path) -> dict:
    return run_json(SWEEP, str(spec) if isinstance(spec, Path) else json.dumps(spec), str(work))
