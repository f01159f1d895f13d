"""The sweep's Optuna studies, one per cell, all in one journal file: what each cell's search knows.

A study is told a trial's outcome only *after* its Parquet row is written (by the driver's callback), so
"told" implies "recorded" whenever a driver dies; a restarted driver reconciles each study with Parquet.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from orchestrator.spec.plan import SweepPlan
from orchestrator.spec.schema import Param

JOURNAL = "journal.log"
_STATE = {"completed": TrialState.COMPLETE, "pruned": TrialState.PRUNED}


def suggest(trial: optuna.Trial, name: str, param: Param) -> Any:
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
