"""The ``template`` trainable: template tasks (RESEARCH.md §1) with stacked models.

Modules: ``tasks`` (templates as data, vocabulary layout, sample generation, random templates),
``stacked`` (stacked parameters and the stacked fused Adam), ``transformer``, ``baselines`` (mlp,
mlp_xxt) and ``recurrent`` (rnn, lstm): the models; ``models`` (models by name), ``config`` (keys,
defaults, coercion, validation), ``training`` (the loop, evaluation, divergence, checkpoints).

Run one config: ``python -m trainables template task=copy embed_dim=64 n_train=64 seeds=3 --jsonl``.
"""
from __future__ import annotations

from ..api import TrainableDef
from ..registry import deferred_train, register
from .config import KEYS, STACKABLE, metrics, resolve, step_cost

train = deferred_train(f"{__name__}.training")  # the loop (training.py) needs torch; validation does not

TEMPLATE = register(TrainableDef(name="template", train=train, resolve=resolve, metrics=metrics,
                                 stackable=STACKABLE, step_cost=step_cost))

__all__ = ["KEYS", "TEMPLATE", "metrics", "resolve", "train"]
