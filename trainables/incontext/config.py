"""Config keys of the ``incontext`` trainable: defaults, types, coercion and validation.

Defaults are TART's reasoning module (GPT-2 256/12/8, Adam, batch 128, 35,001 steps, d = 16, α = 10; see
docs/science.md, Training settings) except where marked "ours": among them lr 1e-3 (TART: 1e-4) and a
``garg`` curriculum stepping every 50 steps (TART's runs: ``tart`` every 1000), with which a CPU-sized model
leaves the initial loss plateau within a few hundred steps where TART's settings stay on it
(docs/science.md, Leaving the plateau). ``resolve`` raises ``ConfigError(key, "expected ...")`` on an
unknown key or a bad value, before any work starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..api import Mode
from ..errors import ConfigError
from ..keys import Check, Keys, at_least, resolve_keys
from ..packs import resolve_pack
from ..stacked.layout import Layout
from .curriculum import PRESETS
from .params import gpt2_params

KEYS: Keys = {
    "task": (
        str,
        "logistic_regression",
        "logistic_regression (TART) or linear_regression (Garg et al.)",
    ),
    "d": (int, 16, "input dimension"),
    "k": (int, 64, "in-context examples per sequence (ours; TART 258, Garg et al. 41)"),
    "alpha": (float, 10.0, "logistic_regression: w = alpha·g, g ~ N(0, I)"),
    "embed_dim": (int, 256, "model width"),
    "depth": (int, 12, "transformer blocks"),
    "heads": (int, 8, "attention heads (divide embed_dim)"),
    "steps": (int, 35001, "optimizer steps, each on a fresh batch of sequences"),
    "batch_size": (int, 128, "sequences per step"),
    "grad_accum": (
        int,
        1,
        "micro-batches per step, gradients accumulated: less memory, same step (TART: 4)",
    ),
    "lr": (
        float,
        1e-3,
        "Adam learning rate (the peak, after warmup_steps; ours; TART: 1e-4)",
    ),
    "warmup_steps": (
        int,
        0,
        "steps of linear learning-rate warm-up from lr/warmup_steps to lr (TART: 0)",
    ),
    "lr_schedule": (
        str,
        "constant",
        "after the warm-up: constant (TART) or cosine (decays to 0 at the last step; ours)",
    ),
    "curriculum": (
        str,
        "garg",
        "none, tart or garg: d and k grow during training (ours; TART: tart)",
    ),
    "curriculum_every": (
        int,
        50,
        "steps between curriculum increments; 0: the preset's (ours: 50; TART: 1000)",
    ),
    "seeds": (int, 1, "seeds per member, all trained as one stacked model"),
    "seed": (int, 0, "member s uses seed + s for its init and training sequences"),
    "eval_every": (int, 1000, "evaluate (and report) every this many steps, and at the last"),
    "n_eval": (int, 256, "evaluation sequences (ours)"),
    "eval_seed": (int, 1_000_003, "seed of the evaluation set, shared by all members (ours)"),
    "baseline_l2": (
        float,
        1.0,
        "logistic_regression: L2 strength of the baseline (sklearn's C = 1)",
    ),
}

CLASSIFICATION = {"linear_regression": False, "logistic_regression": True}
"""The tasks by name, True where labels are classes (their samplers are in tasks.py; config imports no torch)."""

CHOICES: dict[str, list[str]] = {
    "task": sorted(CLASSIFICATION),
    "curriculum": ["none", *sorted(PRESETS)],
    "lr_schedule": ["constant", "cosine"],
}

CHECKS: dict[str, Check] = {
    **{
        k: at_least(1)
        for k in (
            "d",
            "k",
            "embed_dim",
            "depth",
            "heads",
            "steps",
            "batch_size",
            "grad_accum",
            "seeds",
            "eval_every",
            "n_eval",
        )
    },
    **{k: at_least(0) for k in ("curriculum_every", "seed", "eval_seed", "warmup_steps")},
    **{k: at_least(0, strict=True) for k in ("lr", "alpha", "baseline_l2")},
}

LOGISTIC_ONLY = ("alpha", "baseline_l2")


STACKABLE = frozenset({"lr"})  # what the members of one pack may vary (trainables/packs.py)


def resolve(config: Mapping[str, Any]) -> dict[str, Any]:
    """The full, typed config (with its pack's ``members``, if any); ConfigError on an unknown key or a bad value."""
    return resolve_pack(config, _resolve_one, STACKABLE)


def _resolve_one(config: Mapping[str, Any]) -> dict[str, Any]:
    out = resolve_keys(config, KEYS, CHOICES, CHECKS)
    if out["embed_dim"] % out["heads"]:
        raise ConfigError(
            "heads", f"expected a divisor of embed_dim ({out['embed_dim']}), got {out['heads']}"
        )
    if out["batch_size"] % out["grad_accum"]:
        raise ConfigError(
            "grad_accum",
            f"expected a divisor of batch_size ({out['batch_size']}), got {out['grad_accum']}",
        )
    if not CLASSIFICATION[out["task"]]:
        for key in LOGISTIC_ONLY:
            if out[key] != KEYS[key][1]:
                raise ConfigError(
                    key, f"expected only with task=logistic_regression (task is {out['task']!r})"
                )
    if out["curriculum"] == "none" and "curriculum_every" in config and out["curriculum_every"]:
        raise ConfigError(
            "curriculum_every", "expected only with a curriculum (curriculum is 'none')"
        )
    return out


def metrics(config: Mapping[str, Any]) -> dict[str, Mode]:
    """Scalar metrics (means over positions, then over members) and the direction each improves in."""
    if CLASSIFICATION[resolve(config)["task"]]:
        return {
            "train_loss": "min",
            "test_loss": "min",
            "test_acc": "max",
            "oracle_acc": "max",
            "baseline_acc": "max",
        }
    return {"train_loss": "min", "test_loss": "min", "test_mse": "min", "baseline_mse": "min"}


def curves(config: Mapping[str, Any]) -> dict[str, str]:
    """Per-position curves on the final report, each with the scalar metric that is its mean.

    A curve is a list of k values; index i is the query after i in-context examples.
    """
    if CLASSIFICATION[resolve(config)["task"]]:
        return {
            "acc_by_k": "test_acc",
            "oracle_acc_by_k": "oracle_acc",
            "baseline_acc_by_k": "baseline_acc",
        }
    return {"mse_by_k": "test_mse", "baseline_mse_by_k": "baseline_mse"}


def step_cost(config: Mapping[str, Any]) -> float:
    """Multiply-adds of one training step of one member: forward + backward ≈ 3 × parameters × tokens."""
    cfg = resolve(config)
    specs = gpt2_params(d=cfg["d"], k=cfg["k"], embed_dim=cfg["embed_dim"], depth=cfg["depth"])
    size = Layout(specs).size
    return 3.0 * size * cfg["batch_size"] * 2 * cfg["k"]
