"""The sweep's Optuna studies, one per cell, all in one journal file: what each cell's search knows.

A study is told a trial's outcome only *after* its Parquet row is written (by the driver's callback), so
"told" implies "recorded" whenever a driver dies; a restarted driver reconciles each study with Parquet,
which also re-tells the trials a damaged or lost journal no longer holds.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState, create_trial

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


def distribution(param: Param) -> BaseDistribution:
    """The Optuna distribution :func:`suggest` samples ``param`` from (to re-tell a recorded trial)."""
    lo_hi = param.args
    match param.distribution:
        case "loguniform" | "uniform":
            return FloatDistribution(lo_hi[0], lo_hi[1], log=param.distribution == "loguniform")
        case "int" | "logint":
            return IntDistribution(lo_hi[0], lo_hi[1], log=param.distribution == "logint")
        case _:
            return CategoricalDistribution(param.choice)


def repair_journal(journal: Path) -> None:
    """Keep the journal's longest prefix of whole JSON lines. A driver killed mid-write leaves a cut last
    line, and Optuna's next append would glue a valid line to it, which no later read gets past. The
    dropped tail is kept beside the journal; what it told is told again from Parquet (reconcile)."""
    if not journal.exists():
        return
    data = journal.read_bytes()
    good = 0
    for line in data.splitlines(keepends=True):
        try:
            json.loads(line)
        except ValueError:
            break
        if not line.endswith(b"\n"):
            break
        good += len(line)
    if good == len(data):
        return
    journal.with_name(f"{journal.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}").write_bytes(
        data[good:]
    )
    with journal.open("r+b") as f:
        f.truncate(good)
    print(
        f"note: {journal}: dropped {len(data) - good} bytes after its last whole entry (a write cut "
        f"short); the trials they told are told again from Parquet",
        file=sys.stderr,
    )


class Studies:
    """The sweep's per-cell studies, all in one Optuna journal file (append-only, crash-safe)."""

    def __init__(self, plan: SweepPlan, studies_dir: Path) -> None:
        self._plan = plan
        self._journal = str(studies_dir / JOURNAL)
        studies_dir.mkdir(parents=True, exist_ok=True)
        repair_journal(studies_dir / JOURNAL)
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
        """Tell a recorded trial (its trials.parquet row) to its cell's study, once; a trial the study
        never heard of (its ask was in a lost part of the journal) is added as recorded."""
        study = self.get(row["cell"])
        known = False
        for trial in study.get_trials(deepcopy=False):
            if trial.user_attrs.get("trial_id") == row["trial_id"]:
                known = True
                if trial.state == TrialState.RUNNING:
                    self._tell(study, trial.number, row)
        if not known:
            study.add_trial(self._retold(row))

    def catch_up(self, recorded: Iterable[Mapping[str, Any]]) -> None:
        """At a driver's start: every recorded trial told to its study (those a cut journal lost too)."""
        by_cell: dict[str, dict[str, Mapping[str, Any]]] = {}
        for row in recorded:
            by_cell.setdefault(row["cell"], {})[row["trial_id"]] = row
        for cell, rows in by_cell.items():
            self.reconcile(cell, rows, owned=None)

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
        self, cell_key: str, recorded: Mapping[str, Mapping[str, Any]], owned: set[str] | None
    ) -> None:
        """After a driver died: tell asked trials that Parquet recorded; fail those nobody will finish
        (asked after Tune's last snapshot and lost with the driver; ``owned``: those Tune will run, None
        when not known yet); add the recorded trials the study does not hold at all (its journal was cut
        or lost), so that its search goes on from them."""
        study = self.get(cell_key)
        known = set()
        for trial in study.get_trials(deepcopy=False):
            trial_id = trial.user_attrs.get("trial_id")
            known.add(trial_id)
            if trial.state != TrialState.RUNNING:
                continue
            if trial_id in recorded:
                self._tell(study, trial.number, recorded[trial_id])
            elif owned is not None and trial_id not in owned:
                study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        for trial_id, row in recorded.items():
            if trial_id not in known:
                study.add_trial(self._retold(row))

    def _retold(self, row: Mapping[str, Any]) -> optuna.trial.FrozenTrial:
        """A recorded trial as its study would hold it: its searched values, state and metric."""
        space = self._plan.spec.search.space
        state = _STATE.get(row["status"], TrialState.FAIL)
        value = _plain(row.get(f"final_{self._plan.metric}"))
        if state == TrialState.COMPLETE and value is None:
            state = TrialState.FAIL
        params = {n: v for n in space if (v := _plain(row.get(n))) is not None}
        dists = {name: distribution(space[name]) for name in params}
        params = {
            n: int(v) if isinstance(dists[n], IntDistribution) else v for n, v in params.items()
        }
        return create_trial(
            params=params,
            distributions=dists,
            value=float(value) if state == TrialState.COMPLETE else None,
            state=state,
            user_attrs={"trial_id": row["trial_id"]},
        )


def _plain(value: Any) -> Any:
    """A Parquet value as Python holds it (pandas gives numpy scalars, and NaN for a missing one)."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and not math.isfinite(value) else value
