"""The ``incontext`` trainable: in-context logistic regression (TART) and linear regression (Garg et al.).

Modules: ``tasks`` (per-sequence samplers), ``model`` (stacked GPT-2 with read-in/read-out),
``curriculum`` (on d and k), ``evaluation`` (fixed evaluation set; per-position model, oracle and
baseline scores), ``config`` (keys, defaults, validation, metrics and curves), ``training`` (the loop,
divergence, checkpoints). RESEARCH.md §2 has the science.

Run one config: ``python -m trainables incontext task=logistic_regression d=16 k=64 alpha=10
embed_dim=64 depth=4 heads=4 steps=2000 lr=1e-3 eval_every=500 seeds=2 --jsonl``.
"""
from __future__ import annotations

from ..api import Trainable
from .config import KEYS, STACKABLE, curves, metrics, resolve, step_cost

# the loop (training.py) needs torch and is imported at the first call: validating a spec does not
INCONTEXT = Trainable(train=f"{__name__}.training:train", name="incontext", resolve=resolve, metrics=metrics,
                      curves=curves, horizon="steps", stackable=STACKABLE, step_cost=step_cost, stacks_seeds=True)

__all__ = ["INCONTEXT", "KEYS", "curves", "metrics", "resolve"]
