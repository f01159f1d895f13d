"""The sweep spec: one YAML file per research question, validated before Ray starts.

Every problem is reported as a :class:`SpecError` whose message is one line naming the file, the
field and what was expected, because a researcher reads it in a terminal, not a debugger.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Scalar = Union[bool, int, float, str]
DISTRIBUTIONS = ("loguniform", "uniform", "int", "logint", "choice")


class SpecError(ValueError):
    """Bad input: a spec that cannot run. The CLI prints it as one line and exits 2."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Param(_Strict):
    """One searched hyper-parameter: exactly one distribution, e.g. ``{loguniform: [1e-4, 1e-2]}``."""

    loguniform: tuple[float, float] | None = None
    uniform: tuple[float, float] | None = None
    int: tuple[int, int] | None = None
    logint: tuple[int, int] | None = None
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


class SearchSpec(_Strict):
    algorithm: Literal["optuna", "random", "grid-only"] = "optuna"
    samples_per_cell: int = Field(1, ge=1)
    space: dict[str, Param] = {}
    seed: int = 0

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
    reduction_factor: float = Field(3.0, gt=1)


class SchedulerSpec(_Strict):
    asha: AshaSpec | None = None


class ResourcesSpec(_Strict):
    cpu: float = Field(1.0, gt=0)
    gpu: float = Field(0.0, ge=0)
    max_concurrent_trials: int | None = Field(None, ge=1)  # None: as many as the cluster fits
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
    threshold: float | None = None
    at: Literal["final", "best"] = "final"
    chance: float | None = (
        None  # the sigmoid's small-x level fixed here (e.g. 1 - 1/vocab); None: fitted
    )

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


class SweepSpec(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
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
    max_failures: int = Field(2, ge=0)
    checkpoint_every_s: float = Field(
        60.0, ge=0
    )  # at most one trial checkpoint per this many seconds
    report_every_s: float = Field(
        1.0, ge=0
    )  # a trial sends at most one report per this many seconds, but
    # at once the ones its scheduler decides on (ASHA's rungs); Parquet and MLflow get every epoch either way

    @field_validator("axes")
    @classmethod
    def _axes_non_empty(cls, axes: dict[str, list[Scalar]]) -> dict[str, list[Scalar]]:
        if not axes:
            raise ValueError("expected at least one axis")
        for name, values in axes.items():
            if not values:
                raise ValueError(f"{name}: expected a non-empty list of values")
            if len(set(map(repr, values))) != len(values):
                raise ValueError(f"{name}: expected distinct values")
            if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                raise ValueError(f"{name}: expected finite values")
        return axes

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
                        f"curves.{i}.{field}: {name!r} is not an axis; expected one of {list(self.axes)}"
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


def _format_validation_error(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-after"))
    kind, msg = first["type"], first["msg"]
    if kind == "extra_forbidden":
        return f"{loc}: unknown key"
    if kind == "missing":
        return f"{loc}: required field is missing"
    msg = msg.removeprefix("Value error, ")
    if "input_value" not in msg and kind not in ("value_error", "assertion_error"):
        msg = f"{msg} (got {first.get('input')!r})"
    return f"{loc}: {msg}" if loc else msg


def set_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply ``--set a.b=value`` to the raw spec; the value is parsed as YAML (``lr=1e-3`` is a float)."""
    path, sep, text = assignment.partition("=")
    if not sep or not path:
        raise SpecError(f"--set {assignment}: expected key=value, e.g. fixed.epochs=50")
    *parents, leaf = path.split(".")
    node = raw
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise SpecError(f"--set {assignment}: {part} is not a mapping")
        node = child
    node[leaf] = yaml.safe_load(text)


def parse_spec(raw: Any, source: str = "spec") -> SweepSpec:
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: expected a YAML mapping with name, trainable, axes, ...")
    try:
        return SweepSpec.model_validate(raw)
    except ValidationError as err:
        raise SpecError(f"{source}: {_format_validation_error(err)}") from None


def read_spec(path: str | Path) -> Any:
    """A spec file's YAML, not yet validated; a one-line :class:`SpecError` when it cannot be read."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file; expected a sweep spec YAML file") from None
    except OSError as err:
        raise SpecError(f"{path}: cannot read ({err.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "parse error"
        raise SpecError(f"{path}: not valid YAML{where}: {problem}") from None


def load_spec(path: str | Path, overrides: list[str] = ()) -> SweepSpec:
    """Read, override and validate a spec file; every failure is a one-line :class:`SpecError`."""
    raw = read_spec(path)
    for assignment in overrides:
        if not isinstance(raw, dict):
            break
        set_override(raw, assignment)
    return parse_spec(raw, str(path))


def dump_spec(spec: SweepSpec) -> str:
    """The spec as run, defaults included, for ``results/<name>/spec.yaml``."""
    return yaml.safe_dump(spec.model_dump(mode="json", exclude_none=False), sort_keys=False)
