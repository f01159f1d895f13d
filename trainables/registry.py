"""Finding a trainable: by the name an installed package gives it, or as ``package.module:attr``.

Names come from the entry-point group ``scalesweep.trainables`` (the built-ins register there too, in
pyproject.toml), each naming a :class:`Trainable`. ``module:attr`` names a :class:`Trainable` or a plain
``train(config, report)`` function; its module is searched on the given directories (the spec's, the
working directory), then on ``sys.path``. Every failure is a :class:`ConfigError` on the key ``trainable``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from importlib import import_module, metadata
from pathlib import Path
from typing import Any

from .api import Trainable, check_signature
from .errors import ConfigError

GROUP = "scalesweep.trainables"


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=GROUP)}


def trainable_names() -> list[str]:
    """The names of the installed trainables (built-ins and every package's)."""
    return sorted(_entry_points())


def get_trainable(ref: str, search: Iterable[str | Path] = ()) -> Trainable:
    """The trainable ``ref`` names: an installed name, or ``package.module:attr``."""
    if ":" in ref:
        return _from_module(ref, search)
    points = _entry_points()
    if ref not in points:
        raise ConfigError(
            "trainable",
            f"expected an installed trainable ({', '.join(sorted(points))}) or "
            f"package.module:function, got {ref!r}",
        )
    return _as_trainable(_load(points[ref].value, ref, search), ref)


def _from_module(ref: str, search: Iterable[str | Path]) -> Trainable:
    module, _, attr = ref.partition(":")
    if not module or not attr:
        raise ConfigError("trainable", f"expected package.module:function, got {ref!r}")
    return _as_trainable(_load(ref, ref, search), ref)


def _load(target: str, ref: str, search: Iterable[str | Path]) -> Any:
    module_name, _, attr = target.partition(":")
    with on_path(search):
        try:
            module = import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and module_name.startswith(err.name):
                raise ConfigError(
                    "trainable",
                    f"no module named {err.name!r} for {ref!r}; expected it in the "
                    f"spec's directory, the working directory or on PYTHONPATH",
                ) from None
            raise ConfigError("trainable", f"importing {module_name!r} failed: {err}") from None
        except Exception as err:  # the user's module raised while importing: say so in one line
            raise ConfigError(
                "trainable", f"importing {module_name!r} failed: {type(err).__name__}: {err}"
            ) from None
    value: Any = module
    for part in attr.split("."):
        if not hasattr(value, part):
            raise ConfigError(
                "trainable",
                f"module {module_name!r} has no attribute {attr!r}; expected a "
                f"function train(config, report) or a scalesweep.Trainable",
            )
        value = getattr(value, part)
    return value


def _as_trainable(value: Any, ref: str) -> Trainable:
    if isinstance(value, Trainable):
        if callable(value.train):
            _check(value.train, ref)
        return value if value.name else replace(value, name=ref)
    _check(value, ref)
    return Trainable(train=value, name=ref)


def _check(fn: Any, ref: str) -> None:
    try:
        check_signature(fn, ref)
    except TypeError as err:
        raise ConfigError("trainable", str(err)) from None


@contextmanager
def on_path(directories: Iterable[str | Path]) -> Iterator[None]:
    """``directories`` first on ``sys.path`` while inside (imports made there stay imported)."""
    added = [str(Path(d).resolve()) for d in directories if str(Path(d).resolve()) not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for entry in added:
            if entry in sys.path:
                sys.path.remove(entry)
