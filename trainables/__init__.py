"""The science and the public trainable contract: tasks, stacked models, their training loops, and what a
researcher's own trainable implements (see docs/trainables.md)."""

from .api import EARLIER, MEMBERS, ROWS, Mode, Report, Reporter, Row, Trainable, seed_mean
from .errors import ConfigError
from .registry import get_trainable, trainable_names
from .replicas import run_trainable

__all__ = [
    "EARLIER",
    "MEMBERS",
    "ROWS",
    "ConfigError",
    "Mode",
    "Report",
    "Reporter",
    "Row",
    "Trainable",
    "get_trainable",
    "run_trainable",
    "seed_mean",
    "trainable_names",
]
