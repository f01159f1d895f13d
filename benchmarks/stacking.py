"""Stacked seeds vs sequential runs: the copy-task transformer, S seeds as one model vs S runs of one.

    .venv/bin/python benchmarks/stacking.py [--seeds 8] [--epochs 20] [--threads 1]

For each width × n_train: seconds per model-epoch stacked and sequential (both measured here, one
after the other, same process and threads), their ratio, and the largest difference between a
member's final test loss stacked and the same seed run alone (the stack must not change results).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainables.template.training import train  # noqa: E402

WIDTHS = (32, 64, 128, 256)
N_TRAIN = (16, 64, 256)


def _run(config: dict) -> tuple[float, list[float]]:
    """Wall seconds and the per-seed final test losses of one training run."""
    reports: list[dict] = []
    start = time.perf_counter()
    train(config, reports.append)
    return time.perf_counter() - start, reports[-1]["seed_metrics"]["test_loss"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.seeds} seeds, {args.epochs} epochs, {args.threads} torch thread(s); s per model-epoch")
    print(f"{'width':>5} {'n':>4} {'stacked':>9} {'sequential':>10} {'speedup':>7} {'max |Δ loss|':>12}")
    for width in WIDTHS:
        for n in N_TRAIN:
            base = {"task": "copy", "model": "transformer", "depth": 1, "heads": 1, "embed_dim": width,
                    "n_train": n, "n_test": 256, "epochs": args.epochs, "eval_every": args.epochs, "lr": 1e-3}
            stacked_s, stacked = _run({**base, "seeds": args.seeds})
            alone = [_run({**base, "seeds": 1, "seed": s}) for s in range(args.seeds)]
            sequential_s = sum(seconds for seconds, _ in alone)
            delta = max(abs(a - b[0]) for a, (_, b) in zip(stacked, alone))
            per = args.seeds * args.epochs
            print(f"{width:5d} {n:4d} {stacked_s / per * 1e3:7.2f}ms {sequential_s / per * 1e3:8.2f}ms "
                  f"{sequential_s / stacked_s:6.2f}x {delta:12.1e}", flush=True)


if __name__ == "__main__":
    main()
