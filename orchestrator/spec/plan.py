"""A validated spec joined with its trainable: the cells, the metrics and how trial configs are built.

Everything here runs before Ray starts, so a spec the trainable would reject (an unknown task, a
metric it never reports) costs milliseconds, not a cluster start-up.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from orchestrator.spec.asha_fit import fit_asha
from orchestrator.spec.cells import Cell, expand
from orchestrator.spec.packs import pack_config, pack_size
from orchestrator.spec.schema import (
    CommandSpec,
    SpecError,
    SweepSpec,
    load_spec,
    parse_spec,
    variants_axis_is_a_key,
)
from trainables import ConfigError, Mode, Report, Trainable, get_trainable
from trainables.api import guess_mode
from trainables.command import command_trainable


@dataclass(frozen=True)
class SweepPlan:
    spec: SweepSpec
    trainable: Trainable
    cells: list[Cell]
    modes: dict[str, Mode]
    """The metrics known before any report, each with the direction in which it improves: all a declared
    trainable reports, or the spec's metric and curves for a bare function (ResultsWriter adds the rest)."""
    epochs: int
    """The longest a trial runs, in reported epochs: ASHA's max_t."""
    members_per_trial: int | str
    """The spec's members per trial, or 1 where the search space has a key the trainable cannot stack."""
    directory: Path
    """The spec's directory: where a trainable's module or command is looked for (and the command runs)."""
    ref: str | None
    """How a worker finds the trainable again (a name or module:attr); None when it travels by value (a
    command, or a trainable handed to ``plan_sweep`` as an object)."""

    @cached_property
    def _probe_configs(self) -> dict[str, dict[str, Any]]:
        """Each cell's resolved config with representative searched values: what estimates are made of."""
        probe = representative_params(self.spec)
        return {
            cell.key: self.trainable.resolved(
                trainable_config(self.spec, plan_config(self.spec, cell, probe))
            )
            for cell in self.cells
        }

    @cached_property
    def step_costs(self) -> dict[str, float | None]:
        """One training step's multiply-adds by cell key, as the trainable estimates them (None where it
        declares no ``step_cost``). Computed when first needed: a built-in's estimate builds the cell's
        model, which imports torch, and validating a spec needs neither."""
        cost = self.trainable.step_cost
        return {k: cost(c) if cost else None for k, c in self._probe_configs.items()}

    @cached_property
    def pack_sizes(self) -> dict[str, int]:
        """Members per Tune trial, by cell key (1: unpacked)."""
        costs = self.step_costs if self.members_per_trial == "auto" else {}
        return {
            cell.key: pack_size(
                costs.get(cell.key),
                self.spec.seeds,
                self.spec.samples_per_cell,
                self.members_per_trial,
                gpu=self.spec.resources.gpu > 0,
            )
            for cell in self.cells
        }

    @cached_property
    def longest_first(self) -> list[Cell]:
        """The cells by their packs' estimated work, largest first (as declared without estimates): handed
        out in this order, the last trials of a round are the short ones, so no core idles long at its end."""
        costs, horizon = self.step_costs, self.trainable.horizon
        if any(cost is None for cost in costs.values()):
            return list(self.cells)

        def work(cell: Cell) -> float:
            epochs = int(self._probe_configs[cell.key].get(horizon) or self.epochs)
            return costs[cell.key] * self.pack_sizes[cell.key] * epochs

        return sorted(self.cells, key=work, reverse=True)

    @property
    def axes(self) -> list[str]:
        return list(self.spec.axes)

    @property
    def metric(self) -> str:
        return self.spec.metric.name

    @property
    def mode(self) -> Mode:
        return self.spec.metric.mode  # filled in by plan_sweep

    def trial_status(self, config: dict[str, Any], last: Report | None) -> str:
        """completed | pruned | diverged for a trial that ended without error, from its data alone.

        Derived rather than remembered, so a restored driver (whose scheduler is a new object)
        classifies trials exactly as the original one did.
        """
        if not last:
            return "errored"
        value = last.mean(self.metric)
        if value is not None and not math.isfinite(
            value
        ):  # the seed mean is NaN only when every seed diverged
            return "diverged"
        resolved = self.trainable.resolved(trainable_config(self.spec, config))
        target = int(resolved.get(self.trainable.horizon) or self.epochs)
        return "pruned" if last.epoch < target else "completed"

    def trial_config(self, cell: Cell, params: list[dict[str, Any]]) -> dict[str, Any]:
        """The config one Tune trial trains: fixed values, its cell's values, the sampled hyper-parameters of
        its member (unpacked) or of each of its members (packed)."""
        if self.pack_sizes[cell.key] == 1:
            (only,) = params
            return plan_config(self.spec, cell, only)
        return pack_config(plan_config(self.spec, cell, {}), params)


