"""The sweep spec: one YAML file per research question, validated before Ray starts.

Every problem is reported as a :class:`SpecError` whose message is one line naming the file, the
field and what was expected, because a researcher reads it in a terminal, not a debugger.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from orchestrator.spec import yamlfile
from orchestrator.spec.adaptive import adaptive_grid, max_probes
from orchestrator.spec.columns import INT64, Scalar, one_type
from orchestrator.spec.messages import format_validation_error
from trainables.keys import suggest

DISTRIBUTIONS = ("loguniform", "uniform", "int", "logint", "choice")
IntRange = tuple[int, int]


class SpecError(ValueError):
    """Bad input: a spec that cannot run. The CLI prints it as one line and exits 2, so a line break that
    a quoted value or a file name brings into the message is written as ``\\n``."""

    def __init__(self, message: str) -> None:
        super().__init__("\\n".join(message.splitlines()))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Param(_Strict):
    """One searched hyper-parameter: exactly one distribution, e.g. ``{loguniform: [1e-4, 1e-2]}``."""

    loguniform: tuple[float, float] | None = None
    uniform: tuple[float, float] | None = None
    int: IntRange | None = None
    logint: IntRange | None = None  # not tuple[int, int]: in this class `int` names the field above
    choice: list[Scalar] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "Param":
        given = [d for d in DISTRIBUTIONS if getattr(self, d) is not None]
        if len(given) != 1:
            raise ValueError(f"expected exactly one of {', '.join(DISTRIBUTIONS)}")
        low_high = getattr(self, given[0])
        if given[0] == "choice":
            if not low_high:
                raise ValueError("choice: expected a non-empty list")
            try:
                self.choice = one_type(low_high)
            except ValueError as err:
                raise ValueError(f"choice: {err}") from None
        elif not all(-INT64 <= v < INT64 and math.isfinite(v) for v in low_high):
            raise ValueError(f"{given[0]}: expected finite [low, high] within ±2**63")
        elif not low_high[0] < low_high[1] or (
            given[0] in ("loguniform", "logint") and low_high[0] <= 0
        ):
            raise ValueError(
                f"{given[0]}: expected [low, high] with 0 < low < high"
                if given[0].startswith("log")
                else f"{given[0]}: expected [low, high] with low < high"
            )
        return self

    @property
    def distribution(self) -> str:
        return next(d for d in DISTRIBUTIONS if getattr(self, d) is not None)

    @property
    def args(self) -> Any:
        return getattr(self, self.distribution)

    def representative(self) -> Scalar:
        """A value inside the distribution (its lower end), to validate configs before any sampling."""
        return self.args[0]

    def extremes(self) -> list[Scalar]:
        """The values that stand for every one a trial may draw: each choice, or both ends of a range (a
        trainable's range check refuses an inner value only if it refuses an end)."""
        return list(self.args)


class SearchSpec(_Strict):
    algorithm: Literal["optuna", "random", "grid-only"] = "optuna"
    samples_per_cell: int = Field(1, ge=1)
    space: dict[str, Param] = {}
    # Each cell's Optuna sampler is seeded with seed × 100,003 + the cell's index (orchestrator/tune/studies.py),
    # which numpy needs within [0, 2**32): 40,000 keeps it there for up to ~250 million cells.
    seed: int = Field(0, ge=0, le=40_000)

    @model_validator(mode="after")
    def _grid_only_has_no_space(self) -> "SearchSpec":
        if self.algorithm == "grid-only" and self.space:
            raise ValueError(
                "grid-only searches nothing: expected an empty space (or algorithm optuna/random)"
            )
        return self


class MetricSpec(_Strict):
    name: str = "test_loss"
    mode: Literal["min", "max"] | None = None  # None: the direction the trainable declares


class AshaSpec(_Strict):
    max_t: int | None = Field(None, ge=1)  # None: the trial's epochs
    grace_period: int = Field(1, ge=1)
    reduction_factor: float = Field(3.0, gt=1, le=1000, allow_inf_nan=False)


class SchedulerSpec(_Strict):
    asha: AshaSpec | None = None


class ResourcesSpec(_Strict):
    # per Tune trial; the upper bounds only catch typos (no machine gives one trial more)
    cpu: float = Field(1.0, gt=0, le=1024, allow_inf_nan=False)
    gpu: float = Field(0.0, ge=0, le=64, allow_inf_nan=False)
    max_concurrent_trials: int | None = Field(
        None, ge=1, le=1_000_000
    )  # None: as many as the cluster fits
    # Configs of one cell trained as one stacked Tune trial (orchestrator/spec/packs.py); auto: from the
    # model's size and the device.
    members_per_trial: Literal["auto"] | int = "auto"

    @field_validator("members_per_trial")
    @classmethod
    def _positive(cls, value: Literal["auto"] | int) -> Literal["auto"] | int:
        if value != "auto" and value < 1:
            raise ValueError("expected auto or an integer ≥ 1")
        return value


class StorageSpec(_Strict):
    results: str = "results"
    tracking_uri: str | None = "sqlite:///mlflow.db"  # null: no MLflow tracking
    # Tune's experiment state and trial checkpoints; null: under the results directory. A path every
    # node mounts, or a URI (s3://bucket/prefix, gs://...) when workers do not share the driver's disk.
    checkpoints: str | None = None


class CurveSpec(_Strict):
    kind: Literal["sample_complexity", "scaling_law", "position"]
    x: str | None = (
        None  # an axis, or "epoch" (the training time of each cell's best trial); none for position
    )
    y: str  # a metric; for position, a per-position curve the trainable reports (e.g. acc_by_k)
    by: list[str] = []
    threshold: float | None = Field(None, allow_inf_nan=False)
    at: Literal["final", "best"] = "final"
    chance: float | None = Field(
        None, allow_inf_nan=False
    )  # the sigmoid's small-x level fixed here (e.g. 1 - 1/vocab); None: fitted

    @model_validator(mode="after")
    def _threshold_for_sample_complexity(self) -> "CurveSpec":
        if self.kind == "sample_complexity" and self.threshold is None:
            raise ValueError("sample_complexity: expected a threshold")
        if (self.x is None) != (self.kind == "position"):
            raise ValueError(
                "x: expected an axis (or epoch) for sample_complexity and scaling_law, none for position"
            )
        if self.kind != "sample_complexity" and self.chance is not None:
            raise ValueError(
                "chance: only sample_complexity fits a sigmoid; remove it from a scaling_law curve"
            )
        return self


class CommandSpec(_Strict):
    """Any program as a trainable: config as key=value arguments, reports as JSON lines on stdout."""

    command: str = Field(min_length=1)


class AdaptiveSpec(_Strict):
    """An axis searched per group for the threshold of a sample-complexity curve instead of swept: written
    ``axes: {n_train: {adaptive: {low: 4, high: 65536}}}``, kept here with the axis's grid in ``axes``."""

    axis: str
    low: int = Field(ge=1)
    high: int = Field(ge=1)
    ratio: float = Field(2.0, gt=1, le=1024, allow_inf_nan=False)

    @property
    def grid(self) -> list[int]:
        return adaptive_grid(self.low, self.high, self.ratio)


class VariantsSpec(_Strict):
    """An axis of named partial configs (``axes: {variant: {variants: {mlp: {model: mlp}, kq: {...}}}}``):
    each cell takes one variant's values over ``fixed``, and the axis holds the names, so that tables and
    plots say ``kq+vo`` rather than a product of flags, and no combination runs twice."""

    axis: str
    configs: dict[str, dict[str, Any]]


class LimitsSpec(_Strict):
    """Ceilings that turn a typo (``seeds: 1e30``, one axis too many) into an error in milliseconds, instead
    of a driver that expands millions of cells for minutes; raise them for a sweep that really is that big."""

    max_trials: int = Field(100_000, ge=1)  # cells × samples per cell
    max_seeds: int = Field(1_000, ge=1)


class SweepSpec(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=100)
    description: str = (
        ""  # the question the sweep answers, in words: `scalesweep report` opens with it
    )
    # an installed name (template, incontext, synthetic, a package's), package.module:function, or {command: ...}
    trainable: str | CommandSpec
    fixed: dict[str, Any] = {}
    axes: dict[str, list[Scalar]]
    search: SearchSpec = SearchSpec()
    seeds: int = Field(1, ge=1)
    metric: MetricSpec = MetricSpec()
    scheduler: SchedulerSpec = SchedulerSpec()
    resources: ResourcesSpec = ResourcesSpec()
    storage: StorageSpec = StorageSpec()
    curves: list[CurveSpec] = []
    max_failures: int = Field(2, ge=0, le=1000)
    checkpoint_every_s: float = Field(
        60.0, ge=0, allow_inf_nan=False
    )  # at most one trial checkpoint per this many seconds
    report_every_s: float = Field(
        1.0, ge=0, allow_inf_nan=False
    )  # a trial sends at most one report per this many seconds, but
    # at once the ones its scheduler decides on (ASHA's rungs); Parquet and MLflow get every epoch either way
    limits: LimitsSpec = LimitsSpec()
    adaptive: AdaptiveSpec | None = None  # filled in from an axis written {adaptive: {...}}
    variants: VariantsSpec | None = None  # filled in from an axis written {variants: {...}}
    _overrides: tuple[str, ...] = PrivateAttr(())  # the --set assignments it was loaded with

    def override_of(self, field: str) -> str | None:
        """The ``--set`` that gave ``field`` (``fixed.epochs``) its value, directly or by setting a mapping
        above it; None for a value from the file or a default. A value typed last is the user's latest word."""
        for assignment in reversed(self._overrides):
            path = assignment.partition("=")[0]
            if field == path or field.startswith(f"{path}."):
                return assignment
        return None

    @model_validator(mode="before")
    @classmethod
    def _variants_axis(cls, raw: Any) -> Any:
        """An axis written ``{variants: {name: {key: value, ...}, ...}}`` becomes the list of its names,
        and ``variants`` records their configs (the spec as run is written in this form)."""
        if (found := _axis_written_as(raw, "variants")) is None:
            return raw
        axes, name, configs = found
        if not isinstance(configs, dict) or not configs:
            raise ValueError(
                f"axes.{name}: expected {{variants: {{mlp: {{model: mlp}}, transformer: {{}}}}}}: "
                "names, each with the values it sets (possibly none)"
            )
        for variant, values in configs.items():
            if not isinstance(variant, str) or not isinstance(values, dict | None):
                raise ValueError(
                    f"axes.{name}.variants.{variant}: expected a name and a mapping of the values "
                    f"it sets, e.g. {{model: mlp}} ({{}} for none)"
                )
        variants = {"axis": name, "configs": {v: values or {} for v, values in configs.items()}}
        return {**raw, "axes": {**axes, name: list(configs)}, "variants": variants}

    @model_validator(mode="before")
    @classmethod
    def _adaptive_axis(cls, raw: Any) -> Any:
        """An axis written ``{adaptive: {low, high, ratio}}`` becomes its grid of values, and ``adaptive``
        records it (the spec as run is written in this form, and reads back the same)."""
        if (found := _axis_written_as(raw, "adaptive")) is None:
            return raw
        axes, name, written = found
        if not isinstance(written, dict):
            raise ValueError(
                f"axes.{name}: expected {{adaptive: {{low: 4, high: 65536, ratio: 2}}}}"
            )
        given = {"axis": name, **written}
        try:
            adaptive = AdaptiveSpec.model_validate(given)
        except ValidationError as err:
            problem = format_validation_error(err, given, AdaptiveSpec)
            raise ValueError(f"axes.{name}.adaptive.{problem}") from None
        try:
            grid = adaptive.grid
        except ValueError as err:
            raise ValueError(
                f"axes.{name}.adaptive: {str(err).removeprefix('adaptive grid: ')}"
            ) from None
        return {**raw, "axes": {**axes, name: grid}, "adaptive": adaptive}

    @field_validator("axes")
    @classmethod
    def _axes_non_empty(cls, axes: dict[str, list[Scalar]]) -> dict[str, list[Scalar]]:
        if not axes:
            raise ValueError("expected at least one axis")
        for name, values in axes.items():
            if not values:
                raise ValueError(f"{name}: expected a non-empty list of values")
            try:
                axes[name] = values = one_type(values)
            except ValueError as err:
                raise ValueError(f"{name}: {err}") from None
            if len(set(map(repr, values))) != len(values):
                raise ValueError(f"{name}: expected distinct values")
        return axes

    @model_validator(mode="after")
    def _variants_set_fixed_values(self) -> "SweepSpec":
        """A variant sets values of keys that ``fixed`` may also hold (the variant wins); an axis or a
        searched key would make two sources for one value."""
        if self.variants is None:
            return self
        name = self.variants.axis
        if self.axes.get(name) != list(self.variants.configs):
            raise ValueError(
                f"axes.{name}: expected the names of variants ({list(self.variants.configs)})"
            )
        if name in self.fixed or any(name in values for values in self.variants.configs.values()):
            raise ValueError(variants_axis_is_a_key(name))
        for variant, values in self.variants.configs.items():
            for key in values:
                if key in self.axes or key in self.search.space:
                    place = "an axis" if key in self.axes else "searched"
                    raise ValueError(
                        f"axes.{name}.variants.{variant}.{key}: {key} is {place}; expected a variant "
                        "to set values that are otherwise fixed"
                    )
        return self

    def variant_values(self, values: dict[str, Any]) -> dict[str, Any]:
        """The values a cell's variant sets (none without a variants axis)."""
        if self.variants is None:
            return {}
        return self.variants.configs[values[self.variants.axis]]

    @model_validator(mode="after")
    def _adaptive_has_its_curve(self) -> "SweepSpec":
        """An adaptive axis is searched for the n* of one sample-complexity curve: its y, threshold and
        direction say which probes succeed."""
        if self.adaptive is None:
            return self
        name = self.adaptive.axis
        if self.axes.get(name) != self.adaptive.grid:
            raise ValueError(f"axes.{name}: expected the grid of adaptive ({self.adaptive.grid})")
        if len(self.adaptive_curves) != 1:
            raise ValueError(
                f"axes.{name}: an adaptive axis is searched for n*; expected exactly one curve "
                f"{{kind: sample_complexity, x: {name}, y: ..., threshold: ...}} "
                f"(found {len(self.adaptive_curves)})"
            )
        return self

    @property
    def adaptive_curves(self) -> list[CurveSpec]:
        axis = self.adaptive.axis if self.adaptive else None
        return [c for c in self.curves if c.kind == "sample_complexity" and c.x == axis]

    @property
    def most_trials(self) -> int:
        """The trials the sweep runs at most: all of them on a grid, fewer on an adaptive axis."""
        return self.adaptive_cells * self.samples_per_cell

    @property
    def adaptive_groups(self) -> int:
        """Groups an adaptive axis is searched in: the combinations of the other axes."""
        return self.n_cells // len(self.axes[self.adaptive.axis]) if self.adaptive else 0

    @property
    def adaptive_cells(self) -> int:
        """The most cells the adaptive search takes (the grid's n_cells when there is none)."""
        if self.adaptive is None:
            return self.n_cells
        return self.adaptive_groups * max_probes(len(self.axes[self.adaptive.axis]))

    @model_validator(mode="after")
    def _within_limits(self) -> "SweepSpec":
        """From the lengths alone, before anything is expanded: a 10-million-cell grid fails in a millisecond."""
        limits = self.limits
        if self.seeds > limits.max_seeds:
            raise ValueError(
                f"seeds: expected at most limits.max_seeds ({limits.max_seeds:,}), got {self.seeds:,}; "
                "raise limits.max_seeds to train more replicas"
            )
        if self.total_trials > limits.max_trials:
            lengths = " × ".join(str(len(v)) for v in self.axes.values())
            raise ValueError(
                f"axes: {lengths} = {self.n_cells:,} cells × {self.samples_per_cell:,} samples = "
                f"{self.total_trials:,} trials; expected at most limits.max_trials "
                f"({limits.max_trials:,}): raise it to run more"
            )
        return self

    @model_validator(mode="after")
    def _keys_given_once(self) -> "SweepSpec":
        places = [
            ("fixed", set(self.fixed)),
            ("axes", set(self.axes)),
            ("search.space", set(self.search.space)),
        ]
        for i, (a, ka) in enumerate(places):
            for b, kb in places[i + 1 :]:
                if both := sorted(ka & kb):
                    raise ValueError(
                        f"{both[0]!r} is in both {a} and {b}: expected each key in one place"
                    )
        reserved = {
            "seeds": "expected at the top level of the spec (seeds: S trains S replicas of every trial)",
            "members": "reserved for packed trials (resources.members_per_trial); expected another name",
        }
        for key, expected in reserved.items():
            if key in self.fixed or key in self.axes or key in self.search.space:
                raise ValueError(f"{key}: {expected}, not in fixed, axes or search.space")
        for i, curve in enumerate(self.curves):
            for field, name in [("x", curve.x)] * (curve.x not in (None, "epoch")) + [
                ("by", b) for b in curve.by
            ]:
                if name not in self.axes:
                    raise ValueError(
                        f"curves.{i}.{field}: {name!r} is not an axis; {suggest(str(name), self.axes)}"
                    )
        return self

    @property
    def trainable_label(self) -> str:
        """The trainable as a reader names it: its name or module:function, or its command line."""
        return self.trainable.command if isinstance(self.trainable, CommandSpec) else self.trainable

    @property
    def total_trials(self) -> int:
        return self.n_cells * self.samples_per_cell

    @property
    def samples_per_cell(self) -> int:
        return 1 if self.search.algorithm == "grid-only" else self.search.samples_per_cell

    @property
    def n_cells(self) -> int:
        return math.prod(len(v) for v in self.axes.values())


def variants_axis_is_a_key(name: str) -> str:
    """The error of a variants axis named after a config key: its name never reaches the trainable."""
    return (
        f"axes.{name}: {name} is a config key, and a variants axis holds the variants' names, never "
        f"passed to the trainable; expected another name for the axis, e.g. variant"
    )


def _axis_written_as(raw: Any, kind: str) -> tuple[dict[str, Any], str, Any] | None:
    """The axis of a raw spec written as a mapping ``{kind: ...}`` (adaptive, variants): the axes, its
    name and what it holds; None when there is none. One such axis per kind, and nothing beside it."""
    axes = raw.get("axes") if isinstance(raw, dict) else None
    if not isinstance(axes, dict):
        return None
    named = [n for n, v in axes.items() if isinstance(v, dict) and kind in v]
    if not named:
        return None
    if len(named) > 1 or raw.get(kind) is not None:
        raise ValueError(f"axes: {', '.join(named)}: expected one {kind} axis at most")
    if extra := sorted(set(axes[named[0]]) - {kind}):
        raise ValueError(f"axes.{named[0]}.{extra[0]}: unknown key; expected {kind} alone")
    return axes, named[0], axes[named[0]][kind]


def set_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply ``--set a.b=value`` to the raw spec; the value is read as a spec's YAML (``lr=1e-3`` is a float)."""
    path, sep, text = assignment.partition("=")
    *parents, leaf = path.split(".")
    if not sep or not all([*parents, leaf]):
        raise SpecError(f"--set {assignment}: expected key=value, e.g. fixed.epochs=50")
    node = raw
    for part in parents:
        if node.get(part) is None:  # absent, or written as an empty `fixed:`
            node[part] = {}
        if not isinstance(node[part], dict):
            raise SpecError(f"--set {assignment}: {part} is not a mapping")
        node = node[part]
    try:
        node[leaf] = yamlfile.load(text)
    except yamlfile.YamlError as err:
        raise SpecError(f"--set {assignment}: {err}") from None


def parse_spec(raw: Any, source: str = "spec") -> SweepSpec:
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: expected a YAML mapping with name, trainable, axes, ...")
    try:
        return SweepSpec.model_validate(raw)
    except ValidationError as err:
        raise SpecError(f"{source}: {format_validation_error(err, raw, SweepSpec)}") from None


def read_spec(path: str | Path) -> Any:
    """A spec file's YAML, not yet validated; a one-line :class:`SpecError` when it cannot be read."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = f.read(yamlfile.MAX_BYTES + 1)
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file; expected a sweep spec YAML file") from None
    except OSError as err:
        raise SpecError(f"{path}: cannot read ({err.strerror})") from None
    if len(data) > yamlfile.MAX_BYTES:
        raise SpecError(
            f"{path}: larger than {yamlfile.MAX_BYTES // 2**20} MiB; expected a sweep spec of a few pages"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise SpecError(
            f"{path}: line {line}: byte 0x{data[err.start]:02x} is not UTF-8; expected a text file saved as UTF-8"
        ) from None
    try:
        return yamlfile.load(text)
    except yamlfile.YamlError as err:
        raise SpecError(f"{path}: {err}") from None


def load_spec(path: str | Path, overrides: list[str] = ()) -> SweepSpec:
    """Read, override and validate a spec file; every failure is a one-line :class:`SpecError`."""
    raw = read_spec(path)
    for assignment in overrides:
        if not isinstance(raw, dict):
            break
        set_override(raw, assignment)
    spec = parse_spec(raw, str(path))
    spec._overrides = tuple(overrides)
    return spec


def dump_spec(spec: SweepSpec) -> str:
    """The spec as run, defaults included, for ``results/<name>/spec.yaml``."""
    return yamlfile.dump(spec.model_dump(mode="json", exclude_none=False))


def spec_as_run(spec: SweepSpec) -> dict[str, Any]:
    """The spec as run for a reader: every value the sweep used, defaults included, without the fields
    that say nothing. A None that is also its field's default is such a field (a Param's four unused
    distributions, an unset max_t); a None that replaces a default (``tracking_uri: null``: no MLflow)
    is kept, as it is what the sweep did."""
    return _used(spec, spec.model_dump(mode="json"))


def _used(value: Any, dumped: Any) -> Any:
    """``dumped`` (``value`` dumped as JSON) without the fields :func:`spec_as_run` leaves out."""
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        return {
            name: _used(getattr(value, name), item)
            for name, item in dumped.items()
            if not (item is None and fields[name].default is None)
        }
    if isinstance(value, dict):
        return {k: _used(v, d) for (k, d), v in zip(dumped.items(), value.values())}
    if isinstance(value, list | tuple):
        return [_used(v, d) for v, d in zip(value, dumped)]
    return dumped
