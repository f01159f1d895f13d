"""The science: synthetic tasks, stacked models and their training loops, registered by name."""
from .api import EARLIER, MEMBERS, ConfigError, Mode, Reporter, TrainableDef
from .registry import get_trainable, register, trainable_names

__all__ = ["EARLIER", "MEMBERS", "ConfigError", "Mode", "Reporter", "TrainableDef", "get_trainable", "register",
           "trainable_names"]
