"""Whole-sweep overhead on short real trials: scalesweep against Ray Tune's defaults and plain
multiprocessing, on the same trials, each measured from its command's start to its exit.

    .venv/bin/python benchmarks/orchestration.py [--epochs 600] [--timeline PNG]

The sweep: the copy-task transformer at widths 32/48/64 × n_train 16/32/64/128, random search of 4 lr
per cell, 1 seed, ASHA that prunes nothing (grace period = epochs), MLflow on sqlite: 48 trials of about
2 s each when trained alone at the default 600 epochs. scalesweep runs it as a user would
(`scalesweep run SPEC --profile`), packed (its default: a cell's 4 samples as one stacked model) and
with one trial per config (`members_per_trial: 1`); Ray Tune (its defaults: one function trial per
config) and a multiprocessing pool then run the configs scalesweep recorded. Each runs in a fresh
interpreter and its wall is timed around the whole process, imports and exit included. Ratio = wall /
(the trials' seconds / CPUs), with the trials' seconds as each trains alone (the pool's: the work a user
asked for) and as each run counted its own (packed trials cost less): 1.0 is a machine that only trains.
With --timeline, the packed run's timeline.json is drawn as a Gantt chart (trials per worker, the
driver's phases as lines) and its seconds beyond the ideal are split by phase.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq
import yaml
from fresh import COPY_TASK, REPO
from timeline import draw_timeline, where_seconds_went

WIDTHS, SIZES, SAMPLES = [32, 48, 64], [16, 32, 64, 128], 4

TUNE_DEFAULTS = textwrap.dedent("""
    import json, sys, time
    import ray
    from ray import tune
    from orchestrator.tune.shipping import Shipped
    from orchestrator.tune.trial import TrialSettings, tune_function
    configs, work = json.loads(sys.argv[1]), sys.argv[2]
    ray.init(num_cpus={cpus}, include_dashboard=False, log_to_driver=False)
    settings = TrialSettings(Shipped(ref="template"), 1, "test_error", 1, 60)
    run = tune_function(settings)
    def trial(config):
        run(configs[config["i"]])
    trainable = tune.with_resources(trial, {{"cpu": 1}})
    tuner = tune.Tuner(trainable, param_space={{"i": tune.grid_search(list(range(len(configs))))}},
                       run_config=tune.RunConfig(storage_path=work, verbose=0))
    grid = tuner.fit()
    print(json.dumps({{"own": sum(r.metrics["time_total_s"] for r in grid)}}))
""")
"""Ray Tune as its docs show it: one function trial per recorded config, a grid over their indices."""

POOL = textwrap.dedent("""
    import json, sys, time
    from multiprocessing import get_context

    def train(config):
        import torch
        from trainables import Reporter, get_trainable, run_trainable
        torch.set_num_threads(1)
        start = time.perf_counter()
        run_trainable(get_trainable("template"), config, 1, Reporter())
        return time.perf_counter() - start

    if __name__ == "__main__":
        configs = json.loads(sys.argv[1])
        with get_context("spawn").Pool({cpus}) as pool:
            own = sum(pool.map(train, configs, chunksize=1))
        print(json.dumps({{"own": own}}))
""")
"""The practical limit: a process per CPU, each importing torch once and training trial after trial."""


def _spec(epochs: int, members: int | str = "auto") -> dict:
    fixed = {**COPY_TASK, "epochs": epochs}
    del fixed["embed_dim"], fixed["n_train"]
    return {
        "name": "orchestration",
        "trainable": "template",
        "fixed": fixed,
        "axes": {"embed_dim": WIDTHS, "n_train": SIZES},
        "search": {
            "algorithm": "random",
            "samples_per_cell": SAMPLES,
            "space": {"lr": {"loguniform": [1e-3, 1e-2]}},
        },
        "seeds": 1,
        "metric": {"name": "test_error", "mode": "min"},
        "scheduler": {"asha": {"grace_period": epochs}},
        "resources": {"members_per_trial": members},
        "storage": {"results": "results", "tracking_uri": "sqlite:///mlflow.db"},
    }


def _timed(argv: list[str], cwd: Path) -> tuple[float, str]:
    """A command's wall from its start to its exit, and its stdout."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed:\n{proc.stderr[-3000:]}")
    return wall, proc.stdout


