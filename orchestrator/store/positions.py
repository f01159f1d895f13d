"""Per-position results on disk: ``positions/`` beside ``metrics/``, a row per trial × seed × position.

A trainable may add per-position curves to the rows of its final report (``Row.curves``: {curve: [value
per position]}; the ``incontext`` trainable reports ``acc_by_k``, ``oracle_acc_by_k``,
``baseline_acc_by_k``): a metric as a function of the context position k. The results writer stores
them here (a column per curve); the ``position`` curve kind (``answers.positions``) reads them back.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from orchestrator.store.parquet_io import concat, read_table
from trainables import Row

if TYPE_CHECKING:  # pandas only when reading back: the results writer needs none
    import pandas as pd

POSITIONS_DIR = "positions"
POSITION_KEYS = ["trial_id", "seed", "position"]


def position_rows(trial_id: str, rows: Sequence[Row]) -> pa.Table:
    """One trial's curves as rows, one per seed and position (position i: the query after i in-context
    examples)."""
    names = sorted({c for row in rows for c in row.curves or {}})
    columns: dict[str, list[Any]] = {k: [] for k in POSITION_KEYS} | {c: [] for c in names}
    for row in rows:
        curves = row.curves or {}
        for i in range(max((len(v) for v in curves.values()), default=0)):
            columns["trial_id"].append(trial_id)
            columns["seed"].append(row.seed)
            columns["position"].append(i)
            for curve in names:
                columns[curve].append(float(curves[curve][i]) if curve in curves else None)
    types = {"trial_id": pa.string(), "seed": pa.int64(), "position": pa.int64()}
    return pa.table({k: pa.array(v, type=types.get(k, pa.float64())) for k, v in columns.items()})


def load_positions(root: str | Path) -> "pd.DataFrame":
    """The ``positions/`` dataset as a DataFrame (empty when the trainable reports no curves)."""
    import pandas as pd

    parts = sorted((Path(root) / POSITIONS_DIR).glob("*.parquet"))
    if not parts:
        return pd.DataFrame(columns=POSITION_KEYS)
    return concat(read_table(p) for p in parts).to_pandas()
