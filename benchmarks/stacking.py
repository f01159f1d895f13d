"""Stacked seeds vs sequential runs: the copy-task transformer, S seeds as one model vs S runs of one.

    .venv/bin/python benchmarks/stacking.py [--seeds 8] [--epochs 20] [--threads 1] [--repeats 3]
                                            [--widths 32 64 128 256] [--n 16 64 256]
                                            [--n-test 256] [--eval-every EPOCHS]

For each width × n_train: seconds per model-epoch stacked and sequential, their ratio, and the largest
difference between a member's final test loss stacked and the same seed run alone (the stack must not
change results). Each side's time is one whole run per model as a sweep pays it (data, model build,
every epoch, the final evaluation), the best of ``--repeats`` rounds; a round runs the stack and then
the S single runs, so a burst of load elsewhere on the machine hits one round, not the comparison. With
one torch thread the time is this process's CPU time (on an idle machine the wall time; on a shared one
it leaves out the time other processes hold the core), with more threads the wall time. An untimed run
before the table pays the process's one-time costs (imports, lazy initialisation).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainables import Report, Reporter  # noqa: E402
from trainables.stacked.process import configure_process  # noqa: E402
from trainables.template.training import train  # noqa: E402

WIDTHS = (32, 64, 128, 256)
N_TRAIN = (16, 64, 256)


def _run(config: dict, clock=time.perf_counter) -> tuple[float, list[float]]:
    """Seconds by ``clock`` and the per-seed final test losses of one training run."""
    reports: list[Report] = []
    start = clock()
    train(config, Reporter(reports.append))
    return clock() - start, [row.metrics["test_loss"] for row in reports[-1].rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--widths", type=int, nargs="+", default=WIDTHS)
    parser.add_argument("--n", type=int, nargs="+", default=N_TRAIN, help="n_train values")
    parser.add_argument(
        "--repeats", type=int, default=3, help="rounds per row; each side's best is reported"
    )
    parser.add_argument(
        "--n-test", type=int, default=256, help="test samples (the trainable's default is 1024)"
    )
    parser.add_argument(
        "--eval-every",
        type=int,
        default=0,
        help="evaluate every k epochs (the trainable's default is 1); 0: at the last epoch only",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    configure_process()  # as a trial's worker does (both sides alike)
    clock = time.process_time if args.threads == 1 else time.perf_counter
    every = args.eval_every or args.epochs
    print(
        f"{args.seeds} seeds, {args.epochs} epochs, {args.threads} torch thread(s), best of {args.repeats}, "
        f"n_test {args.n_test} evaluated every {every} epochs; {'CPU' if args.threads == 1 else 'wall'} time "
        f"per model-epoch, setup and evaluations included"
    )
    print(
        f"{'width':>5} {'n':>4} {'stacked':>9} {'sequential':>10} {'speedup':>7} {'max |Δ loss|':>12}"
    )
    _run(
        {
            "task": "copy",
            "model": "transformer",
            "depth": 1,
            "heads": 1,
            "embed_dim": 32,
            "n_train": 16,
            "n_test": 16,
            "epochs": 2,
            "seeds": 2,
        }
    )  # warm-up, untimed
    for width in args.widths:
        for n in args.n:
            base = {
                "task": "copy",
                "model": "transformer",
                "depth": 1,
                "heads": 1,
                "embed_dim": width,
                "n_train": n,
                "n_test": args.n_test,
                "epochs": args.epochs,
                "eval_every": every,
                "lr": 1e-3,
            }
            stacked_s = sequential_s = float("inf")
            delta = 0.0
            for _ in range(args.repeats):
                seconds, stacked = _run({**base, "seeds": args.seeds}, clock)
                alone = [_run({**base, "seeds": 1, "seed": s}, clock) for s in range(args.seeds)]
                stacked_s = min(stacked_s, seconds)
                sequential_s = min(sequential_s, sum(seconds for seconds, _ in alone))
                delta = max(delta, *(abs(a - b[0]) for a, (_, b) in zip(stacked, alone)))
            per = args.seeds * args.epochs
            print(
                f"{width:5d} {n:4d} {stacked_s / per * 1e3:7.2f}ms {sequential_s / per * 1e3:8.2f}ms "
                f"{sequential_s / stacked_s:6.2f}x {delta:12.1e}",
                flush=True,
            )


if __name__ == "__main__":
    main()
