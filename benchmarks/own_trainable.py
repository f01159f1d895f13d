"""Per-trial cost of a researcher's trainable against a built-in one, on the same tiny trials.

    .venv/bin/python benchmarks/own_trainable.py [--trials 40] [--epochs 20] [--sleep 0.01] [--seeds 3]

Three sweeps of the same trials (the ``synthetic`` trainable's analytic curves: per epoch a sleep of
--sleep seconds and a few arithmetic operations per seed), each in a fresh process with its own local
Ray, MLflow on sqlite, ASHA off so every trial runs every epoch:
- built-in: ``trainable: synthetic`` (stacks its seeds itself: one sleep per epoch for all seeds);
- function: ``module:function`` in a module beside the spec (shipped to the workers), S seed replicas
  as threads in lockstep, each sleeping (side by side) and reporting per epoch;
- command: ``{command: python train.py}``, one process per seed, a JSON line per epoch.
It prints each sweep's wall per trial, its overhead per trial (wall per trial minus the trials' sleep per
trial on the CPUs: what running it costs beyond its own work) and both ratios to the built-in's.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import textwrap
from pathlib import Path

import yaml
from fresh import run_sweep

CURVE = textwrap.dedent("""
    import math, random, time

    def curve(config, epoch):
        floor = (math.log10(config["lr"]) + 2.5) ** 2 / (1.0 + config["size"])
        loss = floor + (1 - floor) * math.exp(-config["rate"] * epoch)
        noise = config["noise"] * random.Random(hash((config["seed"], epoch))).gauss(0, 1)
        return {"epoch": epoch, "train_loss": loss * 0.9, "test_loss": loss + noise}

    def train(config, report):
        for epoch in range(1, config["epochs"] + 1):
            time.sleep(config["sleep_s"])
            report(curve(config, epoch))
""")
COMMAND = textwrap.dedent("""
    import json, os
    from ownbench import curve
    import time
    config = json.loads(os.environ["SCALESWEEP_CONFIG"])
    for epoch in range(1, config["epochs"] + 1):
        time.sleep(config["sleep_s"])
        print(json.dumps(curve(config, epoch)), flush=True)
""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--sleep", type=float, default=0.01)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    fixed = {"epochs": args.epochs, "sleep_s": args.sleep, "size": 1.0, "rate": 0.3}
    kinds = {
        "built-in": "synthetic",
        "function": "ownbench:train",
        "command": {"command": f"{sys.executable} train_cmd.py"},
    }
    print(
        f"{args.trials} trials × {args.epochs} epochs × {args.seeds} seeds, {args.sleep}s sleep per epoch, "
        f"{os.cpu_count()} CPUs"
    )
    per_trial: dict[str, float] = {}
    overhead: dict[str, float] = {}
    ideal = (
        args.epochs * args.sleep / (os.cpu_count() or 1)
    )  # the trials' own sleep, per trial, on all CPUs
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "ownbench.py").write_text(CURVE)
        (Path(tmp) / "train_cmd.py").write_text(COMMAND)
        for kind, trainable in kinds.items():
            spec = {
                "name": f"own-{kind}".replace(" ", ""),
                "trainable": trainable,
                "fixed": fixed,
                "axes": {"noise": [0.01]},
                "seeds": args.seeds,
                "search": {
                    "algorithm": "random",
                    "samples_per_cell": args.trials,
                    "space": {"lr": {"loguniform": [1e-4, 1e-1]}},
                },
                "resources": {"members_per_trial": 1},
            }
            path = Path(tmp) / f"{kind}.yaml"
            path.write_text(yaml.safe_dump(spec))
            run = run_sweep(path, Path(tmp) / kind)
            assert run["trials"] == args.trials, run
            per_trial[kind] = run["wall"] / run["trials"]
            overhead[kind] = per_trial[kind] - ideal
            print(
                f"  {kind:9s}: wall {run['wall']:6.1f}s, {1000 * per_trial[kind]:6.1f} ms per trial "
                f"({per_trial[kind] / per_trial['built-in']:4.2f}x built-in), overhead "
                f"{1000 * overhead[kind]:6.1f} ms per trial ({overhead[kind] / overhead['built-in']:4.2f}x)",
                flush=True,
            )


if __name__ == "__main__":
    main()
