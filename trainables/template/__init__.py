"""The ``template`` trainable: template tasks (see docs/science.md, Template tasks) with stacked models.

Modules: ``tasks`` (templates as data, vocabulary layout, random templates), ``sampling`` (sample
generation), ``transformer``, ``baselines`` (mlp, mlp_xxt) and ``recurrent`` (rnn, lstm): the models;
``models`` (models by name), ``config`` (keys, defaults, coercion, validation), ``training`` (data, sampler,
loss and evaluation plugged into the stacked loop of trainables/stacked/, which owns the optimizer,
divergence, dropping members and checkpoints).

Run one config: ``python -m trainables template task=copy embed_dim=64 n_train=64 seeds=3 --jsonl``.
"""

from __future__ import annotations

from typing import Any

from ..api import Reporter, Trainable
from .config import KEYS, STACKABLE, metrics, resolve, step_cost


def train(config: dict[str, Any], report: Reporter) -> None:
    """``training.train``, imported at the first call: it needs torch, and validating a spec must not."""
    from .training import train as run

    run(config, report)


TEMPLATE = Trainable(
    train=train,
    name="template",
    resolve=resolve,
    metrics=metrics,
    stackable=STACKABLE,
    step_cost=step_cost,
    stacks_seeds=True,
)

__all__ = ["KEYS", "TEMPLATE", "metrics", "resolve", "train"]
