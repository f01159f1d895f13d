"""Config keys of the ``template`` trainable: defaults, types, coercion and validation.

``resolve(config)`` returns the full config with defaults filled in and values coerced to their
types (a CLI passes strings: "64" → 64, "true" → True, "1e-3" → 0.001); it raises
``ConfigError(key, "expected ...")`` on an unknown key or a bad value, before any work starts.
Defaults marked "ours" are the project's choices where the paper leaves them open (see docs/science.md,
Training settings).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..api import Mode
from ..errors import ConfigError
from ..keys import Check, Keys, at_least, resolve_keys
from ..packs import resolve_pack
from ..stacked.layout import Layout
from .params import param_specs
from .tasks import NAMED_TASKS, Task, Vocab, make_task, parse_templates, random_templates

# key: (type, default, one-line meaning). Types: int, float, bool, str (with CHOICES).
KEYS: Keys = {
    "task": (str, "copy", "named task; random: random templates; custom: the templates key"),
    "templates": (list, None, "custom task: [{tokens: 'a b a', label: 1, prob: 0.5}, ...]"),
    "n_templates": (int, 4, "random task: number of templates r"),
    "n_wildcards": (int, 3, "random task: wildcard alphabet size"),
    "n_regular": (int, 0, "random task: regular-token alphabet size"),
    "length": (int, 4, "random task: template length"),
    "template_seed": (int, 0, "random task: seed of the template draw (shared by all members)"),
    "model": (str, "transformer", "named model"),
    "embed_dim": (
        int,
        128,
        "model width (transformer), hidden width (mlp, mlp_xxt), hidden size (rnn, lstm)",
    ),
    "depth": (int, 2, "transformer blocks"),
    "heads": (int, 2, "attention heads (ours: 2)"),
    "dim_head": (int, 64, "width of each head (paper's code: 64)"),
    "mlp_dim": (int, 0, "transformer MLP width; 0 means 4 × embed_dim (ours)"),
    "embed_std": (
        float,
        1.0,
        "std of the transformer's token, position and CLS embeddings at init (paper's code: 1)",
    ),
    "mlp_depth": (int, 3, "number of Linear layers of the mlp baseline"),
    "readout": (
        str,
        "cls",
        "symbolic readout position: cls (appended token) or final (last input)",
    ),
    "n_train": (int, 64, "training samples = size of the train alphabet"),
    "n_test": (int, 1024, "test samples (ours)"),
    "test_alphabet": (int, 1024, "size of the unseen test alphabet (ours)"),
    "val_alphabet": (int, 0, "size of the validation alphabet (vocabulary slot only; ours: 0)"),
    "epochs": (int, 1000, "passes over the training set"),
    "batch_size": (int, 1024, "mini-batch size (last partial batch kept)"),
    "lr": (float, 1e-3, "learning rate"),
    "weight_decay": (float, 0.0, "weight decay (L2 for adam, decoupled for adamw)"),
    "optimizer": (str, "adam", "adam or adamw"),
    "seeds": (int, 1, "seeds per member, all trained as one stacked model"),
    "seed": (int, 0, "member s uses seed + s for its init, data and shuffles"),
    "eval_every": (int, 1, "evaluate (and report) every k epochs, and at the last"),
    "kq_identity": (bool, False, "trainable per-head scalar times X Xᵀ in the attention logits"),
    "vo_identity": (bool, False, "trainable per-head scalar times A X in the attention output"),
    # Under Adam a zero-initialised scalar moves ~lr per step whatever the multiplier, so the
    # multiplier m is that identity's effective learning rate (m × lr). With m = 1 (the paper's
    # code default) neither identity moves enough in 1000 steps at lr 1e-3 to matter; the defaults
    # are the multipliers with which the paper's effects reproduce (see docs/science.md, Models).
    # VO: copy at n = 16 fits its 16 training symbols within ~3 full-batch steps, after which the
    # loss (~1e-11) leaves no gradient, so the identity has to be large by then; m = 100 left 1 seed
    # of 8 failing at widths 256 and 512, m = 200 none at widths 64-512 (per-seed table and the
    # multipliers tried in docs/science.md, Models).
    "kq_identity_mult": (float, 10.0, "multiplier m of the KQ identity (ours: 10)"),
    "vo_identity_mult": (float, 200.0, "multiplier m of the VO identity (ours: 200)"),
}

MODEL_NAMES = (
    "lstm",
    "mlp",
    "mlp_xxt",
    "rnn",
    "transformer",
)  # models.MODELS has their classes (torch)

CHOICES: dict[str, list[str]] = {
    "task": sorted([*NAMED_TASKS, "random", "custom"]),
    "model": list(MODEL_NAMES),
    "readout": ["cls", "final"],
    "optimizer": ["adam", "adamw"],
}

CHECKS: dict[str, Check] = {
    **{
        k: at_least(1)
        for k in (
            "n_templates",
            "n_wildcards",
            "length",
            "embed_dim",
            "depth",
            "heads",
            "dim_head",
            "n_train",
            "n_test",
            "test_alphabet",
            "epochs",
            "batch_size",
            "seeds",
            "eval_every",
        )
    },
    **{
        k: at_least(0)
        for k in (
            "n_regular",
            "template_seed",
            "mlp_dim",
            "val_alphabet",
            "weight_decay",
            "seed",
            "kq_identity_mult",
            "vo_identity_mult",
        )
    },
    "mlp_depth": at_least(2),
    **{k: at_least(0, strict=True) for k in ("lr", "embed_std")},
}


RANDOM_KEYS = ("n_templates", "n_wildcards", "n_regular", "length", "template_seed")


def task_of(config: Mapping[str, Any]) -> Task:
    """The Task a resolved config describes (ValueError if its templates are ill-posed)."""
    if config["task"] == "custom":
        return make_task(*parse_templates(config["templates"]))
    if config["task"] == "random":
        return make_task(random_templates(*(config[k] for k in RANDOM_KEYS)))
    return make_task(list(NAMED_TASKS[config["task"]]))


STACKABLE = frozenset(
    {"lr", "weight_decay"}
)  # what the members of one pack may vary (trainables/packs.py)


def resolve(config: Mapping[str, Any]) -> dict[str, Any]:
    """The full, typed config (with its pack's ``members``, if any); ConfigError on an unknown key or a bad value."""
    return resolve_pack(config, _resolve_one, STACKABLE)


def _resolve_one(config: Mapping[str, Any]) -> dict[str, Any]:
    out = resolve_keys(config, KEYS, CHOICES, CHECKS)
    _check_task_keys(config, out)
    try:
        task = task_of(out)
    except ValueError as e:
        key = {"custom": "templates", "random": "n_templates"}.get(out["task"], "task")
        raise ConfigError(key, f"expected a well-posed task: {e}") from None
    if out["task"] == "custom":  # normalised, so that resolve(resolve(c)) == resolve(c)
        out["templates"] = [
            {"tokens": str(t), "label": t.label, "prob": p}
            for t, p in zip(task.templates, task.probs)
        ]
    for key, alphabet in (("n_train", out["n_train"]), ("test_alphabet", out["test_alphabet"])):
        if alphabet < task.max_wildcards:
            raise ConfigError(
                key,
                f"expected at least {task.max_wildcards} symbols: task {out['task']!r} "
                f"substitutes {task.max_wildcards} distinct wildcards per sample",
            )
    return out


def _check_task_keys(raw: Mapping[str, Any], out: dict[str, Any]) -> None:
    """Templates imply task=custom; task-specific keys are refused with other tasks."""
    if out["templates"] is not None:
        if "task" not in raw:
            out["task"] = "custom"
        elif out["task"] != "custom":
            raise ConfigError(
                "templates", f"expected only with task=custom (task is {out['task']!r})"
            )
    elif out["task"] == "custom":
        raise ConfigError("templates", "expected a list of templates with task=custom")
    if out["task"] != "random":
        for key in RANDOM_KEYS:
            if out[key] != KEYS[key][1]:
                raise ConfigError(key, f"expected only with task=random (task is {out['task']!r})")


def metrics(config: Mapping[str, Any]) -> dict[str, Mode]:
    """Reported metrics and the direction each improves in; test_acc for symbolic labels only."""
    out: dict[str, Mode] = {"train_loss": "min", "test_loss": "min", "test_error": "min"}
    if task_of(resolve(config)).label_kind == "symbolic":
        out["test_acc"] = "max"
    return out


def step_cost(config: Mapping[str, Any]) -> float:
    """Multiply-adds of one training step of one member: forward + backward ≈ 3 × parameters × tokens.
    Counted from the parameters' shapes alone: the driver sizes packs with it and never imports torch."""
    cfg = resolve(config)
    task = task_of(cfg)
    vocab = Vocab.for_task(task, cfg["n_train"], cfg["val_alphabet"], cfg["test_alphabet"])
    size = Layout(param_specs(cfg, vocab.size, task.length, task.label_kind == "symbolic")).size
    return 3.0 * size * min(cfg["n_train"], cfg["batch_size"]) * (task.length + 1)
