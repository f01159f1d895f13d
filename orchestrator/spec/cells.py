"""Axes → cells: the grid a sweep covers, each cell one point of task complexity × width × data size ...

A cell is identified everywhere (Parquet, MLflow tags, Optuna study names, ASHA brackets) by the
same readable key, ``embed_dim=64,n_train=32,vo_identity=true``, in the spec's axis order.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def format_value(value: Any) -> str:
    """How a cell value is written everywhere (cell keys, tables, legends): YAML-like, so booleans
    read ``true``/``false``; numpy scalars (from DataFrames) read as the Python values they hold."""
    if (
        type(value).__module__ == "numpy"
    ):  # without importing numpy: `scalesweep status` stays light
        value = value.item()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def cell_key(config: Mapping[str, Any], axes: Sequence[str]) -> str:
    """The key of the cell a trial config belongs to."""
    return ",".join(f"{name}={format_value(config[name])}" for name in axes)


@dataclass(frozen=True)
class Cell:
    key: str
    values: dict[str, Any]


def expand(axes: Mapping[str, Sequence[Any]]) -> list[Cell]:
    """Every combination of axis values, in the spec's order (the last axis varies fastest)."""
    names = list(axes)
    cells = []
    for combo in itertools.product(*(axes[n] for n in names)):
        values = dict(zip(names, combo))
        cells.append(Cell(cell_key(values, names), values))
    return cells
