"""Trials per hour with K members per Tune trial: a copy-task sweep, K = 1, 4, 16, 64, one run each.

    .venv/bin/python benchmarks/packing.py [--trials 128] [--epochs 40] [--members 1 4 16 64]

Each run is a sweep of --trials configs of one cell (the copy-task transformer, width 32, 16 samples,
2 seeds, --epochs epochs; a seeded random search over lr and weight decay, so every K trains the same
configs) with ``resources.members_per_trial: K``, in a fresh process with its own local Ray; the wall
is measured around the sweep (Ray's start excluded). Ratios are trials/hour over K = 1's in this run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from fresh import COPY_TASK, run_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--members", type=int, nargs="+", default=[1, 4, 16, 64])
    args = parser.parse_args()
    print(
        f"{args.trials} trials of {args.epochs} epochs on {os.cpu_count()} CPUs; trials/hour by members per trial"
    )
    rates: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k in args.members:
            spec = {
                "name": f"packing-{k}",
                "trainable": "template",
                "fixed": {**COPY_TASK, "epochs": args.epochs},
                "axes": {"n_train": [COPY_TASK["n_train"]]},
                "seeds": 2,
                "metric": {"name": "test_error"},
                "search": {
                    "algorithm": "random",
                    "samples_per_cell": args.trials,
                    "space": {
                        "lr": {"loguniform": [1e-3, 1e-2]},
                        "weight_decay": {"uniform": [0, 0.1]},
                    },
                },
                "resources": {"members_per_trial": k},
            }
            spec["fixed"].pop("n_train")
            run = run_sweep(spec, Path(tmp) / f"k{k}")
            assert run["trials"] == args.trials, run
            rates[k] = run["trials"] / run["wall"] * 3600
            print(
                f"  K = {k:3d}: wall {run['wall']:6.1f}s, {rates[k]:9.0f} trials/hour, "
                f"{rates[k] / rates[args.members[0]]:5.2f}x K = {args.members[0]}",
                flush=True,
            )


if __name__ == "__main__":
    main()
