"""Axis values and choice options: one type per list, because each list becomes one typed column.

Every axis and every searched hyper-parameter is a column of ``trials.parquet`` (and an MLflow param a
reader filters on). A list that mixes types cannot be stored, and the trainable would see a string where
it expects a number, so each list is checked and coerced once, when the spec is read: integers mixed with
floats become floats; booleans, numbers and strings never mix.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Sequence
from typing import Union

Scalar = Union[bool, int, float, str]
INT64 = 2**63
"""Parquet stores integer columns as int64: a larger integer fails the write after the sweep has run."""

_SHORT = reprlib.Repr()
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 60, 60, 40


def short(value: object) -> str:
    """``value`` as a spec would write it (``true``, ``null``; else its repr), cut to a few dozen
    characters: a message quotes a value, it does not dump it."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    return _SHORT.repr(value)


def kind(value: Scalar) -> str:
    """A value's type as a spec's reader names it."""
    if isinstance(value, bool):
        return "boolean"
    return "number" if isinstance(value, (int, float)) else "string"


def one_type(values: Sequence[Scalar]) -> list[Scalar]:
    """``values`` as one column: all booleans, all strings, all integers, or all floats (integers mixed
    with floats become floats); ValueError naming the first value of another type, or a number that no
    column can hold (not finite, or an integer outside int64)."""
    first = kind(values[0])
    for value in values:
        if kind(value) != first:
            raise ValueError(
                f"expected values of one type; got {short(values[0])} ({first}) "
                f"and {short(value)} ({kind(value)})"
            )
    if first != "number":
        return list(values)
    for value in values:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"expected finite numbers, got {value}")
        if isinstance(value, int) and not -INT64 <= value < INT64:
            raise ValueError(
                f"expected integers within ±2**63 (a Parquet int64), got {short(value)}"
            )
    if any(isinstance(v, float) for v in values):
        return [float(v) for v in values]
    return list(values)
