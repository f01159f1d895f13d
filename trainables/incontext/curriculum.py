"""Curricula on the dimension d and the number of in-context examples k (docs/science.md, Training settings).

Both papers' code (``Curriculum.update`` after every step) gives, during step t (0-based),
value = min(end, start + inc · ⌊t / interval⌋); the end is the config's d and k. Presets:
- ``tart``: d 4 → +4, k 18 → +30, every 1000 steps (TART's reasoning_head_s258.yaml);
- ``garg``: d 5 → +1, k 11 → +2, every 2000 steps (Garg et al., linear_regression.yaml).
``curriculum_every`` > 0 replaces the preset's interval, to compress a curriculum into a short run.
A preset's start above the config's value starts (and stays) at the config's value.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    start: int
    inc: int

    def at(self, step: int, every: int, end: int) -> int:
        return min(end, self.start + self.inc * (step // every))


@dataclass(frozen=True)
class Preset:
    d: Schedule
    k: Schedule
    every: int


PRESETS: dict[str, Preset] = {
    "tart": Preset(d=Schedule(4, 4), k=Schedule(18, 30), every=1000),
    "garg": Preset(d=Schedule(5, 1), k=Schedule(11, 2), every=2000),
}


class Curriculum:
    """(d_active, k) for a training step; ``none`` trains at the full (d, k) from the start."""

    def __init__(self, name: str, d: int, k: int, every: int = 0) -> None:
        self.preset = PRESETS.get(name)
        self.d, self.k = d, k
        self.every = every or (self.preset.every if self.preset else 1)

    def at(self, step: int) -> tuple[int, int]:
        if self.preset is None:
            return self.d, self.k
        return self.preset.d.at(step, self.every, self.d), self.preset.k.at(
            step, self.every, self.k
        )
