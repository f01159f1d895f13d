"""This driver's live objects, by sweep: what Tune's pickled scheduler and callback reach at run time.

Tune pickles its scheduler and callbacks into its experiment state so that a sweep can be restored, but
what they feed (a writer buffering rows, a tracking process, a live progress bar, the members stopped
early) belongs to one driver process. So they pickle as the sweep's key (the id in its ``sweep.json``,
which stays when the results directory is copied or moved), and each driver attaches its own
:class:`DriverSinks` under that key before ``fit()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.answers.progress import Progress
from orchestrator.spec.cells import cell_key
from orchestrator.spec.plan import SweepPlan
from orchestrator.store.checkpoints import ExperimentStore
from orchestrator.store.results import ResultsWriter
from orchestrator.store.tracking import Tracker
from orchestrator.tune.interrupts import Interrupt
from orchestrator.tune.packing import Member, MemberStops, members_of
from orchestrator.tune.studies import Studies

if TYPE_CHECKING:
    from ray.tune.experiment import Trial


@dataclass
class DriverSinks:
    plan: SweepPlan
    root: Path
    """The sweep's results directory, where this driver found it."""
    writer: ResultsWriter
    tracker: Tracker | None
    progress: Progress
    studies: Studies
    stops: MemberStops
    store: ExperimentStore
    """Where Tune keeps the experiment, as this driver reaches it."""
    interrupt: Interrupt = field(default_factory=Interrupt)
    packs: dict[str, tuple[str, list[Member]]] = field(default_factory=dict)
    """The cell and members of each Tune trial held (see :meth:`pack`)."""
    queued: dict[str, tuple[str, list[Member]]] = field(default_factory=dict)
    """The cell and members of the Tune trials this driver will run, as the scheduler saw them added: after
    a restore, exactly the trials Tune restored to run again, whatever its saved searcher state says."""

    def pack(self, trial: "Trial") -> tuple[str, list[Member]]:
        """A Tune trial's cell and members, computed once for the scheduler and the callback (results
        arrive many times a second); either may drop it when told the trial ended (the other recomputes it)."""
        if trial.trial_id not in self.packs:
            self.packs[trial.trial_id] = (
                cell_key(trial.config, self.plan.axes),
                members_of(trial.trial_id, trial.config),
            )
        return self.packs[trial.trial_id]


_ATTACHED: dict[str, DriverSinks] = {}


def attach(key: str, sinks: DriverSinks) -> None:
    _ATTACHED[key] = sinks


def attached(key: str) -> DriverSinks:
    return _ATTACHED[key]
