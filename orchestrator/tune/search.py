"""CellSearcher: one Optuna study per cell, behind Ray Tune's Searcher seam.

Ray's OptunaSearch refuses grid axes and would share one study across cells; a scaling curve
needs the best hyper-parameters *per cell*, so each cell asks and tells its own study. Trials are
handed out round-robin over cells, so every cell makes progress and later trials of a cell
benefit from the earlier ones.

Parquet is the source of truth, and a study is told a trial's outcome only *after* its Parquet
row is written (by the driver's callback, not by the searcher, which Tune informs first). So
whenever a driver dies, "told" implies "recorded"; a restarted driver tells what Parquet has and
the studies have not, and fails the asked trials that no surviving Tune trial owns.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from ray.tune.search import Searcher

from orchestrator.spec.plan import SweepPlan
from orchestrator.spec.schema import Param
from orchestrator.store.results import load_trials
from orchestrator.tune.packing import member_id

JOURNAL = "journal.log"
_STATE = {"completed": TrialState.COMPLETE, "pruned": TrialState.PRUNED}


def _suggest(trial: optuna.Trial, name: str, param: Param) -> Any:
    lo_hi = param.args
    match param.distribution:
        case "loguniform":
            return trial.suggest_float(name, lo_hi[0], lo_hi[1], log=True)
        case "uniform":
            return trial.suggest_float(name, lo_hi[0], lo_hi[1])
        case "int":
            return trial.suggest_int(name, lo_hi[0], lo_hi[1])
        case "logint":
            return trial.suggest_int(name, lo_hi[0], lo_hi[1], log=True)
        case _:
            return trial.suggest_categorical(name, param.choice)


class Studies:
    """The sweep's per-cell studies, all in one Optuna journal file (append-only, crash-safe)."""

    def __init__(self, plan: SweepPlan, studies_dir: Path) -> None:
        self._plan = plan
        self._journal = str(studies_dir / JOURNAL)
        studies_dir.mkdir(parents=True, exist_ok=True)
        self._storage: JournalStorage | None = None
        self._studies: dict[str, optuna.Study] = {}

    @property
    def storage(self) -> JournalStorage:
        if self._storage is None:
            self._storage = JournalStorage(JournalFileBackend(self._journal))
        return self._storage

    def existing(self) -> set[str]:
        """Cells whose study the journal holds (a driver may have died right after asking one)."""
        return {study.study_name for study in self.storage.get_all_studies()}

    def get(self, cell_key: str) -> optuna.Study:
        if cell_key not in self._studies:
            search = self._plan.spec.search
            seed = search.seed * 100_003 + [c.key for c in self._plan.cells].index(cell_key)
            sampler = (
                optuna.samplers.TPESampler(seed=seed)
                if search.algorithm == "optuna"
                else optuna.samplers.RandomSampler(seed=seed)
            )
            self._studies[cell_key] = optuna.create_study(
                storage=self.storage,
                study_name=cell_key,
                sampler=sampler,
                load_if_exists=True,
                direction="minimize" if self._plan.mode == "min" else "maximize",
            )
        return self._studies[cell_key]

    def tell(self, row: Mapping[str, Any]) -> None:
        """Tell a recorded trial (its trials.parquet row) to its cell's study, once."""
        study = self.get(row["cell"])
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.user_attrs.get("trial_id") == row["trial_id"]:
                self._tell(study, trial.number, row)
                return

    def _tell(self, study: optuna.Study, number: int, row: Mapping[str, Any]) -> None:
        state = _STATE.get(row["status"], TrialState.FAIL)
        value = row.get(f"final_{self._plan.metric}")
        if state == TrialState.COMPLETE and value is not None:
            study.tell(number, float(value), skip_if_finished=True)
        else:
            study.tell(
                number,
                state=TrialState.PRUNED if state == TrialState.PRUNED else TrialState.FAIL,
                skip_if_finished=True,
            )

    def reconcile(
        self, cell_key: str, recorded: Mapping[str, Mapping[str, Any]], owned: set[str]
    ) -> None:
        """After a driver died: tell asked trials that Parquet recorded; fail those nobody will finish
        (asked after Tune's last snapshot and lost with the driver)."""
        study = self.get(cell_key)
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            trial_id = trial.user_attrs.get("trial_id")
            if trial_id in recorded:
                self._tell(study, trial.number, recorded[trial_id])
            elif trial_id not in owned:
                study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)


