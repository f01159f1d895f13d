"""The ``template`` trainable: template tasks (RESEARCH.md §1) with stacked models.

Modules: ``tasks`` (templates as data, vocabulary layout, sample generation, random templates),
``stacked`` (stacked parameters and the stacked fused Adam), ``transformer``, ``baselines`` (mlp,
mlp_xxt) and ``recurrent`` (rnn, lstm): the models; ``models`` (models by name), ``config`` (keys,
defaults, coercion, validation), ``training`` (the loop, evaluation, divergence, checkpoints).

Run one config: ``python -m trainables template task=copy embed_dim=64 n_train=64 seeds=3 --jsonl``.
"""
from __future__ import annotations

from ..api import Trainable
from .config import KEYS, STACKABLE, metrics, resolve, step_cost

# the loop (training.py) needs torch and is imported at the first call: validating a spec does not
TEMPLATE = Trainable(train=f"{__name__}.training:train", name="template", resolve=resolve, metrics=metrics,
                     stackable=STACKABLE, step_cost=step_cost, stacks_seeds=True)

__all__ = ["KEYS", "TEMPLATE", "metrics", "resolve"]
