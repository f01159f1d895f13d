"""What a packed config is, without torch (the orchestrator validates specs with it; members.py trains packs).

A config with ``members: [{lr: ...}, ...]`` stands for K configs of one cell that differ only in the keys
its trainable declares stackable; each member trains as the config it would be alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .api import MEMBERS
from .errors import ConfigError


def resolve_pack(
    config: Mapping[str, Any],
    resolve_one: Callable[[Mapping[str, Any]], dict[str, Any]],
    stackable: Iterable[str],
) -> dict[str, Any]:
    """``resolve_one`` for a config that may carry ``members``: [{key: value}] with stackable keys only."""
    if not isinstance(config, Mapping) or config.get(MEMBERS) is None:
        return resolve_one(config)
    members, allowed = config[MEMBERS], set(stackable)
    if not isinstance(members, Sequence) or isinstance(members, str) or not members:
        raise ConfigError(
            MEMBERS, f"expected a non-empty list of {{key: value}} overrides, got {members!r}"
        )
    base = resolve_one({k: v for k, v in config.items() if k != MEMBERS})
    typed = []
    for member in members:
        if not isinstance(member, Mapping):
            raise ConfigError(MEMBERS, f"expected a mapping per member, got {member!r}")
        if unknown := sorted(set(member) - allowed):
            raise ConfigError(
                f"{MEMBERS}.{unknown[0]}",
                f"expected only keys members of one stack may vary: {sorted(allowed)}",
            )
        resolved = resolve_one({**base, **member})
        typed.append({k: resolved[k] for k in member})
    return {**base, MEMBERS: typed}


def member_configs(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The config each member of a resolved (possibly packed) config trains with alone."""
    base = {k: v for k, v in config.items() if k != MEMBERS}
    return [{**base, **member} for member in config.get(MEMBERS) or [{}]]
