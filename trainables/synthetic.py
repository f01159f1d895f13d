"""``synthetic``: a trainable with analytic learning curves and no model, for exercising the orchestrator.

Benchmarks and orchestration tests need trials whose cost and outcome are controlled exactly:
loss(epoch) = floor + (1 - floor)·exp(-rate·epoch) with floor = (log10 lr + 2.5)² / (1 + size) and
per-seed noise, so the best lr is known (10^-2.5) and larger ``size`` means lower loss. ``sleep_s``
sets a trial's cost per epoch, ``fail_epoch`` makes a trial raise and ``diverge`` makes it NaN.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping
from typing import Any

from .api import Mode, Report, Reporter, Row, Trainable
from .errors import ConfigError
from .packs import member_configs, resolve_pack

DEFAULTS: dict[str, Any] = {
    "epochs": 10,
    "lr": 1e-3,
    "size": 1.0,
    "rate": 0.3,
    "noise": 0.01,
    "sleep_s": 0.0,
    "seeds": 1,
    "seed": 0,
    "fail_epoch": 0,
    "diverge": False,
}


STACKABLE = frozenset(
    {"lr", "size", "rate", "noise", "diverge"}
)  # what the members of one pack may vary


def resolve(config: Mapping[str, Any]) -> dict[str, Any]:
    return resolve_pack(config, _resolve_one, STACKABLE)


def _resolve_one(config: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(DEFAULTS)
    for key, value in config.items():
        if key not in DEFAULTS:
            raise ConfigError(key, f"unknown key; expected one of {sorted(DEFAULTS)}")
        kind = type(DEFAULTS[key])
        try:
            out[key] = value in (True, "true", "True", 1, "1") if kind is bool else kind(value)
        except (TypeError, ValueError):
            raise ConfigError(key, f"expected {kind.__name__}, got {value!r}") from None
    if out["lr"] <= 0:
        raise ConfigError("lr", f"expected > 0, got {out['lr']}")
    return out


def metrics(config: Mapping[str, Any]) -> dict[str, Mode]:
    return {"train_loss": "min", "test_loss": "min"}


def _member_rows(member: int, c: Mapping[str, Any], epoch: int) -> list[Row]:
    """One member's row per seed at ``epoch``."""
    floor = (math.log10(c["lr"]) + 2.5) ** 2 / (1.0 + c["size"])
    curve = floor + (1 - floor) * math.exp(-c["rate"] * epoch)
    rows = []
    for s in range(c["seeds"]):
        noise = c["noise"] * random.Random(hash((c["seed"] + s, epoch))).gauss(0, 1)
        values = {"train_loss": curve * 0.9, "test_loss": curve + noise}
        rows.append(
            Row(
                member,
                c["seed"] + s,
                {k: math.nan for k in values} if c["diverge"] else values,
                diverged=c["diverge"],
            )
        )
    return rows


def train(config: dict[str, Any], report: Reporter) -> None:
    """Rows = members × seeds, as the stacked trainables; one sleep per epoch for the whole stack."""
    configs = member_configs(config)
    state = report.restored_state() or {"epoch": 0, "members": list(range(len(configs)))}
    members = list(state["members"])
    for epoch in range(state["epoch"] + 1, config["epochs"] + 1):
        if not members:
            return
        if config["fail_epoch"] and epoch >= config["fail_epoch"]:
            raise RuntimeError(
                f"synthetic failure at epoch {epoch} (fail_epoch={config['fail_epoch']})"
            )
        time.sleep(config["sleep_s"])
        rows = [row for m in members for row in _member_rows(m, configs[m], epoch)]
        report(
            Report(epoch, rows), lambda e=epoch, kept=list(members): {"epoch": e, "members": kept}
        )
        members = [m for m in members if m not in report.stopped()]


SYNTHETIC = Trainable(
    train=train,
    name="synthetic",
    resolve=resolve,
    metrics=metrics,
    stackable=STACKABLE,
    stacks_seeds=True,
)
