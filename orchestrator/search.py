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

from .plan import SweepPlan
from .results import load_trials
from .spec import Param

optuna.logging.set_verbosity(optuna.logging.WARNING)
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
            sampler = (optuna.samplers.TPESampler(seed=seed) if search.algorithm == "optuna"
                       else optuna.samplers.RandomSampler(seed=seed))
            self._studies[cell_key] = optuna.create_study(
                storage=self.storage, study_name=cell_key, sampler=sampler, load_if_exists=True,
                direction="minimize" if self._plan.mode == "min" else "maximize")
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
            study.tell(number, state=TrialState.PRUNED if state == TrialState.PRUNED else TrialState.FAIL,
                       skip_if_finished=True)

    def reconcile(self, cell_key: str, recorded: Mapping[str, Mapping[str, Any]], owned: set[str]) -> None:
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

    Slots are handed out round-robin (round r of every cell before round r+1). A slot (r, cell) is
    taken once the cell has more than r trials recorded in Parquet or owned by live Tune trials, so a
    driver restarted from an older Tune snapshot neither reruns nor double-counts any trial.
    """

    def __init__(self, plan: SweepPlan, results_dir: Path) -> None:
        super().__init__(metric=plan.metric, mode=plan.mode)
        self._plan = plan
        self._results_dir = results_dir.resolve()
        self._order = [c for _ in range(plan.spec.samples_per_cell) for c in range(len(plan.cells))]
        self._next = 0
        self._live: dict[str, str] = {}  # Tune trial id -> cell key, for trials Tune may still finish
        self._studies: Studies | None = None
        self._taken: dict[str, int] = {}  # cell key -> trials recorded, live or handed out by this driver

    def _open(self) -> Studies:
        """First use in this driver: reconcile every study with Parquet and count taken slots."""
        if self._studies is None:
            self._studies = Studies(self._plan, self._results_dir / "studies")
            recorded: dict[str, dict[str, dict[str, Any]]] = {}
            for row in load_trials(self._results_dir).to_dict("records"):
                recorded.setdefault(row["cell"], {})[row["trial_id"]] = row
            owned = set(self._live)
            for cell in {*recorded, *self._live.values(), *self._studies.existing()}:
                self._studies.reconcile(cell, recorded.get(cell, {}), owned)
            for cell in self._plan.cells:
                live = {t for t, c in self._live.items() if c == cell.key}
                self._taken[cell.key] = len(live | set(recorded.get(cell.key, {})))
        return self._studies

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        studies = self._open()
        while self._next < len(self._order):
            slot = self._next
            self._next += 1
            cell = self._plan.cells[self._order[slot]]
            if self._taken[cell.key] > slot // len(self._plan.cells):
                continue  # filled by a trial the last driver ran after Tune's last snapshot
            self._taken[cell.key] += 1
            trial = studies.get(cell.key).ask()
            trial.set_user_attr("trial_id", trial_id)
            params = {name: _suggest(trial, name, p) for name, p in self._plan.spec.search.space.items()}
            self._live[trial_id] = cell.key
            return self._plan.trial_config(cell, params)
        return Searcher.FINISHED

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self._live.pop(trial_id, None)  # the outcome is told by the driver's callback once recorded

    def get_state(self) -> dict:
        return {"next": self._next, "live": dict(self._live)}

    def set_state(self, state: dict) -> None:
        self._next, self._live = state["next"], dict(state["live"])

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))
