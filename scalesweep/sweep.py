"""``scalesweep.run``: a sweep from Python, with a spec file or dict and, optionally, the function to sweep.

    import scalesweep

    def train(config, report):                 # defined here: a script's __main__ or a notebook cell
        ...
        report({"epoch": epoch, "test_loss": loss})

    trials = scalesweep.run("sweep.yaml", trainable=train)      # the trials DataFrame

A function defined in ``__main__`` (or a notebook) travels to the workers by value; one importable from a
module is found by name, and its module travels with the sweep when it is not installed on the workers.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from orchestrator.spec.plan import plan_sweep
from orchestrator.spec.schema import SpecError, parse_spec, read_spec
from orchestrator.store.results import load_trials
from orchestrator.tune.run import run_sweep
from trainables import Trainable
from trainables.api import TrainFn, check_signature

if TYPE_CHECKING:
    import pandas as pd

_FROM_SPEC = object()


class SweepError(RuntimeError):
    """The sweep ran, and every trial failed: the message is the last trial's error."""


def run(
    spec: Union[str, "os.PathLike[str]", Mapping[str, Any]],
    trainable: TrainFn | Trainable | None = None,
    results: str | None = None,
    tracking_uri: Any = _FROM_SPEC,
    address: str | None = None,
    resume: bool = False,
) -> "pd.DataFrame":
    """Run (or with ``resume``, continue) a sweep and return its trials, one row per trial.

    ``spec``: a YAML path or a dict with the same keys; ``trainable`` overrides the spec's (its
    ``trainable:`` may then be left out); ``results``: the results root (default: the spec's);
    ``tracking_uri``: an MLflow URI, or None for no tracking (default: the spec's); ``address``: an
    existing Ray cluster. Bad input raises :class:`SpecError` (one line naming the field) before Ray
    starts; a sweep in which every trial failed raises :class:`SweepError` with the last trial's error.
    """
    if isinstance(spec, Mapping):
        raw, source, directory = dict(spec), "spec", Path.cwd()
    else:
        path = Path(spec)
        raw, source, directory = read_spec(path), str(path), path.parent
        if not isinstance(raw, dict):
            raise SpecError(f"{path}: expected a YAML mapping with name, trainable, axes, ...")
    override = None
    if trainable is not None:
        raw["trainable"], override, directory = _reference(trainable, directory)
    plan = plan_sweep(parse_spec(raw, source), source, trainable=override, directory=directory)
    uri = plan.spec.storage.tracking_uri if tracking_uri is _FROM_SPEC else tracking_uri
    outcome = run_sweep(plan, results, uri, address, resume=resume)
    if outcome.failure:
        raise SweepError(outcome.failure)
    return load_trials(outcome.results_dir)


def _reference(
    trainable: TrainFn | Trainable, directory: Path
) -> tuple[str, Trainable | None, Path]:
    """How the spec names ``trainable``, the object when it must travel by value, and where its module lives.

    A function importable under its own module and name is named ``module:name`` and found again like a
    spec's; anything else (``__main__``, a notebook, a closure, a Trainable object) travels by value."""
    if isinstance(trainable, Trainable):
        return trainable.name or _label(trainable.train), trainable, directory
    check_signature(trainable, "trainable")
    module, name = getattr(trainable, "__module__", None), getattr(trainable, "__qualname__", "")
    if module not in (None, "__main__") and "<" not in name and _resolves(module, name, trainable):
        file = getattr(sys.modules[module], "__file__", None)
        top = Path(file).resolve().parents[module.count(".")] if file else directory
        return f"{module}:{name}", None, top
    return _label(trainable), Trainable(train=trainable, name=_label(trainable)), directory


def _label(train: TrainFn | str) -> str:
    if isinstance(train, str):
        return train
    return f"{getattr(train, '__module__', '__main__')}:{getattr(train, '__qualname__', 'train')}"


def _resolves(module: str, name: str, obj: Any) -> bool:
    value: Any = import_module(module)
    for part in name.split("."):
        value = getattr(value, part, None)
    return value is obj
