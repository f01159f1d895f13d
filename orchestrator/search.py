"""CellSearcher: one Optuna study per cell, behind Ray Tune's Searcher seam.

Ray's OptunaSearch refuses grid axes and would share one study across cells; a scaling curve
needs the best hyper-parameters *per cell*, so each cell asks and tells its own study. Trials are
handed out round-robin over cells, so every cell makes progress and later trials of a cell
benefit from the earlier ones.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from ray.tune.search import Searcher

from .plan import SweepPlan
from .spec import Param

optuna.logging.set_verbosity(optuna.logging.WARNING)


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


class CellSearcher(Searcher):
    """Suggests ``samples_per_cell`` configs for every cell; tells each cell's study its own trials.

    A trial stopped early by ASHA is told as PRUNED, not as completed, so a trial cut short at a
    rung never looks like a finished bad trial.
    """

    def __init__(self, plan: SweepPlan, studies_dir: Path) -> None:
        super().__init__(metric=plan.metric, mode=plan.mode)
        self._plan = plan
        self._configs: dict[str, dict[str, Any]] = {}
        self._journal = str(studies_dir / "journal.log")
        studies_dir.mkdir(parents=True, exist_ok=True)
        self._order = [c for _ in range(plan.spec.samples_per_cell) for c in range(len(plan.cells))]
        self._next = 0
        self._live: dict[str, tuple[int, int]] = {}  # tune trial id -> (cell index, optuna trial number)
        self._studies: dict[int, optuna.Study] = {}

    def _study(self, cell: int) -> optuna.Study:
        if cell not in self._studies:
            search = self._plan.spec.search
            seed = search.seed * 100_003 + cell
            sampler = (optuna.samplers.RandomSampler(seed=seed) if search.algorithm != "optuna"
                       else optuna.samplers.TPESampler(seed=seed))
            self._studies[cell] = optuna.create_study(
                storage=JournalStorage(JournalFileBackend(self._journal)),
                study_name=self._plan.cells[cell].key,
                sampler=sampler,
                direction="minimize" if self._plan.mode == "min" else "maximize",
                load_if_exists=True,
            )
        return self._studies[cell]

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self._next >= len(self._order):
            return Searcher.FINISHED
        cell = self._order[self._next]
        self._next += 1
        study = self._study(cell)
        trial = study.ask()
        trial.set_user_attr("trial_id", trial_id)
        params = {name: _suggest(trial, name, p) for name, p in self._plan.spec.search.space.items()}
        self._live[trial_id] = (cell, trial.number)
        self._configs[trial_id] = self._plan.trial_config(self._plan.cells[cell], params)
        return self._configs[trial_id]

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id not in self._live:
            return
        cell, number = self._live.pop(trial_id)
        config = self._configs.pop(trial_id)
        study = self._study(cell)
        status = "errored" if error else self._plan.trial_status(config, result)
        if status == "completed":
            study.tell(number, float(result[self.metric]), skip_if_finished=True)
        else:
            state = TrialState.PRUNED if status == "pruned" else TrialState.FAIL
            study.tell(number, state=state, skip_if_finished=True)

    def study(self, cell_key: str) -> optuna.Study:
        """The study of a cell, for inspection (tests, status)."""
        return self._study(next(i for i, c in enumerate(self._plan.cells) if c.key == cell_key))

    def get_state(self) -> dict:
        return {"next": self._next, "live": dict(self._live), "configs": dict(self._configs)}

    def set_state(self, state: dict) -> None:
        self._next, self._live, self._configs = state["next"], dict(state["live"]), dict(state["configs"])

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))
