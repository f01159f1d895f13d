"""What the sqlite shortcuts save MLflow's tracking process: a new database, and metric values.

    .venv/bin/python benchmarks/mlflow_sqlite.py [--rounds 3] [--runs 48] [--values 480]

Each round, in alternating order, in fresh interpreters (MLflow imported before the clock starts):
- a new database opened by MLflow (its migrations) against one copied from the migrated template
  (``prepare``; the template is built before the first round and not timed);
- ``--runs`` runs × ``--values`` metric values (8 keys, one batch per run, as the tracking process
  writes a finished trial's) through MLflow's ``log_batch`` against ``insert_metrics``.
Prints CPU seconds of each, the medians and their ratios. The defaults are the orchestration
benchmark's sweep: 48 trials, about 23,000 values.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from fresh import run_json

_CHILD = """
import json, os, sys, time
from pathlib import Path
way, work, runs, values = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
os.environ["XDG_CACHE_HOME"] = str(work.parent / "cache")  # one template for every round
os.chdir(work)
from mlflow import MlflowClient
from mlflow.entities import Metric
from orchestrator.store.mlflow_sqlite import insert_metrics, prepare
uri = f"sqlite:///{work / way}.db"
t = time.process_time()
if way == "template":
    prepare(uri)
client = MlflowClient(uri)
experiment = client.create_experiment("x")
opened = time.process_time() - t
ids = [client.create_run(experiment).info.run_id for _ in range(runs)]
keys = [f"metric_{k}" for k in range(8)]
batches = [
    [Metric(keys[i % 8], i * 0.5, 1_700_000_000_000 + i, i // 8) for i in range(values)] for _ in ids
]
t = time.process_time()
for run_id, batch in zip(ids, batches):
    if way == "template":
        assert insert_metrics(uri, run_id, batch)
    else:
        for i in range(0, len(batch), 1000):
            client.log_batch(run_id, metrics=batch[i : i + 1000])
print(json.dumps({"open": opened, "metrics": time.process_time() - t}))
"""


def _once(way: str, work: Path, runs: int, values: int) -> dict[str, float]:
    """One way in a fresh interpreter; the template cache is ``work``'s parent's."""
    work.mkdir()
    return run_json(_CHILD, way, str(work), str(runs), str(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=48)
    parser.add_argument("--values", type=int, default=480, help="metric values per run")
    args = parser.parse_args()
    ways = {"mlflow": "MLflow's own", "template": "the shortcuts"}
    seen: dict[str, dict[str, list[float]]] = {w: {"open": [], "metrics": []} for w in ways}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = list(ways) if r % 2 else list(reversed(ways))
            for way in order:
                if r == 0 and way == order[0]:
                    _once("template", Path(tmp) / "build", 0, 0)  # builds the template, untimed
                got = _once(way, Path(tmp) / f"{r}-{way}", args.runs, args.values)
                print(
                    f"round {r + 1} {ways[way]:13s} new database {got['open']:5.2f} CPU s, "
                    f"{args.runs * args.values} values {got['metrics']:5.2f} CPU s",
                    flush=True,
                )
                for k, v in got.items():
                    seen[way][k].append(v)
    print()
    for part, label in (("open", "new database"), ("metrics", "metric values")):
        ours, theirs = (statistics.median(seen[w][part]) for w in ("template", "mlflow"))
        print(
            f"{label:14s} MLflow {theirs:5.2f} CPU s, shortcut {ours:5.2f} CPU s: {ours / theirs:.2f}×"
        )


if __name__ == "__main__":
    main()
