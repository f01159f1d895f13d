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
from .keys import Check, Keys, at_least, resolve_keys
from .packs import member_configs, resolve_pack

# key: (type, default, one-line meaning), as the built-ins declare theirs (trainables/keys.py).
KEYS: Keys = {
    "epochs": (int, 10, "reports, one per epoch"),
    "lr": (float, 1e-3, "learning rate: the loss floor is lowest at 10^-2.5"),
    "size": (float, 1.0, "model size: a larger one reaches a lower loss"),
    "rate": (float, 0.3, "how fast the loss falls per epoch"),
    "noise": (float, 0.01, "standard deviation of each seed's noise on test_loss"),
    "sleep_s": (float, 0.0, "seconds each epoch takes"),
    "seeds": (int, 1, "seeds per member, all reported by one call"),
    "seed": (int, 0, "member s uses seed + s for its noise"),
    "fail_epoch": (int, 0, "raise at this epoch (0: never)"),
    "diverge": (bool, False, "report NaN metrics, as a trial that blew up"),
}

# Checked before Ray starts: a config that passes trains (epochs 0 would report nothing at all).
CHECKS: dict[str, Check] = {
    **{k: at_least(1) for k in ("epochs", "seeds")},
    **{k: at_least(0) for k in ("size", "rate", "noise", "sleep_s", "seed", "fail_epoch")},
    "lr": at_least(0, strict=True),
}


STACKABLE = frozenset(
    {"lr", "size", "rate", "noise", "diverge"}
)  # what the members of one pack may vary


def resolve(config: Mapping[str, Any]) -> dict[str, Any]:
    return resolve_pack(config, _resolve_one, STACKABLE)


def _resolve_one(config: Mapping[str, Any]) -> dict[str, Any]:
    return resolve_keys(config, KEYS, {}, CHECKS)


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
