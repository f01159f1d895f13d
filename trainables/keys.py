"""Config keys shared by the trainables: coercion of CLI strings, range checks and the resolve loop.

A trainable declares ``KEYS`` ({key: (type, default, one-line meaning)}), ``CHOICES`` for its string
keys and ``CHECKS`` (range checks); ``resolve_keys`` turns a raw config into the typed one, with
defaults filled in, or raises ``ConfigError(key, "expected ...")`` before any work starts. A CLI
passes strings: "64" → 64, "true" → True, "1e-3" → 0.001.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import ConfigError

Keys = dict[str, tuple[type, Any, str]]
Check = Callable[[str, Any], None]

_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def coerce(key: str, kind: type, value: Any, choices: Mapping[str, list[str]]) -> Any:
    """``value`` as ``kind``, accepting the string spellings a CLI produces."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(key, f"expected true or false, got {value!r}")
    if kind is list:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ConfigError(key, f"expected a JSON list, got {value!r}") from None
        if value is not None and not isinstance(value, (list, tuple)):
            raise ConfigError(key, f"expected a list, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, str):
            try:
                value = (
                    float(value.strip()) if any(c in value for c in ".eE") else int(value.strip())
                )
            except ValueError:
                raise ConfigError(key, f"expected an integer, got {value!r}") from None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"expected an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                raise ConfigError(key, f"expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"expected a number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ConfigError(key, f"expected one of {choices.get(key)}, got {value!r}")
    value = value.strip()
    if key in choices and value not in choices[key]:
        raise ConfigError(key, f"expected one of {choices[key]}, got {value!r}")
    return value


def at_least(lo: float, strict: bool = False) -> Check:
    def check(key: str, value: Any) -> None:
        if not (value > lo if strict else value >= lo):  # written so that NaN fails too
            raise ConfigError(key, f"expected a value {'>' if strict else '≥'} {lo}, got {value!r}")

    return check


def _check_known(config: Any, names: Mapping[str, Any]) -> None:
    """A mapping whose every key is one of ``names``; else a ConfigError naming the first unknown key."""
    if not isinstance(config, Mapping):
        raise ConfigError(
            "config", f"expected a mapping of keys to values, got {type(config).__name__}"
        )
    unknown = sorted(set(config) - set(names), key=str)
    if unknown:
        raise ConfigError(unknown[0], f"unknown key; {suggest(str(unknown[0]), names)}")


def closest(key: str, names: Iterable[str]) -> str | None:
    """The known name an unknown ``key`` is most likely a typo of (``epoch`` for ``epochs``), if any."""
    close = difflib.get_close_matches(key, list(names), n=1, cutoff=0.75)
    return close[0] if close else None


def suggest(name: str, names: Iterable[str]) -> str:
    """What an unknown ``name`` should have been: ``did you mean 'epochs'?`` when one is close, else every
    known name. The guess alone, because the fix of a typo is lost in a list of thirty keys."""
    known = sorted(names, key=str)
    guess = closest(name, known)
    return f"did you mean {guess!r}?" if guess else f"expected one of {known}"


def resolve_keys(
    config: Mapping[str, Any],
    keys: Keys,
    choices: Mapping[str, list[str]],
    checks: Mapping[str, Check],
) -> dict[str, Any]:
    """Every key of ``keys``, typed and checked; a missing or None value takes the default."""
    _check_known(config, keys)
    out: dict[str, Any] = {}
    for key, (kind, default, _) in keys.items():
        value = (
            coerce(key, kind, config[key], choices)
            if key in config and config[key] is not None
            else default
        )
        if key in checks:
            checks[key](key, value)
        out[key] = value
    return out


def resolve_defaults(config: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``resolve_keys`` for keys declared as {key: default}: each key's type is its default's (None: any)."""
    _check_known(config, defaults)
    out = dict(defaults)
    for key, value in config.items():
        kind = type(defaults[key])
        known = defaults[key] is not None and kind in (bool, int, float, str, list)
        out[key] = coerce(key, kind, value, {}) if known and value is not None else value
    return out
