"""The ``template`` trainable: template tasks (RESEARCH.md §1) with stacked models.

Modules: ``tasks`` (templates, vocabulary layout, sample generation), ``stacked`` (flat stacked
parameters and the stacked Adam), ``transformer`` and ``baselines`` (models), ``models`` (models
by name), ``config`` (keys, defaults, validation), ``training`` (the loop, evaluation, checkpoints).
"""
from __future__ import annotations

from ..api import TrainableDef
from ..registry import register
from .config import KEYS, metrics, resolve
from .training import Trainer, train

TEMPLATE = register(TrainableDef(name="template", train=train, resolve=resolve, metrics=metrics))

__all__ = ["KEYS", "TEMPLATE", "Trainer", "metrics", "resolve", "train"]
