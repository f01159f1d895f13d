"""Draws docs/incontext_escape.png and .svg from runs of the ``incontext`` trainable: per seed, test
accuracy against the training step, and the fraction of seeds that have left the loss plateau (test
accuracy ≥ 0.6) by each step: the distribution of steps-to-escape, seeds that never leave censored at
the last step. Prints a Markdown row per run.

Why: at TART's optimisation (Adam lr 1e-4 constant, no curriculum) a CPU-sized model never leaves the plateau (test
accuracy stays at chance, 0.5); this figure is the evidence for the trainable's defaults
(docs/science.md, Leaving the plateau). Each run is the JSON lines the trainable's CLI prints, one
setting, its seeds stacked; its label is the file's name. The figure's runs (4 seeds each, d = 4,
k = 32, width 64, depth 2, 2 heads, batch 128, 1500 steps, 15-20 CPU-minutes each):

    B="task=logistic_regression d=4 k=32 alpha=10 embed_dim=64 depth=2 heads=2 steps=1500 seeds=4 eval_every=100"
    run() { OMP_NUM_THREADS=1 .venv/bin/python -m trainables incontext $B "${@:2}" --jsonl > "$1.jsonl"; }
    run "defaults (lr 1e-3)"; run "lr 5e-4" lr=5e-4; run "lr 2e-3" lr=2e-3
    run "lr 2e-3, cosine" lr=2e-3 lr_schedule=cosine; run "lr 2e-3, no curriculum" lr=2e-3 curriculum=none
    run "lr 1e-4 (TART's)" lr=1e-4
    .venv/bin/python docs/incontext_escape.py "defaults (lr 1e-3).jsonl" ...

A seed leaves the plateau at its first evaluation with test_acc ≥ 0.6 (mean over the k positions; on
the plateau it stays below 0.55); the table also gives the first at ≥ 0.8 (the fitted logistic
regression's is 0.85, the oracle's 0.96).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent
ESCAPED, LEAVING = 0.8, 0.6
Curve = list[tuple[int, float]]


def curves(path: Path) -> dict[int, Curve]:
    """Per seed, (step, test_acc) at every evaluation of one run's JSON lines."""
    out: dict[int, Curve] = {}
    for line in path.read_text().splitlines():
        report = json.loads(line)
        for _member, seed, _diverged, metrics, _curves in report["rows"]:
            out.setdefault(seed, []).append((report["epoch"], metrics["test_acc"]))
    return out


def escape_step(curve: Curve, threshold: float) -> int | None:
    """The first evaluated step with test_acc ≥ ``threshold``; None: censored (never within the run)."""
    return next((step for step, acc in curve if acc >= threshold), None)


def median_text(steps: list[int | None], last: int) -> str:
    """The median over seeds, censored ones counted as never: '> last' when half or more never got there."""
    median = statistics.median([s if s is not None else float("inf") for s in steps])
    return f"> {last}" if median == float("inf") else f"{median:g}"


def fraction_curve(steps: list[int | None], last: int) -> tuple[list[float], list[float]]:
    """The fraction of seeds escaped by each step, as a post-step function from 0 to ``last``."""
    done = sorted(s for s in steps if s is not None)
    xs = [0.0, *done, float(last)]
    ys = [0.0, *(i / len(steps) for i in range(1, len(done) + 1)), len(done) / len(steps)]
    return xs, ys


def main(paths: list[Path]) -> None:
    fig, (ax_acc, ax_esc) = plt.subplots(1, 2, figsize=(10, 3.8))
    print(
        f"| run | seeds ≥ {LEAVING} | median steps to {LEAVING} | seeds ≥ {ESCAPED} | "
        f"median steps to {ESCAPED} | test_acc at the end (mean; per seed) |"
    )
    print("|---|---|---|---|---|---|")
    last = 0
    for i, path in enumerate(paths):
        name, color, per_seed = path.stem, f"C{i}", curves(path)
        last = max(last, *(c[-1][0] for c in per_seed.values()))
        finals = [c[-1][1] for c in per_seed.values()]
        cells = []
        for threshold in (LEAVING, ESCAPED):
            steps = [escape_step(c, threshold) for c in per_seed.values()]
            n = sum(s is not None for s in steps)
            cells += [f"{n} of {len(steps)}", median_text(steps, last)]
            if threshold == LEAVING:
                ax_esc.step(
                    *fraction_curve(steps, last),
                    where="post",
                    color=color,
                    label=f"{name} ({n}/{len(steps)})",
                )
        print(
            f"| {name} | {' | '.join(cells)} | {statistics.mean(finals):.3f}; "
            f"{' '.join(f'{a:.2f}' for a in finals)} |"
        )
        for j, curve in enumerate(per_seed.values()):
            ax_acc.plot(*zip(*curve), color=color, lw=1, alpha=0.7, label=name if j == 0 else None)
    for threshold in (ESCAPED, LEAVING):
        ax_acc.axhline(threshold, color="grey", ls=":", lw=1)
    ax_acc.set(xlabel="training step", ylabel="test accuracy (mean over k)", ylim=(0.45, 1.0))
    ax_acc.set_title("each seed", fontsize=10)
    ax_acc.legend(fontsize=8, loc="upper left")
    ax_esc.set(
        xlabel="training step",
        ylabel=f"fraction of seeds at test_acc ≥ {LEAVING}",
        xlim=(0, last),
        ylim=(-0.02, 1.02),
    )
    ax_esc.set_title(f"steps to leave the plateau (censored at {last})", fontsize=10)
    ax_esc.legend(fontsize=8, loc="upper left")
    fig.suptitle(
        "In-context logistic regression, d = 4, k = 32, GPT-2 64/2/2, batch 128", fontsize=11
    )
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(HERE / f"incontext_escape.{ext}", dpi=110)
        print(HERE / f"incontext_escape.{ext}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(
            "usage: docs/incontext_escape.py RUN.jsonl ... (see the docstring for the runs)"
        )
    main([Path(p) for p in sys.argv[1:]])