def _script(name: str, code: str, work: Path, *args: str) -> tuple[float, dict]:
    """``code`` run as a script (a pool's spawned workers import it), its wall and last line as JSON."""
    path = work / f"{name}.py"
    path.write_text(code)
    wall, out = _timed([sys.executable, str(path), *args], work)
    return wall, json.loads(out.strip().splitlines()[-1])


def _recorded_configs(root: Path, spec: dict) -> tuple[list[dict], float]:
    """The configs scalesweep trained (fixed + axes + searched lr) and their own seconds, summed."""
    rows = pq.read_table(root / "trials.parquet").to_pylist()
    configs = [
        {**spec["fixed"], **{a: row[a] for a in spec["axes"]}, "lr": row["lr"]} for row in rows
    ]
    return configs, sum(row["seconds"] for row in rows)


def _scalesweep(spec: dict, work: Path) -> tuple[float, float, list[dict], dict]:
    """``scalesweep run --profile`` of ``spec`` in ``work``: its wall, its trials' own seconds, the
    configs it trained and its timeline."""
    work.mkdir()
    (work / "spec.yaml").write_text(yaml.safe_dump(spec))
    wall, _ = _timed([sys.executable, "-m", "orchestrator", "run", "spec.yaml", "--profile"], work)
    root = work / "results" / "orchestration"
    configs, own = _recorded_configs(root, spec)
    return wall, own, configs, json.loads((root / "timeline.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=600)
    parser.add_argument("--timeline", metavar="PNG", help="draw scalesweep's timeline here")
    args = parser.parse_args()
    cpus = os.cpu_count() or 1
    n = len(WIDTHS) * len(SIZES) * SAMPLES
    print(f"{n} trials of {args.epochs} epochs on {cpus} CPUs", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        runs: dict[str, tuple[float, float]] = {}
        ours, own, configs, doc = _scalesweep(_spec(args.epochs), work / "packed")
        runs["scalesweep"] = (ours, own)
        print(f"  scalesweep:          wall {ours:.1f}s, trials' own {own:.1f}s", flush=True)
        wall, own1, _, _ = _scalesweep(_spec(args.epochs, 1), work / "unpacked")
        runs["scalesweep unpacked"] = (wall, own1)
        print(f"  scalesweep unpacked: wall {wall:.1f}s, trials' own {own1:.1f}s", flush=True)
        wall, out = _script(
            "tune_defaults", TUNE_DEFAULTS.format(cpus=cpus), work, json.dumps(configs), tmp
        )
        runs["Ray Tune defaults"] = (wall, out["own"])
        print(f"  Ray Tune defaults:   wall {wall:.1f}s, trials' own {out['own']:.1f}s", flush=True)
        wall, out = _script("pool", POOL.format(cpus=cpus), work, json.dumps(configs))
        runs["multiprocessing"] = (wall, out["own"])
        print(f"  multiprocessing:     wall {wall:.1f}s, trials' own {out['own']:.1f}s", flush=True)
        if args.timeline:
            draw_timeline(doc, ours, Path(args.timeline))
            print(f"  timeline: {args.timeline}")
        print("scalesweep's seconds beyond its own ideal (wall - own / CPUs), by phase:")
        for phase, seconds in where_seconds_went(doc, ours, own, cpus):
            print(f"  {phase:38s} {seconds:6.1f}s")
    alone = runs["multiprocessing"][1]
    print(
        f"whole-sweep ratio, command start to exit: wall / (the trials' seconds / CPUs), the trials' "
        f"seconds as each trains alone (the pool's, {alone:.1f}s) and as each run counted its own"
    )
    print(f"  {'':20s} {'alone':>6s} {'own':>6s}")
    for name, (wall, own_s) in runs.items():
        print(f"  {name:20s} {wall / (alone / cpus):6.2f} {wall / (own_s / cpus):6.2f}")
    pool_wall = runs["multiprocessing"][0]
    print(f"scalesweep wall / multiprocessing wall = {ours / pool_wall:.2f}")


if __name__ == "__main__":
    main()