class CellSearcher(Searcher):
    """Suggests ``samples_per_cell`` configs for every cell, asking each from its cell's study.

    A Tune trial carries a pack of up to ``plan.pack_sizes[cell]`` members of one cell (packing.py), each
    asked from the study as its own trial. Packs are handed out round-robin (round r of every cell before
    round r+1); in round r a cell is filled up to (r + 1) × its pack size members, counting the members
    recorded in Parquet and those owned by live Tune trials, so a driver restarted from an older Tune
    snapshot neither reruns nor double-counts any trial.
    """

    def __init__(self, plan: SweepPlan, results_dir: Path) -> None:
        super().__init__(metric=plan.metric, mode=plan.mode)
        self._plan = plan
        self._results_dir = results_dir.resolve()
        self._next = (
            0  # position in the endless sequence (round 0: every cell, round 1: every cell, ...)
        )
        self._live: dict[str, tuple[str, list[str]]] = {}  # Tune trial id -> (cell key, member ids)
        self._studies: Studies | None = None
        self._taken: dict[
            str, int
        ] = {}  # cell key -> members recorded, live or handed out by this driver

    def _open(self) -> Studies:
        """First use in this driver: reconcile every study with Parquet and count taken slots."""
        if self._studies is None:
            self._studies = Studies(self._plan, self._results_dir / "studies")
            recorded: dict[str, dict[str, dict[str, Any]]] = {}
            for row in load_trials(self._results_dir).to_dict("records"):
                recorded.setdefault(row["cell"], {})[row["trial_id"]] = row
            owned = {m for _, members in self._live.values() for m in members}
            cells_live = {cell for cell, _ in self._live.values()}
            for cell in {*recorded, *cells_live, *self._studies.existing()}:
                self._studies.reconcile(cell, recorded.get(cell, {}), owned)
            for cell in self._plan.cells:
                live = {m for c, members in self._live.values() if c == cell.key for m in members}
                self._taken[cell.key] = len(live | set(recorded.get(cell.key, {})))
        return self._studies

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        studies = self._open()
        cells, wanted = self._plan.cells, self._plan.spec.samples_per_cell
        while any(self._taken[c.key] < wanted for c in cells):
            slot = self._next
            self._next += 1
            cell = cells[slot % len(cells)]
            size = self._plan.pack_sizes[cell.key]
            need = min(size, min((slot // len(cells) + 1) * size, wanted) - self._taken[cell.key])
            if need <= 0:
                continue  # filled, e.g. by trials the last driver ran after Tune's last snapshot
            self._taken[cell.key] += need
            ids = [trial_id] if size == 1 else [member_id(trial_id, i) for i in range(need)]
            params = [self._ask(studies.get(cell.key), member) for member in ids]
            self._live[trial_id] = (cell.key, ids)
            return self._plan.trial_config(cell, params)
        return Searcher.FINISHED

    def _ask(self, study: optuna.Study, member: str) -> dict[str, Any]:
        trial = study.ask()
        trial.set_user_attr("trial_id", member)
        return {name: _suggest(trial, name, p) for name, p in self._plan.spec.search.space.items()}

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        self._live.pop(trial_id, None)  # the outcome is told by the driver's callback once recorded

    def get_state(self) -> dict:
        return {"next": self._next, "live": {t: [c, list(m)] for t, (c, m) in self._live.items()}}

    def set_state(self, state: dict) -> None:
        self._next = state["next"]
        self._live = {t: (c, list(m)) for t, (c, m) in state["live"].items()}

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))
