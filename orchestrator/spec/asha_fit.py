"""ASHA's epoch-bounded fields (``max_t``, ``grace_period``) fitted to the epochs a sweep runs.

A spec written for 400 epochs with ``grace_period: 100`` is still a sound spec under ``--set
fixed.epochs=50``: the conflict comes from the override (or from a trainable's default epochs), not
from what the file says, so the field is clipped to fit, with a one-line warning naming it and the
``--set`` that sets it explicitly. Values the user chose together (both written in the file, or the
field itself given by ``--set``) are not second-guessed: their conflict is an error naming both
fields and the ``--set`` that fixes it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Literal

from orchestrator.spec.schema import SpecError, SweepSpec
from trainables import Trainable


@dataclass(frozen=True)
class _Given:
    """A value as the user gave it: its field, where it came from, and how a message names it."""

    field: str
    value: int
    origin: Literal["default", "file", "--set"]
    note: str = ""

    def __str__(self) -> str:
        return f"{self.field} ({self.value}{f', {self.note}' if self.note else ''})"


def fit_asha(
    spec: SweepSpec, epochs: int, where: str, trainable: Trainable, source: str
) -> tuple[SweepSpec, int]:
    """The spec with ASHA's fields fitted to ``epochs`` (the longest trial; ``where``: the field that
    sets it, or the bare key of the trainable's default) and ASHA's max_t. Raises a one-line SpecError
    on a conflict the user wrote."""
    asha = spec.scheduler.asha
    if asha.max_t is None and epochs < 1:
        raise SpecError(
            f"{source}: scheduler.asha.max_t: expected an integer ≥ 1 "
            f"({trainable.name} has no {trainable.horizon!r} to default it to)"
        )
    limit = _epochs(spec, epochs, where, trainable.name) if epochs >= 1 else None
    fitted: dict[str, int] = {}
    for name in ("max_t", "grace_period"):  # grace_period is bounded by max_t, max_t by the epochs
        given = _asha_field(spec, name)
        if given is None:
            continue
        if limit is None or given.value <= limit.value:
            limit = given
            continue
        _clip_or_refuse(given, limit, source)
        fitted[name] = limit.value
    if fitted:
        update = {"asha": asha.model_copy(update=fitted)}
        spec = spec.model_copy(update={"scheduler": spec.scheduler.model_copy(update=update)})
    return spec, spec.scheduler.asha.max_t or epochs


def _overridden(spec: SweepSpec, field: str, value: int) -> _Given | None:
    """``field`` as a ``--set`` gave it (None when none did); the note names the ``--set`` unless it
    is ``field``'s own, which the message names already."""
    if (assignment := spec.override_of(field)) is None:
        return None
    own = assignment.partition("=")[0] == field
    return _Given(field, value, "--set", "from --set" if own else f"from --set {assignment}")


def _epochs(spec: SweepSpec, epochs: int, where: str, trainable: str) -> _Given:
    if given := _overridden(spec, where, epochs):
        return given
    if "." not in where:  # in no field of the spec: the trainable's default
        return _Given(where, epochs, "default", f"{trainable}'s default")
    return _Given(where, epochs, "file")


def _asha_field(spec: SweepSpec, name: str) -> _Given | None:
    asha, field = spec.scheduler.asha, f"scheduler.asha.{name}"
    value = getattr(asha, name)
    if value is None:
        return None
    if given := _overridden(spec, field, value):
        return given
    return _Given(field, value, "file" if name in asha.model_fields_set else "default")


def _clip_or_refuse(given: _Given, limit: _Given, source: str) -> None:
    """Warn that a file's value is clipped to a limit an override or a default set; refuse the rest."""
    if given.origin == "file" and limit.origin != "file":
        print(
            f"warning: {source}: {given.field}: {given.value} > {limit}; using {limit.value} "
            f"(--set {given.field}=N sets it explicitly)",
            file=sys.stderr,
        )
        return
    raise SpecError(f"{source}: {given} > {limit}; --set {given.field}={limit.value} fixes it")