def _where(spec: SweepSpec, key: str) -> str:
    for place, keys in (
        ("fixed", spec.fixed),
        ("axes", spec.axes),
        ("search.space", spec.search.space),
    ):
        if key in keys:
            return f"{place}.{key}"
    for variant, values in (spec.variants.configs if spec.variants else {}).items():
        if key in values:
            return f"axes.{spec.variants.axis}.variants.{variant}.{key}"
    return key


SWEEP_FILE = "sweep.json"
"""Beside a sweep's ``spec.yaml``: what a resume must not change, and the spec's original directory."""


SWEEP_FIELDS = ("trainable", "fixed", "axes", "search", "seeds", "metric", "scheduler")
"""What ``sweep.json`` records of the spec, beside its ``directory``: the fields a resume must not change."""


def load_plan(root: Path) -> SweepPlan:
    """The plan of the sweep in ``root`` (its ``spec.yaml``, its trainable found as when it started); a
    damaged ``spec.yaml`` or ``sweep.json`` is a one-line SpecError naming it."""
    spec = load_spec(root / "spec.yaml")
    sweep = root / SWEEP_FILE
    directory = sweep_record(sweep, spec).get("directory") if sweep.exists() else None
    return plan_sweep(
        spec,
        str(root / "spec.yaml"),
        directory=Path(directory) if directory else None,
    )


def sweep_record(path: Path, spec: SweepSpec) -> dict[str, Any]:
    """``sweep.json``, checked before anything trusts it: a JSON object with every field of
    ``SWEEP_FIELDS``, each valid as the spec schema types it, and ``directory`` (if any) a string."""
    advice = "restore it from a backup: it records how the sweep started"
    try:
        record = json.loads(path.read_text())
    except OSError as err:
        raise SpecError(f"{path}: cannot read ({err.strerror}); {advice}") from None
    except ValueError as err:  # not UTF-8, not JSON
        raise SpecError(f"{path}: not JSON ({err}); {advice}") from None
    if not isinstance(record, dict):
        raise SpecError(f"{path}: expected a JSON object, got {type(record).__name__}; {advice}")
    if missing := [f for f in SWEEP_FIELDS if f not in record]:
        raise SpecError(f"{path}: {missing[0]}: required field is missing; {advice}")
    if not isinstance(record.get("directory", ""), str):
        raise SpecError(f"{path}: directory: expected a string (a path); {advice}")
    try:
        parse_spec(
            {**spec.model_dump(mode="json"), **{f: record[f] for f in SWEEP_FIELDS}}, str(path)
        )
    except SpecError as err:
        raise SpecError(f"{err}; {advice}") from None
    return record


def sweep_key(root: Path, spec: SweepSpec) -> str:
    """The sweep's identity: the id in ``sweep.json``, which a copied or moved results directory keeps
    (Tune's objects find their driver by it, MLflow its runs); the directory's path for a sweep started
    before ids were written."""
    stored = sweep_record(root / SWEEP_FILE, spec)
    return str(stored.get("id") or root.resolve())


def find_trainable(spec: SweepSpec, directory: Path) -> Trainable:
    """The spec's trainable: a command, or a name / module:function looked up from ``directory``, the working
    directory, then sys.path. Raises ConfigError on the key ``trainable``."""
    if isinstance(spec.trainable, CommandSpec):
        return command_trainable(spec.trainable.model_dump(), directory)
    return get_trainable(spec.trainable, [directory, Path.cwd()])


