"""Which cells an adaptive sweep runs: in each group (a combination of the other axes), the n* search of
adaptive.py over the adaptive axis, told the outcome of every cell whose trials are all recorded.

A probe is a normal cell (its search, seeds, ASHA, Parquet rows). Its outcome is read as the curves read
it: the cell's best trial by the sweep's metric, and that trial's seed mean of the curve's ``y`` (final
or best, as the curve's ``at`` says) against the threshold. A cell whose every trial errored has no
outcome and leaves its group's grid. Everything is rebuilt from the recorded rows, so a resumed driver
re-runs no probe.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from orchestrator.spec.adaptive import GroupSearch, meets
from orchestrator.spec.cells import Cell, cell_key

if TYPE_CHECKING:
    from orchestrator.spec.plan import SweepPlan


class Probes:
    """The n* searches of an adaptive sweep, one per group, and the cells they have opened."""

    def __init__(self, plan: SweepPlan, turn: int = 0) -> None:
        spec = plan.spec
        assert spec.adaptive is not None
        self._plan = plan
        self._axis = spec.adaptive.axis
        (self._curve,) = spec.adaptive_curves
        self._others = [a for a in spec.axes if a != self._axis]
        self._cells: dict[tuple[str, Any], Cell] = {}
        for cell in plan.cells:
            self._cells[(self.group_of(cell), cell.values[self._axis])] = cell
        self._place = {cell.key: place for place, cell in self._cells.items()}
        groups = dict.fromkeys(group for group, _ in self._cells)
        self.searches = {g: GroupSearch(spec.axes[self._axis]) for g in groups}
        self._started: set[str] = set()
        self.turn = turn
        """The group whose turn it is to get the next probe (groups take turns)."""

    @property
    def axis(self) -> str:
        return self._axis

    def group_of(self, cell: Cell) -> str:
        """The group's key: the cell's key without the adaptive axis ("" when it is the only axis)."""
        return cell_key(cell.values, self._others)

    def start(self, cell_key_: str) -> None:
        """A cell has trials handed out (now, or by a driver before a resume)."""
        if cell_key_ in self._started:
            return
        self._started.add(cell_key_)
        group, value = self._place[cell_key_]
        search = self.searches[group]
        if value not in search.outcomes:
            search.start(value)

    def update(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Tell each search the outcome of its cells whose every trial is recorded (``rows``: the trials
        rows recorded so far; cells already told are skipped)."""
        by_cell: dict[str, list[Mapping[str, Any]]] = {}
        for row in rows:
            by_cell.setdefault(row["cell"], []).append(row)
        wanted = self._plan.spec.samples_per_cell
        for (group, value), cell in self._cells.items():
            recorded = by_cell.get(cell.key, [])
            search = self.searches[group]
            if len(recorded) >= wanted and value not in search.outcomes:
                self._started.add(cell.key)
                search.record(value, self.outcome(recorded))

    def outcome(self, rows: list[Mapping[str, Any]]) -> bool | None:
        """Whether a cell meets the threshold, read as its curve reads it; None when every trial errored."""
        plan, curve = self._plan, self._curve
        live = [r for r in rows if r["status"] != "errored"]
        if not live:
            return None
        sign = 1.0 if plan.mode == "min" else -1.0
        select = f"{curve.at}_{plan.metric}"
        best = min(live, key=lambda r: sign * _finite(r.get(select), default=math.inf * sign))
        value = _finite(best.get(f"{curve.at}_{curve.y}"), default=math.nan)
        return meets(value, float(curve.threshold), plan.modes.get(curve.y, "min"))

    def next_cell(self) -> Cell | None:
        """The next cell to probe, or None when every search waits on running probes or is resolved.
        Groups take turns; a group already probing gets another probe (k-ary search) only when no group
        is idle, and a value between its ends only once both ends are known (an end alone may settle the
        group: n* below or above the grid), so free workers split brackets rather than wait."""
        groups = list(self.searches)
        order = groups[self.turn :] + groups[: self.turn]
        for busy_too in (False, True):
            for group in order:
                search = self.searches[group]
                if search.resolved or (search.pending and not busy_too):
                    continue
                picks = search.next_probes(1)
                ends = (search.values[0], search.values[-1])
                if picks and search.pending and not set(ends) <= set(search.outcomes):
                    picks = [v for v in picks if v in ends]  # the ends are needed anyway
                if picks:
                    self.turn = (groups.index(group) + 1) % len(groups)
                    cell = self._cells[(group, picks[0])]
                    self.start(cell.key)
                    return cell
        return None

    @property
    def finished(self) -> bool:
        return all(search.resolved for search in self.searches.values())

    def table(self) -> list[dict[str, Any]]:
        """Per group: its bracket [fails at, succeeds at], n* (censored below / above), probes, flags."""
        out = []
        values = {self.group_of(cell): cell.values for cell in self._cells.values()}
        for group, search in self.searches.items():
            fails, succeeds = search.bracket
            out.append(
                {
                    "group": group,
                    **{axis: values[group][axis] for axis in self._others},
                    "fails_at": fails,
                    "succeeds_at": succeeds,
                    "n_star": search.n_star,
                    "censored": search.censored,
                    "resolved": search.resolved,
                    "probes": search.probes,
                    "non_monotone": search.non_monotone,
                }
            )
        return out


def probes_of(
    plan: SweepPlan, rows: Iterable[Mapping[str, Any]] = (), turn: int = 0
) -> Probes | None:
    """The sweep's searches told ``rows`` (None for a sweep without an adaptive axis)."""
    if plan.spec.adaptive is None:
        return None
    probes = Probes(plan, turn)
    probes.update(rows)
    return probes


def sweep_complete(plan: SweepPlan, rows: Iterable[Mapping[str, Any]]) -> bool:
    """Whether the recorded ``rows`` are the whole sweep: every trial of the grid, or every search
    resolved on an adaptive axis."""
    rows = list(rows)
    probes = probes_of(plan, rows)
    return probes.finished if probes else len(rows) >= plan.spec.total_trials


def _finite(value: Any, default: float) -> float:
    if value is None:
        return default
    value = float(value)
    return value if math.isfinite(value) else default
