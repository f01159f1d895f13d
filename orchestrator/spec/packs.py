"""How many configs of a cell one Tune trial trains as one stack (a *pack*), decided when the sweep is planned.

A small model leaves most of a core (and nearly all of a GPU) idle, so stacking more members pays until
one stacked step is large enough to keep the device busy: packs grow up to that much work per step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from trainables import MEMBERS

MAX_PACK = 64
# Multiply-adds of one stacked step (members × seeds × a member's step) up to which stacking more members
# pays on each device: past it a stacked step costs what the members' separate steps would (on a CPU core
# benchmarks/stacking.py measures where; figures in benchmarks/README.md). The GPU figure is an estimate
# (a step of ~1 ms at ~100 TFLOP/s) until benchmarks/stacking.py runs on one.
STACK_WORK = {"cpu": 4e9, "gpu": 5e10}


def pack_config(base: Mapping[str, Any], params: list[dict[str, Any]]) -> dict[str, Any]:
    """The config of a pack whose members differ only in ``params``."""
    return {**base, MEMBERS: params}


def pack_size(cost: float | None, seeds: int, samples: int, requested: int | str, gpu: bool) -> int:
    """Members per Tune trial for one cell: ``requested``, or with "auto" as many as keep one stacked step
    within what stacking speeds up on the device (at most MAX_PACK); never more than the cell's samples.
    ``cost``: the trainable's ``step_cost`` of the cell's config (None when it declares none)."""
    if requested != "auto":
        return max(1, min(int(requested), samples))
    if cost is None or samples == 1:
        return 1
    work = STACK_WORK["gpu" if gpu else "cpu"] / (cost * seeds)
    return max(1, min(MAX_PACK, samples, math.floor(work)))
