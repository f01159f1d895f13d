"""This driver's live objects, by sweep: what Tune's pickled scheduler and callback reach at run time.

Tune pickles its scheduler and callbacks into its experiment state so that a sweep can be restored, but
what they feed (a writer buffering rows, a tracking thread, a live progress bar, the members stopped
early) belongs to one driver process. So they pickle as the sweep's key (its results directory), and
each driver attaches its own :class:`DriverSinks` under that key before ``fit()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.answers.progress import Progress
from orchestrator.spec.plan import SweepPlan
from orchestrator.store.results import ResultsWriter
from orchestrator.store.tracking import Tracker
from orchestrator.tune.packing import Member, MemberStops
from orchestrator.tune.studies import Studies


@dataclass
class DriverSinks:
    plan: SweepPlan
    writer: ResultsWriter
    tracker: Tracker | None
    progress: Progress
    studies: Studies
    stops: MemberStops
    packs: dict[str, list[Member]] = field(default_factory=dict)  # members of the Tune trials seen
    queued: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    """Tune trials this driver will run (cell, member ids), as the scheduler saw them added: after a
    restore, exactly the trials Tune restored to run again, whatever its saved searcher state says."""


_ATTACHED: dict[str, DriverSinks] = {}


def attach(key: str, sinks: DriverSinks) -> None:
    _ATTACHED[key] = sinks


def attached(key: str) -> DriverSinks:
    return _ATTACHED[key]
