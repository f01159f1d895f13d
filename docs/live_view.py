"""Redraws docs/live_view.png: the live view of a small copy-task sweep, captured from a pseudo-terminal.

.venv/bin/python docs/live_view.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from terminal import run_in_terminal  # noqa: E402

SPEC = {
    "name": "live-view",
    "trainable": "template",
    "fixed": {
        "task": "copy",
        "model": "transformer",
        "depth": 1,
        "heads": 1,
        "epochs": 300,
        "eval_every": 10,
        "n_test": 256,
    },
    "axes": {"embed_dim": [32, 64], "n_train": [8, 32, 128]},
    "search": {
        "algorithm": "optuna",
        "samples_per_cell": 2,
        "space": {"lr": {"loguniform": [1e-3, 1e-2]}},
    },
    "storage": {"results": "results", "tracking_uri": "sqlite:///mlflow.db"},
}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "live-view.yaml"
        spec.write_text(yaml.safe_dump(SPEC))
        screens = run_in_terminal(spec, Path(tmp), columns=100, lines=22)

    # the busiest moment: running trials that have reported, beside cells already done
    def busy(screen: list[str]) -> tuple[int, int]:
        reported = sum("epoch " in line and "epoch 0/" not in line for line in screen)
        return reported, sum(" 1/2 " in line or " 2/2 " in line for line in screen)

    best = max(screens, key=busy)
    text = "\n".join(line.rstrip() for line in best).rstrip()
    fig = plt.figure(figsize=(10, 0.19 * (text.count("\n") + 2)), facecolor="#1e1e1e")
    fig.text(0.01, 0.98, text, family="monospace", fontsize=9, color="#e6e6e6", va="top")
    out = HERE / "live_view.png"
    fig.savefig(out, dpi=110, facecolor=fig.get_facecolor())
    print(out)


if __name__ == "__main__":
    main()
