"""The template models' parameters: names, shapes and initialisers, in declaration order.

Kept apart from the models' forward passes (transformer, baselines, recurrent) and free of torch at
import, so that the driver can size packs from a cell's parameter count (``config.step_cost``) without
importing torch: seconds of a core at a sweep's start. A model's class builds its ``Layout`` from here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from ..stacked.layout import ParamSpec, normal, ones, scaled_normal, uniform_fan_in, zeros


def transformer(
    *,
    vocab_size: int,
    length: int,
    symbolic: bool,
    embed_dim: int,
    depth: int,
    heads: int,
    dim_head: int,
    mlp_dim: int,
    readout: str,
    kq_identity: bool,
    vo_identity: bool,
    embed_std: float,
    **_: object,
) -> list[ParamSpec]:
    D, HK, M, cls = embed_dim, heads * dim_head, mlp_dim, readout == "cls"
    embedding = scaled_normal(embed_std)
    specs = [
        ParamSpec("emb", (vocab_size, D), embedding),
        ParamSpec("pos", (length + cls, D), embedding),
    ]
    if cls:
        specs.append(ParamSpec("cls", (D,), embedding))
    for i in range(depth):
        specs += [
            ParamSpec(f"{i}.ln1_w", (D,), ones),
            ParamSpec(f"{i}.ln1_b", (D,), zeros),
            ParamSpec(f"{i}.wqk", (D, 2 * HK), uniform_fan_in(D)),
            ParamSpec(f"{i}.wv", (D, HK), uniform_fan_in(D)),
            ParamSpec(f"{i}.wo", (HK, D), uniform_fan_in(HK)),
        ]
        if kq_identity:
            specs.append(ParamSpec(f"{i}.kq", (heads,), zeros))
        if vo_identity:
            specs.append(ParamSpec(f"{i}.vo", (heads,), zeros))
        specs += [
            ParamSpec(f"{i}.ln2_w", (D,), ones),
            ParamSpec(f"{i}.ln2_b", (D,), zeros),
            ParamSpec(f"{i}.w1", (D, M), uniform_fan_in(D)),
            ParamSpec(f"{i}.b1", (M,), uniform_fan_in(D)),
            ParamSpec(f"{i}.w2", (M, D), uniform_fan_in(M)),
            ParamSpec(f"{i}.b2", (D,), uniform_fan_in(M)),
        ]
    if not symbolic:
        specs += [
            ParamSpec("head_w", (D, 1), uniform_fan_in(D)),
            ParamSpec("head_b", (1,), uniform_fan_in(D)),
        ]
    return specs


def mlp(
    xxt: bool,
    *,
    vocab_size: int,
    length: int,
    symbolic: bool,
    embed_dim: int,
    mlp_depth: int,
    **_: object,
) -> list[ParamSpec]:
    """``mlp``, or with ``xxt`` ``mlp_xxt`` (its first layer also reads the L×L equality bits)."""
    W = embed_dim
    n_in = length * vocab_size + (length * length if xxt else 0)  # one nn.Linear's fan-in
    n_out = vocab_size if symbolic else 1
    specs = [ParamSpec("w0", (length * vocab_size, W), uniform_fan_in(n_in))]
    if xxt:
        specs.append(ParamSpec("w0_xxt", (length * length, W), uniform_fan_in(n_in)))
    specs.append(ParamSpec("b0", (W,), uniform_fan_in(n_in)))
    for i in range(1, mlp_depth - 1):
        specs += [
            ParamSpec(f"w{i}", (W, W), uniform_fan_in(W)),
            ParamSpec(f"b{i}", (W,), uniform_fan_in(W)),
        ]
    return specs + [
        ParamSpec("out_w", (W, n_out), uniform_fan_in(W)),
        ParamSpec("out_b", (n_out,), uniform_fan_in(W)),
    ]


def _recurrent(vocab_size: int, symbolic: bool, H: int, cell: list[ParamSpec]) -> list[ParamSpec]:
    n_out = vocab_size if symbolic else 1
    return [
        ParamSpec("emb", (vocab_size, H), normal),
        *cell,
        ParamSpec("out_w", (H, n_out), uniform_fan_in(H)),
        ParamSpec("out_b", (n_out,), uniform_fan_in(H)),
    ]


def rnn(*, vocab_size: int, symbolic: bool, embed_dim: int, **_: object) -> list[ParamSpec]:
    H = embed_dim
    return _recurrent(
        vocab_size,
        symbolic,
        H,
        [
            ParamSpec("w_in", (H, H), uniform_fan_in(2 * H)),  # the input half of Linear(2H, H)
            ParamSpec("w_h", (H, H), uniform_fan_in(2 * H)),
            ParamSpec("b", (H,), uniform_fan_in(2 * H)),
        ],
    )


def lstm(*, vocab_size: int, symbolic: bool, embed_dim: int, **_: object) -> list[ParamSpec]:
    H = embed_dim
    return _recurrent(
        vocab_size,
        symbolic,
        H,
        [
            ParamSpec("w_ih", (H, 4 * H), uniform_fan_in(H)),
            ParamSpec("w_hh", (H, 4 * H), uniform_fan_in(H)),
            ParamSpec("b_ih", (4 * H,), uniform_fan_in(H)),
            ParamSpec("b_hh", (4 * H,), uniform_fan_in(H)),
        ],
    )


def model_kwargs(
    config: Mapping[str, Any], vocab_size: int, length: int, symbolic: bool
) -> dict[str, Any]:
    """The keyword arguments of the model a resolved config names; ``mlp_dim`` 0 means 4 × embed_dim."""
    kwargs = {k: v for k, v in config.items() if k not in ("length", "vocab_size", "symbolic")}
    kwargs["mlp_dim"] = config["mlp_dim"] or 4 * config["embed_dim"]
    return {**kwargs, "vocab_size": vocab_size, "length": length, "symbolic": symbolic}


def param_specs(
    config: Mapping[str, Any], vocab_size: int, length: int, symbolic: bool
) -> list[ParamSpec]:
    """The parameters of the model a resolved config names."""
    return PARAMS[config["model"]](**model_kwargs(config, vocab_size, length, symbolic))


PARAMS: dict[str, Callable[..., list[ParamSpec]]] = {
    "transformer": transformer,
    "mlp": partial(mlp, False),
    "mlp_xxt": partial(mlp, True),
    "rnn": rnn,
    "lstm": lstm,
}
"""Each model name's parameters, called with the model's keyword arguments (models.build_model)."""
