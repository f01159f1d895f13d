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

from .api import ConfigError, Mode, Reporter, TrainableDef
from .registry import register

DEFAULTS: dict[str, Any] = {
    "epochs": 10, "lr": 1e-3, "size": 1.0, "rate": 0.3, "noise": 0.01, "sleep_s": 0.0,
    "seeds": 1, "seed": 0, "fail_epoch": 0, "diverge": False,
}


def resolve(config: Mapping[str, Any]) -> dict[str, Any]:
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


def train(config: dict[str, Any], report: Reporter) -> None:
    state = report.restored_state() or {"epoch": 0}
    floor = (math.log10(config["lr"]) + 2.5) ** 2 / (1.0 + config["size"])
    for epoch in range(state["epoch"] + 1, config["epochs"] + 1):
        if config["fail_epoch"] and epoch >= config["fail_epoch"]:
            raise RuntimeError(f"synthetic failure at epoch {epoch} (fail_epoch={config['fail_epoch']})")
        time.sleep(config["sleep_s"])
        per_seed: dict[str, list[float]] = {"train_loss": [], "test_loss": []}
        for s in range(config["seeds"]):
            rng = random.Random(hash((config["seed"] + s, epoch)))
            curve = floor + (1 - floor) * math.exp(-config["rate"] * epoch)
            per_seed["train_loss"].append(math.nan if config["diverge"] else curve * 0.9)
            per_seed["test_loss"].append(math.nan if config["diverge"] else curve + config["noise"] * rng.gauss(0, 1))
        means = {m: (sum(v) / len(v)) for m, v in per_seed.items()}
        report({"epoch": epoch, **means, "seed_metrics": per_seed,
                "diverged": [config["diverge"]] * config["seeds"]}, lambda e=epoch: {"epoch": e})


register(TrainableDef("synthetic", train, resolve, metrics))