def plan_sweep(
    spec: SweepSpec,
    source: str = "spec",
    trainable: Trainable | None = None,
    directory: Path | None = None,
) -> SweepPlan:
    """Check the spec against its trainable (``trainable`` overrides the spec's); raises a one-line SpecError
    naming the field. ``directory``: where the spec's trainable is looked for (default: the spec file's)."""
    directory = (directory or (Path(source).parent if source != "spec" else Path.cwd())).resolve()
    ref = spec.trainable if trainable is None and isinstance(spec.trainable, str) else None
    try:
        trainable = trainable or find_trainable(spec, directory)
    except ConfigError as err:
        raise SpecError(f"{source}: {err.key}: {err.expected}") from None
    _check_each_value(spec, trainable, source)
    cells = expand(spec.axes)
    probe = representative_params(spec)
    modes: dict[str, Mode] | None = {}
    epochs = 0
    curves: dict[str, str] = {}
    requested = _requested_pack(spec, trainable, source)
    for cell in cells:
        try:
            resolved = trainable.resolved(trainable_config(spec, plan_config(spec, cell, probe)))
        except ConfigError as err:
            raise SpecError(f"{source}: {_where(spec, err.key)}: {err.expected}") from None
        if spec.variants and spec.variants.axis in resolved:
            raise SpecError(f"{source}: {variants_axis_is_a_key(spec.variants.axis)}")
        declared = trainable.modes(resolved)
        modes = None if declared is None or modes is None else {**modes, **declared}
        curves.update(trainable.curves(resolved) if trainable.curves else {})
        epochs = max(epochs, int(resolved.get(trainable.horizon, 0) or 0))
    if (
        modes is None
    ):  # a bare function: its metrics are what it reports; the spec names those it needs
        wanted = [spec.metric.name, *(c.y for c in spec.curves if c.kind != "position")]
        modes = {
            m: spec.metric.mode if m == spec.metric.name and spec.metric.mode else guess_mode(m)
            for m in wanted
        }
    if spec.metric.name not in modes:
        raise SpecError(
            f"{source}: metric.name: {spec.metric.name!r} is not reported by {trainable.name}; "
            f"expected one of {sorted(modes)}"
        )
    for i, curve in enumerate(spec.curves):
        reported = curves if curve.kind == "position" else modes
        if curve.y not in reported:
            what = "per-position curve" if curve.kind == "position" else "metric"
            raise SpecError(
                f"{source}: curves.{i}.y: {curve.y!r} is not a {what} {trainable.name} reports; "
                f"expected one of {sorted(reported)}"
            )
    if (
        spec.metric.mode is None
    ):  # written out in spec.yaml, so readers of results need no trainable
        spec = spec.model_copy(
            update={"metric": spec.metric.model_copy(update={"mode": modes[spec.metric.name]})}
        )
    if spec.scheduler.asha is not None:
        spec, epochs = fit_asha(spec, epochs, _where(spec, trainable.horizon), trainable, source)
    return SweepPlan(spec, trainable, cells, modes, epochs, requested, directory, ref)


def representative_params(spec: SweepSpec) -> dict[str, Any]:
    """A value of each searched hyper-parameter: what a cell's configs are checked (and sized) with."""
    return {name: p.representative() for name, p in spec.search.space.items()}


def _check_each_value(spec: SweepSpec, trainable: Trainable, source: str) -> None:
    """Every axis value and every value a search may draw (each choice, both ends of a range), each once in
    the first cell's config: a value the trainable refuses fails here, naming its field, however rarely
    a sample would draw it, for the sum of the lists' lengths rather than their product."""
    first = expand({name: values[:1] for name, values in spec.axes.items()})[0]
    base = trainable_config(spec, plan_config(spec, first, representative_params(spec)))
    hidden = spec.variants.axis if spec.variants else None  # each variant: with every other cell
    varied = [(n, v) for n, values in spec.axes.items() if n != hidden for v in values[1:]]
    varied += [(name, v) for name, p in spec.search.space.items() for v in p.extremes()]
    for name, value in varied:  # the first cell itself is checked with every other cell
        try:
            trainable.resolved({**base, name: value})
        except ConfigError as err:
            raise SpecError(f"{source}: {_where(spec, err.key)}: {err.expected}") from None


def _requested_pack(spec: SweepSpec, trainable: Trainable, source: str) -> int | str:
    """The spec's members per trial, or 1 where members would differ in a key the trainable cannot stack."""
    unstackable = sorted(set(spec.search.space) - trainable.stackable)
    requested = spec.resources.members_per_trial
    if not unstackable:
        return requested
    if requested not in ("auto", 1):
        raise SpecError(
            f"{source}: resources.members_per_trial: expected 1 or auto: the members of one trial may "
            f"differ only in {sorted(trainable.stackable) or 'nothing'} for {trainable.name}, "
            f"and search.space has {unstackable[0]!r}"
        )
    return 1


def plan_config(spec: SweepSpec, cell: Cell, params: dict[str, Any]) -> dict[str, Any]:
    """Fixed values, then the values of the cell's variant, then the cell's values, then sampled
    hyper-parameters (the seeds are the runner's). A variants axis's name is kept, as every axis value is
    (cell keys, Parquet, MLflow), and taken out before the trainable sees it (:func:`trainable_config`)."""
    return {**spec.fixed, **spec.variant_values(cell.values), **cell.values, **params}


def trainable_config(spec: SweepSpec, config: dict[str, Any]) -> dict[str, Any]:
    """A trial's config as its trainable takes it: without the variants axis's name."""
    hidden = spec.variants.axis if spec.variants else None
    return {k: v for k, v in config.items() if k != hidden}
