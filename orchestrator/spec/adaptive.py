"""An adaptive data axis: search each group's grid of data sizes for n* instead of sweeping it all.

n* is the smallest grid value whose seed-mean metric meets the threshold and still meets it at
every probed value above: the full-grid rule of `answers.curves` read on the probed values only.
On a monotone curve, probing both ends and then bisecting finds the full grid's n* with
`max_probes(m)` probes (6 for 15 values instead of 15); with several free worker slots the bracket
is split k+1 ways per round (k-ary search), fewer rounds for more probes.

Pure and deterministic, no Ray and no I/O: a search is rebuilt from its recorded outcomes alone,
so a resumed driver replays what Parquet holds and re-runs no probe.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

Censored = Literal["below", "above"]
_MAX_STEPS = 100_000  # ratio**i steps from low to high: a ratio of 1 + 1e-9 would loop for hours


def adaptive_grid(low: int, high: int, ratio: float = 2.0) -> list[int]:
    """The values an adaptive axis searches: low·ratio^i rounded half up, deduplicated, <= high.

    Each value is computed from low (not by repeated multiplication) so no rounding drifts: ratio 2
    from 4 to 65536 gives exactly the powers of two. `high` is in the grid only when it lies on it.
    """
    if low < 1:
        raise ValueError(f"adaptive grid: low must be an integer >= 1, got {low}")
    if high < low:
        raise ValueError(f"adaptive grid: high must be >= low ({low}), got {high}")
    if not ratio > 1 or not math.isfinite(ratio):
        raise ValueError(f"adaptive grid: ratio must be a finite number > 1, got {ratio}")
    if math.log(high / low) / math.log(ratio) > _MAX_STEPS:
        raise ValueError(
            f"adaptive grid: ratio {ratio} is too close to 1 for {low}..{high}; use a ratio such "
            "as 1.41 or 2"
        )
    values: list[int] = []
    for i in range(_MAX_STEPS + 2):
        value = math.floor(low * ratio**i + 0.5)
        if value > high:
            break
        if not values or value > values[-1]:
            values.append(value)
    return values


def max_probes(n_values: int) -> int:
    """The most probes one group takes with one probe at a time (k=1), whatever its outcomes.

    Both ends first, then the n-1 places n* can still take between them (index 1 .. n-1) are
    bisected: each probe lies strictly inside the bracket [largest failure, smallest success
    above it], so whatever it returns the bracket keeps at most ceil(c/2) of its c places, and a
    probe there never contradicts the bracket's own ends (a non-monotone outcome costs nothing
    extra). Total 2 + ceil(log2(n-1)): 6 for 15 values, one less than 2 + ceil(log2 n) when n-1
    is a power of two. Errored probes (outcome unknown) are not counted.
    """
    if n_values < 1:
        raise ValueError(f"max_probes: n_values must be >= 1, got {n_values}")
    return 1 if n_values == 1 else 2 + (n_values - 2).bit_length()


def meets(value: float, threshold: float, mode: Literal["min", "max"] = "min") -> bool:
    """Whether a seed mean meets the threshold: a tie meets it, NaN (every seed diverged) does not.

    The same rule as `answers.curves.sample_complexity`, so an adaptive n* and a full-grid n* agree.
    """
    if mode not in ("min", "max"):
        raise ValueError(f"mode: expected 'min' or 'max', got {mode!r}")
    return value <= threshold if mode == "min" else value >= threshold  # NaN compares False


class GroupSearch:
    """The n* search of one group (one combination of the other axes) on its grid of values.

    Rules, chosen so the answer is a function of the recorded outcomes alone:
    - Both ends are probed first (low first when one slot is free), then the bracket
      [largest value known to fail, smallest value above it known to succeed] is split evenly on
      grid indices: in two with k=1 (bisection), in up to k+1 parts with k free slots. Pending
      probes (`start`, or passed to `next_probes`) count as split points; a search waits (returns
      nothing) only when every value left in its bracket is probed or pending.
    - n* is the smallest probed value above which every probed value succeeds, i.e. the smallest
      success above the largest failure. It is known (`resolved`) once both ends are probed and no
      unprobed value is left between the two; on a monotone curve it equals the full grid's n*.
    - Non-monotone outcomes (a success below a failure) do not stop the search: n* follows the
      rule above, the search goes on inside the bracket that decides it, and every probe in such a
      pair is listed in `non_monotone` (a success with a failure above it, a failure with a success
      below it).
    - Censoring: low succeeds -> n* = low, censored "below" (n* <= low); high fails -> n* = None,
      censored "above" (n* > high). A one-value grid is one probe: either of the two.
    - `record(value, None)` is a probe whose outcome is unknown (every trial errored). Counting it
      as a failure would let one crash (say, out of memory at the largest n) erase a group's n*;
      instead the value leaves this group's grid, as a cell whose trials all errored is left out of
      a full-grid curve, and the search goes on without it (an errored end makes its neighbour the
      end). Retrying is the driver's call, before it records None. Diverged seeds are an outcome:
      the driver records the seed mean's `meets` (NaN -> False).
    """

    def __init__(
        self, values: Sequence[int], outcomes: Mapping[int, bool | None] | None = None
    ) -> None:
        vals = tuple(values)
        if not vals:
            raise ValueError("GroupSearch: values is empty; give one group's grid (adaptive_grid)")
        if any(b <= a for a, b in zip(vals, vals[1:])):
            raise ValueError(f"GroupSearch: values must be strictly increasing, got {list(vals)}")
        self._values = vals
        self._outcomes: dict[int, bool] = {}
        self._unknown: set[int] = set()
        self._pending: set[int] = set()
        for value in sorted(outcomes or {}):  # a resume replays what the results hold
            self.record(value, (outcomes or {})[value])

    def __repr__(self) -> str:
        return (
            f"GroupSearch({list(self._values)}, outcomes={self.outcomes}, "
            f"pending={list(self.pending)})"
        )

    # ------------------------------------------------------------------------- what is known

    @property
    def values(self) -> tuple[int, ...]:
        return self._values

    @property
    def outcomes(self) -> dict[int, bool | None]:
        """Every recorded outcome by value (None: unknown); enough to rebuild this search."""
        known: dict[int, bool | None] = {**self._outcomes, **dict.fromkeys(self._unknown)}
        return dict(sorted(known.items()))

    @property
    def pending(self) -> tuple[int, ...]:
        return tuple(sorted(self._pending))

    @property
    def errored(self) -> list[int]:
        """Values whose outcome is unknown: left out of this group's grid."""
        return sorted(self._unknown)

    @property
    def probes(self) -> int:
        """Probes recorded so far, errored ones included."""
        return len(self._outcomes) + len(self._unknown)

    def _state(self) -> tuple[list[int], int, int]:
        """The usable grid and the bracket on it as indices (-1 / len: no failure / no success)."""
        grid = [v for v in self._values if v not in self._unknown]
        fail = max((i for i, v in enumerate(grid) if self._outcomes.get(v) is False), default=-1)
        succeed = next(
            (i for i in range(fail + 1, len(grid)) if self._outcomes.get(grid[i])), len(grid)
        )
        return grid, fail, succeed

    @property
    def bracket(self) -> tuple[int | None, int | None]:
        """(largest value known to fail, smallest value above it known to succeed); n* lies in
        (fails_at, succeeds_at], None meaning no such probe yet (or beyond the grid)."""
        grid, fail, succeed = self._state()
        return (
            grid[fail] if fail >= 0 else None,
            grid[succeed] if succeed < len(grid) else None,
        )

    @property
    def resolved(self) -> bool:
        grid, fail, succeed = self._state()
        if not grid:
            return True  # every value errored: nothing left to probe
        ends = grid[0] in self._outcomes and grid[-1] in self._outcomes
        return ends and succeed - fail == 1

    @property
    def n_star(self) -> int | None:
        """n* once resolved; None before, and when no value reaches (see `censored`)."""
        return self.bracket[1] if self.resolved else None

    @property
    def censored(self) -> Censored | None:
        """Once resolved: 'below' when n* <= low (low already succeeds), 'above' when n* > high."""
        grid, fail, succeed = self._state()
        if not grid or not self.resolved:
            return None
        return "below" if succeed == 0 else "above" if succeed == len(grid) else None

    @property
    def non_monotone(self) -> list[int]:
        """Probes contradicting another: successes below a failure, failures above a success."""
        fails = [v for v, ok in self._outcomes.items() if not ok]
        wins = [v for v, ok in self._outcomes.items() if ok]
        top_fail, low_win = max(fails, default=0), min(wins, default=math.inf)
        return sorted(
            v for v, ok in self._outcomes.items() if (v < top_fail if ok else v > low_win)
        )

    # ------------------------------------------------------------------------- what to do next

    def _check(self, value: int, what: str) -> None:
        if value not in self._values:
            raise ValueError(f"{what}: {value} is not on this group's grid {list(self._values)}")

    def start(self, value: int) -> None:
        """Mark a probe as running, so `next_probes` neither repeats it nor splits across it."""
        self._check(value, "start")
        if value in self._outcomes or value in self._unknown:
            raise ValueError(f"start: {value} is already recorded; a probe runs once")
        self._pending.add(value)

    def record(self, value: int, succeeded: bool | None) -> None:
        """Record a probe's outcome (None: unknown, every trial errored). Replaying the same
        outcome is a no-op, so a resume may replay freely; a different one is an error."""
        self._check(value, "record")
        outcome = None if succeeded is None else bool(succeeded)
        if value in self._outcomes or value in self._unknown:
            before = self._outcomes.get(value)
            if before != outcome:
                raise ValueError(f"record: {value} was recorded as {before}, now {outcome}")
            return
        if outcome is None:
            self._unknown.add(value)
        else:
            self._outcomes[value] = outcome
        self._pending.discard(value)

    def next_probes(self, k: int = 1, pending: Iterable[int] = ()) -> list[int]:
        """Up to k values to probe now (sorted), none already probed or pending.

        Ends first; the other slots go, one by one, to the gap between split points (bracket ends
        and pending probes) that would leave the most places for n*, and each gap's probes are
        spread evenly on grid indices. Empty when resolved or when it must wait for pending probes.
        """
        if k < 0:
            raise ValueError(f"next_probes: k must be >= 0, got {k}")
        busy = set(self._pending)
        for value in pending:
            self._check(value, "next_probes(pending=...)")
            busy.add(value)
        if k == 0 or self.resolved:
            return []
        grid, fail, succeed = self._state()
        busy |= set(self._outcomes)
        picks = [i for i in dict.fromkeys((0, len(grid) - 1)) if grid[i] not in busy][:k]
        splits = {fail, succeed, *picks}
        splits |= {i for i in range(fail + 1, succeed) if grid[i] in busy}
        cuts = sorted(i for i in splits if fail <= i <= succeed)
        gaps = [(a, b) for a, b in zip(cuts, cuts[1:]) if b - a > 1]
        extra = [0] * len(gaps)
        for _ in range(k - len(picks)):
            open_ = [g for g, (a, b) in enumerate(gaps) if extra[g] < b - a - 1]
            if not open_:
                break
            # places for n* a gap (a, b] still leaves in the worst case; ties go to the lower gap
            g = max(open_, key=lambda g: (-(-(gaps[g][1] - gaps[g][0]) // (extra[g] + 1)), -g))
            extra[g] += 1
        for (a, b), j in zip(gaps, extra):  # j evenly spaced: a + round(i·(b-a)/(j+1)), half up
            picks += [a + (2 * i * (b - a) + j + 1) // (2 * (j + 1)) for i in range(1, j + 1)]
        return sorted(grid[i] for i in picks)
