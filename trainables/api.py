"""The public contract between a trainable and whoever runs it (Ray Tune, the CLI, tests).

A trainable is a plain function ``train(config, report)``: ``config`` holds the trial's values and
``seed``; ``report({"epoch": e, "test_loss": x, ...})`` is called once per evaluation. Everything the
orchestrator may know about it *before* Ray starts (which keys it accepts, which metrics it reports and
in which direction they improve, what may be stacked) lives on its :class:`Trainable`, so a bad spec
fails in milliseconds; a bare function has none of it, and its metrics are learnt from its reports.

What flows back is a :class:`Report`: one :class:`Row` per (pack member, seed) that trained, so the
orchestrator never re-derives which seed or member a value belongs to, and :func:`seed_mean` is the one
rule by which a member's metric is averaged over its seeds.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import import_module
from typing import Any, Literal

from .keys import resolve_defaults

Mode = Literal["min", "max"]
MEMBERS = "members"
"""The config key of a packed trial: [{key: value}, ...], one entry per member (see trainables/packs.py)."""
EARLIER = "earlier"
"""The key of a report sent to the driver that carries reports made before it and not yet sent: held back
to save the driver's time, or sent before a restore and perhaps lost with a killed driver."""
ROWS = "rows"
"""The key of a sent report holding its rows (see :meth:`Report.to_wire`)."""
StateFn = Callable[[], Any]
TrainFn = Callable[[dict[str, Any], "Reporter"], None]


@dataclass(frozen=True)
class Row:
    """What one replica (pack member ``member``, seed ``seed``) measured at one evaluation."""

    member: int
    seed: int
    metrics: dict[str, float]
    diverged: bool = False
    """Its training blew up (NaN/inf): its values are NaN from then on and no mean counts them."""
    curves: dict[str, list[float]] | None = None
    """Per-position curves (e.g. accuracy by context position), on the last report only."""


@dataclass(frozen=True)
class Report:
    """One evaluation of a trial: its epoch (the trial's time in the units ASHA decides on) and its rows."""

    epoch: int
    rows: list[Row]

    def to_wire(self) -> dict[str, Any]:
        """Plain lists and dicts, as Ray Tune carries and stores a result (it flattens nested dicts but
        leaves lists alone)."""
        return {
            "epoch": self.epoch,
            ROWS: [[r.member, r.seed, r.diverged, r.metrics, r.curves] for r in self.rows],
        }

    @classmethod
    def from_wire(cls, result: Mapping[str, Any]) -> "Report":
        return cls(
            int(result["epoch"]), [Row(m, s, dict(v), d, c) for m, s, d, v, c in result[ROWS]]
        )

    def members(self) -> dict[int, "Report"]:
        """Each pack member's own report (its rows, in order): what the member alone would have reported."""
        out: dict[int, list[Row]] = {}
        for row in self.rows:
            out.setdefault(row.member, []).append(row)
        return {member: Report(self.epoch, rows) for member, rows in out.items()}

    def mean(self, metric: str) -> float | None:
        """The seed mean of ``metric`` over these rows (:func:`seed_mean`)."""
        return seed_mean(self.rows, metric)


def seed_mean(rows: Sequence[Row], metric: str) -> float | None:
    """The one rule for a member's metric: the mean over its rows that have not diverged and hold a finite
    value; NaN when rows hold the metric but none such is left (all diverged); None when no row holds it."""
    held = [r for r in rows if metric in r.metrics]
    if not held:
        return None
    live = [r.metrics[metric] for r in held if not r.diverged and math.isfinite(r.metrics[metric])]
    return math.fsum(live) / len(live) if live else math.nan


