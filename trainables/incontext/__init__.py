"""The ``incontext`` trainable: in-context logistic regression (TART) and linear regression (Garg et al.).

Modules: ``tasks`` (per-sequence samplers), ``model`` (stacked GPT-2 with read-in/read-out),
``curriculum`` (on d and k), ``evaluation`` (fixed evaluation set; per-position model, oracle and
baseline scores), ``config`` (keys, defaults, validation, metrics and curves), ``training`` (model, sampler,
loss and evaluation plugged into the stacked loop of trainables/stacked/, which owns the optimizer,
divergence, dropping members and checkpoints). The science: docs/science.md, In-context logistic regression.

Run one config: ``python -m trainables incontext task=logistic_regression d=16 k=64 alpha=10
embed_dim=64 depth=4 heads=4 steps=2000 lr=1e-3 eval_every=500 seeds=2 --jsonl``.
"""

from __future__ import annotations

from typing import Any

from ..api import Reporter, Trainable
from .config import KEYS, STACKABLE, curves, metrics, resolve, step_cost


def train(config: dict[str, Any], report: Reporter) -> None:
    """``training.train``, imported at the first call: it needs torch, and validating a spec must not."""
    from .training import train as run

    run(config, report)


INCONTEXT = Trainable(
    train=train,
    name="incontext",
    resolve=resolve,
    metrics=metrics,
    curves=curves,
    horizon="steps",
    stackable=STACKABLE,
    step_cost=step_cost,
    stacks_seeds=True,
)

__all__ = ["INCONTEXT", "KEYS", "curves", "metrics", "resolve", "train"]
