"""CellSearcher: one Optuna study per cell, behind Ray Tune's Searcher seam.

Ray's OptunaSearch refuses grid axes and would share one study across cells; a scaling curve
needs the best hyper-parameters *per cell*, so each cell asks and tells its own study. Trials are
handed out round-robin over cells, so every cell makes progress and later trials of a cell
benefit from the earlier ones.

Parquet is the source of truth, and a study is told a trial's outcome only *after* its Parquet
row is written (by the driver's callback, not by the searcher, which Tune informs first). So
whenever a driver dies, "told" implies "recorded"; a restarted driver tells what Parquet has and
the studies have not, and fails the asked trials that no surviving Tune trial owns (studies.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
from ray.tune.search import Searcher

from orchestrator.spec.cells import Cell
from orchestrator.spec.plan import SweepPlan
from orchestrator.spec.probes import probes_of
from orchestrator.tune.driver import attached
from orchestrator.tune.packing import member_id
from orchestrator.tune.studies import Studies, suggest


class CellSearcher(Searcher):
    """Suggests ``samples_per_cell`` configs for every cell, asking each from its cell's study.

    A Tune trial carries a pack of up to ``plan.pack_sizes[cell]`` members of one cell (packing.py), each
    asked from the study as its own trial. Packs are handed out round-robin (round r of every cell before
    round r+1, the cells longest first: ``plan.longest_first``); in round r a cell is filled up to
    (r + 1) × its pack size members, counting the members recorded in Parquet and those of the Tune trials
    this driver will run. After a restore those are the trials Tune restored to run again, as the
    scheduler saw them added (not this searcher's saved state, which Tune writes after its trial list and
    may lose to a killed driver), so a restarted driver neither
    reruns nor double-counts any trial.
    """

    def __init__(self, plan: SweepPlan, key: str) -> None:
        super().__init__(metric=plan.metric, mode=plan.mode)
        self._plan = plan
        self._key = key  # the sweep's, to reach this driver's sinks (driver.py)
        self._next = 0  # position in the endless sequence (round 0: every cell, round 1: ...)
        self._studies: Studies | None = None
        self._taken: dict[str, int] = {}  # cell key -> members recorded, queued or handed out here
        self._turn = 0  # on an adaptive axis: the group whose turn it is to get a probe

    def _open(self) -> Studies:
        """First use in this driver: reconcile every study with Parquet and count taken slots."""
        if self._studies is None:
            sinks = attached(self._key)
            self._studies = sinks.studies
            recorded: dict[str, dict[str, dict[str, Any]]] = {}
            for row in (
                sinks.writer.finished.values()
            ):  # what Parquet holds, and what this driver recorded
                recorded.setdefault(row["cell"], {})[row["trial_id"]] = row
            queued = list(sinks.queued.values())
            owned = {m.trial_id for _, members in queued for m in members}
            for cell in {*recorded, *(c for c, _ in queued), *self._studies.existing()}:
                self._studies.reconcile(cell, recorded.get(cell, {}), owned)
            for cell in self._plan.cells:
                live = {m.trial_id for c, members in queued if c == cell.key for m in members}
                self._taken[cell.key] = len(live | set(recorded.get(cell.key, {})))
        return self._studies

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        studies = self._open()
        if self._plan.spec.adaptive is not None:
            return self._suggest_probe(trial_id, studies)
        cells, wanted = self._plan.longest_first, self._plan.spec.samples_per_cell
        while any(self._taken[c.key] < wanted for c in cells):
            slot = self._next
            self._next += 1
            cell = cells[slot % len(cells)]
            size = self._plan.pack_sizes[cell.key]
            need = min(size, min((slot // len(cells) + 1) * size, wanted) - self._taken[cell.key])
            if need <= 0:
                continue  # filled, e.g. by trials the last driver ran after Tune's last snapshot
            return self._hand_out(cell, need, trial_id, studies)
        return Searcher.FINISHED

    def _suggest_probe(self, trial_id: str, studies: Studies) -> dict[str, Any] | None:
        """On an adaptive axis: fill the cells the searches opened, then open the next probe; wait (None)
        while every search waits on running probes, and finish once every group's n* is known.

        Rebuilt at every call from what Parquet holds and the trials Tune holds for this driver, never
        from what a searcher remembers: a probe whose trials no live Tune trial owns (lost with a killed
        driver, or to a snapshot Tune took before them) is handed out again instead of waited on."""
        sinks, wanted = attached(self._key), self._plan.spec.samples_per_cell
        rows = list(sinks.writer.finished.values())
        owned: dict[str, set[str]] = {}
        for row in rows:
            owned.setdefault(row["cell"], set()).add(row["trial_id"])
        for cell_key_, members in sinks.queued.values():
            owned.setdefault(cell_key_, set()).update(m.trial_id for m in members)
        probes = probes_of(self._plan, rows, self._turn)
        assert probes is not None
        for cell in self._plan.cells:  # opened: some member recorded or live
            if cell.key in owned:
                probes.start(cell.key)
                if (taken := len(owned[cell.key])) < wanted:
                    need = min(self._plan.pack_sizes[cell.key], wanted - taken)
                    return self._hand_out(cell, need, trial_id, studies)
        cell = probes.next_cell()
        self._turn = probes.turn
        if cell is None:
            return Searcher.FINISHED if probes.finished else None
        need = min(self._plan.pack_sizes[cell.key], wanted)
        return self._hand_out(cell, need, trial_id, studies)

    def _hand_out(self, cell: Cell, need: int, trial_id: str, studies: Studies) -> dict[str, Any]:
        """One Tune trial of ``need`` members of ``cell``, each asked from the cell's study."""
        self._taken[cell.key] += need
        size = self._plan.pack_sizes[cell.key]
        ids = [trial_id] if size == 1 else [member_id(trial_id, i) for i in range(need)]
        params = [self._ask(studies.get(cell.key), member) for member in ids]
        return self._plan.trial_config(cell, params)

    def _ask(self, study: optuna.Study, member: str) -> dict[str, Any]:
        trial = study.ask()
        trial.set_user_attr("trial_id", member)
        return {name: suggest(trial, name, p) for name, p in self._plan.spec.search.space.items()}

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        """Nothing to do: the outcome is told by the driver's callback once recorded in Parquet."""

    def get_state(self) -> dict:
        return {"next": self._next}

    def set_state(self, state: dict) -> None:
        self._next = state["next"]

    def save(self, checkpoint_path: str) -> None:
        """As JSON: a results directory is data, and loading it must not run code."""
        Path(checkpoint_path).write_text(json.dumps(self.get_state()))

    def restore(self, checkpoint_path: str) -> None:
        try:
            state = json.loads(Path(checkpoint_path).read_text())
            self.set_state({"next": int(state["next"])})
        except (OSError, ValueError, KeyError, TypeError):
            self.set_state(
                {"next": 0}
            )  # the order of cells only: Parquet and Tune say what is taken
