"""The adaptive data axis against the full grid, in one run: a copy-task study at the paper's training
budget (depth 2, lr 1e-3, 1000 epochs, full batch), widths 32-128 and n_train 4-1024. It prints n* per
width from each, the probes each group took, and the CPU-seconds and wall each spent.

    .venv/bin/python benchmarks/adaptive.py            # the study (minutes on 2 cores)
    .venv/bin/python benchmarks/adaptive.py --epochs 100   # a quicker look
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd
from fresh import run_sweep

WIDTHS = [32, 64, 128]
N_TRAIN = [4, 8, 16, 32, 64, 128, 256, 512, 1024]


def study(epochs: int, adaptive: bool) -> dict:
    """The spec: the CPU-sized copy study's model (copy_inverse_scaling-small.yaml) trained for
    ``epochs``, vanilla transformer, one seed."""
    n_train = {"adaptive": {"low": N_TRAIN[0], "high": N_TRAIN[-1]}} if adaptive else N_TRAIN
    return {
        "name": "adaptive" if adaptive else "grid",
        "trainable": "template",
        "fixed": {
            "task": "copy",
            "model": "transformer",
            "depth": 2,
            "heads": 2,
            "dim_head": 64,
            "mlp_dim": 256,
            "epochs": epochs,
            "batch_size": 1024,
            "lr": 1e-3,
            "eval_every": max(1, epochs // 10),
            "n_test": 256,
            "test_alphabet": 256,
        },
        "axes": {"embed_dim": WIDTHS, "n_train": n_train},
        "search": {"algorithm": "grid-only"},
        "metric": {"name": "test_error", "mode": "min"},
        "report_every_s": 5,
        "curves": [
            {
                "kind": "sample_complexity",
                "x": "n_train",
                "y": "test_error",
                "by": ["embed_dim"],
                "threshold": 0.05,
            }
        ],
    }


def n_star(root: Path) -> pd.Series:
    table = pd.read_parquet(root / "curves" / "sample_complexity.parquet")
    return table.set_index("embed_dim")["n_star"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        runs = {}
        for adaptive in (False, True):
            spec = study(args.epochs, adaptive)
            runs[spec["name"]] = run_sweep(spec, Path(work)) | {"root": Path(work) / spec["name"]}
        grid, search = runs["grid"], runs["adaptive"]
        probes = pd.read_parquet(search["root"] / "trials.parquet").groupby("embed_dim").size()
        table = pd.DataFrame(
            {
                "n* grid": n_star(grid["root"]),
                "n* adaptive": n_star(search["root"]),
                "probes": probes,
                "grid cells": len(N_TRAIN),
            }
        )
        print(f"copy task, vanilla transformer, {args.epochs} epochs, 1 seed, threshold 0.05")
        print(table.to_string())
        same = (table["n* grid"].fillna(-1) == table["n* adaptive"].fillna(-1)).all()
        print(f"same n* on every width: {same}")
        print(
            f"CPU-seconds of training: grid {grid['own']:.0f}, adaptive {search['own']:.0f} "
            f"(ratio {search['own'] / grid['own']:.2f}); wall: grid {grid['wall']:.0f} s, "
            f"adaptive {search['wall']:.0f} s (ratio {search['wall'] / grid['wall']:.2f}); "
            f"trials: {grid['trials']} vs {search['trials']}"
        )


if __name__ == "__main__":
    main()