def single_row(metrics: Mapping[str, Any], seed: int) -> Report:
    """A plain ``report({"epoch": e, ...})`` of one function replica: every numeric key but ``epoch`` is a
    metric; a non-finite value marks the replica diverged at this report."""
    if "epoch" not in metrics:
        raise ValueError(
            f"report: expected a dict with 'epoch' and numeric metrics, got keys {sorted(metrics)}"
        )
    values = {
        k: float(v)
        for k, v in metrics.items()
        if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    return Report(
        int(metrics["epoch"]), [Row(0, seed, values, not all(map(math.isfinite, values.values())))]
    )


class Reporter:
    """What a trainable calls: ``report(metrics, state=None)`` once per evaluation.

    ``metrics`` is a dict with ``epoch`` and numeric metrics (a function trainable, one seed) or a
    :class:`Report` (a trainable that stacks members and seeds itself). ``state`` is a zero-argument callable
    returning whatever the trainable needs to continue, called only when the runner decides to checkpoint, so a
    trainable never pays for serialisation it does not need. The state is stored as data, never pickled, so
    that a checkpoint cannot run code when it is read: dicts (any keys), lists, tuples, str, bytes, bool,
    None, ints, floats, NumPy arrays and scalars, torch tensors (restored on the CPU); anything else fails at
    the checkpoint, naming where it is in the state.
    """

    def __init__(self, fn: Callable[[Report], None] | None = None) -> None:
        self._fn = fn

    def __call__(self, metrics: Mapping[str, Any] | Report, state: StateFn | None = None) -> None:
        if self._fn is not None:
            self._fn(metrics if isinstance(metrics, Report) else single_row(metrics, 0))

    def restored_state(self) -> Any:
        """The state saved by this trial's last checkpoint, or None on a fresh start."""
        return None

    def stopped(self) -> set[int]:
        """Pack members the runner has stopped early (e.g. by ASHA): the trainable drops them from its stack
        and ends once none is left. Asked after each report; may lag the runner's decision by a report."""
        return set()


def guess_mode(metric: str) -> Mode:
    """A metric's direction when nobody declared it: accuracies and scores rise, everything else falls."""
    rising = ("acc", "auc", "score", "reward", "return", "f1")
    return "max" if any(w in metric.lower() for w in rising) else "min"


@dataclass(frozen=True)
class Trainable:
    """A trainable with what the orchestrator validates against, for a package that wants bad specs caught in
    milliseconds and its configs packed. Give ``train`` as a callable or as ``"module:function"`` (imported at
    the first call, so that validating a spec imports nothing heavy such as torch).

    Keys: ``defaults`` ({key: default}: unknown keys are refused, values coerced to the default's type) or,
    for anything finer, ``resolve`` (config → full config; raises :class:`ConfigError`). Neither: any key.
    ``metrics``: {name: "min" | "max"} or a callable of the resolved config; None: learnt from the reports.
    """

    train: TrainFn | str
    name: str = ""
    defaults: Mapping[str, Any] | None = None
    resolve: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    metrics: Mapping[str, Mode] | Callable[[Mapping[str, Any]], dict[str, Mode]] | None = None
    horizon: str = "epochs"
    """The config key holding a trial's length in the units of its reports' ``epoch`` (ASHA's time)."""
    curves: Callable[[Mapping[str, Any]], dict[str, str]] | None = None
    """Per-position curves a resolved config adds to its last report (``Row.curves``), each with the scalar
    metric that is its mean; None for trainables without any."""
    stackable: frozenset[str] = frozenset()
    """Keys the members of one packed trial (``members: [{key: value}, ...]``) may set differently: values
    that change no tensor shape. Empty: the trainable does not pack."""
    step_cost: Callable[[Mapping[str, Any]], float] | None = None
    """Multiply-adds of one training step of one member of a resolved config: how packs are sized. None:
    packs of one."""
    stacks_seeds: bool = False
    """True: ``train`` gets ``seeds`` in its config and reports every seed's row itself (one stacked model).
    False: the runner calls ``train`` once per seed, with ``seed`` = base seed + s, and joins their reports."""

    def resolved(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The full config (defaults filled in); raises ConfigError on an unknown key or a bad value."""
        if self.resolve is not None:
            return self.resolve(config)
        if self.defaults is None:
            return dict(config)
        return resolve_defaults(config, self.defaults)

    def modes(self, config: Mapping[str, Any]) -> dict[str, Mode] | None:
        """The metrics a resolved config reports, each with its direction; None when only reports tell."""
        if self.metrics is None or isinstance(self.metrics, Mapping):
            return dict(self.metrics) if self.metrics is not None else None
        return self.metrics(config)

    def function(self) -> TrainFn:
        """``train`` as a callable (importing ``"module:function"`` here, at the first call)."""
        if callable(self.train):
            return self.train
        module, _, attr = self.train.partition(":")
        return getattr(import_module(module), attr)


def check_signature(fn: Any, where: str) -> None:
    """Raise TypeError naming ``where`` unless ``fn`` can be called as ``fn(config, report)``."""
    if not callable(fn):
        raise TypeError(
            f"{where}: expected a function train(config, report) or a scalesweep.Trainable, "
            f"got {type(fn).__name__}"
        )
    try:
        inspect.signature(fn).bind(None, None)
    except TypeError:
        raise TypeError(
            f"{where}: expected a function taking (config, report), got {fn.__name__}"
            f"{inspect.signature(fn)}"
        ) from None
    except ValueError:  # a builtin without a signature: trust it
        pass
