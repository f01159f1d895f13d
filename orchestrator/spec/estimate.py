"""``scalesweep run SPEC --dry-run``: how many trials a sweep runs and what they cost, before anything runs.

The cost is measured, not guessed: a Tune trial of the cheapest and of the dearest cell is run in-process
on this machine as a worker runs it (:func:`trainables.run_trainable`: every seed, the whole pack), and
stopped at its third report or at the first report past a few seconds. Cheapest and dearest by the work of
one stacked step: the trainable's ``step_cost`` × members per trial, or, for a trainable without one, the
product of the cell's integer axis values (data sizes, widths and depths are integers; learning rates are
not). Seconds per epoch come from the time between the first and the last report (the time before the
first, less that rate, is set-up); every other cell's seconds per epoch are a power law in the work, a
least-squares line in log-log through the calibrated points, and its set-up the largest measured. A trial
costs set-up + seconds per epoch × its epochs, the sweep the sum over its Tune trials: an upper bound when
ASHA stops trials early, and on an adaptive axis the dearest cells the search may take. Nothing is written
and Ray is not started.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.spec.cells import Cell
from orchestrator.spec.plan import SweepPlan, plan_config, representative_params, trainable_config
from orchestrator.spec.schema import SpecError
from trainables import Report, Reporter, run_trainable
from trainables.stacked.process import prepare_worker

REPORTS = 3
"""Reports a calibration run makes at most: two give a rate free of set-up, a third steadies it."""
CAP_S = 3.0
"""Seconds after which a calibration run stops at its next report."""


@dataclass(frozen=True)
class Point:
    """One calibrated cell: a Tune trial of it, run for ``epochs`` epochs (in its reports' units)."""

    cell: Cell
    work: float
    epochs: int
    seconds_per_epoch: float
    setup_s: float


@dataclass(frozen=True)
class Estimate:
    """What a sweep runs at most, and the Tune trials' seconds that costs."""

    cells: int
    """Cells the sweep runs at most (fewer than the grid's on an adaptive axis)."""
    trials: int
    tune_trials: int
    packs: tuple[int, int]
    """The smallest and largest members per Tune trial."""
    points: list[Point]
    trial_seconds: float
    """The Tune trials' seconds, summed: each run alone at the calibrated speed, to its last epoch."""


class _Enough(BaseException):
    """Ends a calibration run at a report, as Tune's stop ends a trial: not an Exception a trainable catches."""


def calibrate(plan: SweepPlan, cell: Cell, work: float) -> Point:
    """Run a Tune trial of ``cell`` in-process (its pack and seeds, one torch thread per CPU it holds, as a
    worker runs it) for at most REPORTS reports or CAP_S seconds; its trainable's output goes to stderr."""
    trainable = plan.trainable
    prepare_worker(
        trainable, max(1, int(plan.spec.resources.cpu))
    )  # before the clock, as a warm worker
    config = plan.trial_config(cell, [representative_params(plan.spec)] * plan.pack_sizes[cell.key])
    marks: list[tuple[int, float]] = []
    start = time.perf_counter()

    def mark(report: Report) -> None:
        marks.append((report.epoch, time.perf_counter() - start))
        if len(marks) >= REPORTS or marks[-1][1] >= CAP_S:
            raise _Enough

    own = trainable_config(plan.spec, config)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            run_trainable(trainable, own, plan.spec.seeds, Reporter(mark))
    except _Enough:
        pass
    except Exception as err:  # a dry run's one line, as a bad spec's
        raise SpecError(f"dry run: {cell.key}: the trainable failed: {err}") from None
    if not marks:
        raise SpecError(f"dry run: {cell.key}: the trainable returned without a report")
    (first, t_first), (last, t_last) = marks[0], marks[-1]
    rate = (t_last - t_first) / (last - first) if last > first else t_last / max(1, last)
    return Point(cell, work, last, rate, max(0.0, t_first - rate * first))


def estimate(plan: SweepPlan) -> Estimate:
    """Calibrate the cheapest and the dearest cell, and sum every Tune trial's cost (module docstring)."""
    spec, trainable = plan.spec, plan.trainable
    probe = representative_params(spec)
    resolved = {
        cell.key: trainable.resolved(trainable_config(spec, plan_config(spec, cell, probe)))
        for cell in plan.cells
    }
    counts = [n for n, v in spec.axes.items() if all(_count(x) for x in v)]

    def work(cell: Cell) -> float:
        one = (
            trainable.step_cost(resolved[cell.key])
            if trainable.step_cost
            else math.prod(cell.values[n] for n in counts)
        )
        return one * plan.pack_sizes[cell.key]

    works = {cell.key: work(cell) for cell in plan.cells}
    ends = {min(works, key=works.__getitem__), max(works, key=works.__getitem__)}
    points = [calibrate(plan, c, works[c.key]) for c in plan.cells if c.key in ends]
    rate = _power_law(points)
    setup = max(p.setup_s for p in points)
    costs = []  # (Tune trials, their seconds) per cell
    for cell in plan.cells:
        epochs = min(int(resolved[cell.key].get(trainable.horizon) or plan.epochs), plan.epochs)
        n = math.ceil(spec.samples_per_cell / plan.pack_sizes[cell.key])
        costs.append((n, n * (setup + rate(works[cell.key]) * epochs)))
    taken = sorted(costs, key=lambda c: c[1])[-spec.adaptive_cells :]
    packs = sorted(plan.pack_sizes.values())
    return Estimate(
        cells=spec.adaptive_cells,
        trials=spec.most_trials,
        tune_trials=sum(sorted(n for n, _ in costs)[-spec.adaptive_cells :]),
        packs=(packs[0], packs[-1]),
        points=points,
        trial_seconds=sum(s for _, s in taken),
    )


def _count(value: object) -> bool:
    """A positive integer: a size, a width or a depth, which cost grows with."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _power_law(points: list[Point]) -> Callable[[float], float]:
    """Seconds per epoch as a function of work: a line in log-log through the points (least squares), a
    constant when they share one work."""
    if len({p.work for p in points}) < 2:
        mean = statistics.fmean(p.seconds_per_epoch for p in points)
        return lambda work: mean
    slope, intercept = statistics.linear_regression(
        [math.log(p.work) for p in points],
        [math.log(max(p.seconds_per_epoch, 1e-9)) for p in points],
    )
    return lambda work: math.exp(intercept + slope * math.log(work))


def dry_run(plan: SweepPlan) -> str:
    """The dry run's lines: counts, the calibration points, the estimate in device-hours and on this machine."""
    spec = plan.spec
    est = estimate(plan)
    low, high = est.packs
    packs = f"packs of {low}" if low == high else f"packs of {low}-{high}"
    bound = "≤ " if spec.adaptive else ""
    cells = f"≤ {est.cells} of {spec.n_cells} cells" if spec.adaptive else f"{est.cells} cells"
    lines = [
        f"dry run: {cells} × {spec.samples_per_cell} samples = {bound}{est.trials} trials "
        f"({bound}{est.tune_trials} Tune trials, {packs}), {spec.seeds} seeds each, "
        f"≤ {plan.epochs} epochs"
    ]
    measured = "; ".join(
        f"{p.cell.key}: {p.seconds_per_epoch:.3g} s/epoch + {p.setup_s:.2g} s set-up ({p.epochs} epochs)"
        for p in est.points
    )
    by = "step cost" if plan.trainable.step_cost else "the integer axes' product"
    between = (
        f"; other cells: a power law in {by} between these"
        if len(est.points) > 1
        else "; every cell taken to cost as much"
    )
    lines.append(f"calibrated: {measured}{between}")
    kind, each = (
        ("GPU", spec.resources.gpu) if spec.resources.gpu > 0 else ("CPU", spec.resources.cpu)
    )
    hours = est.trial_seconds * each / 3600
    devices = _gpus() if kind == "GPU" else len(os.sched_getaffinity(0))
    side_by_side = spec.resources.max_concurrent_trials or math.floor(devices / each + 1e-9)
    here = (
        f"≤ {_duration(est.trial_seconds / min(side_by_side, est.tune_trials))} on this machine's "
        f"{devices} {kind}s"
        if side_by_side
        else f"this machine has no {kind} to run them on"
    )
    why = (
        "upper bound without ASHA's early stops"
        if spec.scheduler.asha
        else "every trial runs to its end"
    )
    adaptive = ", at most the adaptive search's dearest cells" if spec.adaptive else ""
    lines.append(f"estimate: ≤ {hours:.2g} {kind}-hours ({here}), {why}{adaptive}")
    return "\n".join(lines)


def _gpus() -> int:
    """GPUs torch sees here (0 when the trainable never imported torch)."""
    torch = sys.modules.get("torch")
    return torch.cuda.device_count() if torch is not None else 0


def _duration(seconds: float) -> str:
    """Rounded up: the figure is a bound."""
    if seconds < 120:
        return f"{math.ceil(seconds)} s"
    return f"{math.ceil(seconds / 60)} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"
