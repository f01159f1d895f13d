"""The GPT-2's parameters (model.GPT2): names, shapes and initialisers, in declaration order.

Free of torch at import, so that the driver can size packs from a cell's parameter count
(``config.step_cost``) without importing torch. Initialisation as GPT-2's: weights and positions
N(0, 0.02), the two residual projections N(0, 0.02/√(2·depth)), biases 0; read-in and read-out as
nn.Linear's defaults.
"""

from __future__ import annotations

import math

from ..stacked.layout import ParamSpec, ones, scaled_normal, uniform_fan_in, zeros


def gpt2_params(*, d: int, k: int, embed_dim: int, depth: int) -> list[ParamSpec]:
    D, std = embed_dim, 0.02
    proj = scaled_normal(std / math.sqrt(2 * depth))
    specs = [
        ParamSpec("read_in_w", (d, D), uniform_fan_in(d)),
        ParamSpec("read_in_b", (D,), uniform_fan_in(d)),
        ParamSpec("pos", (2 * k, D), scaled_normal(std)),
    ]
    for i in range(depth):
        specs += [
            ParamSpec(f"{i}.ln1_w", (D,), ones),
            ParamSpec(f"{i}.ln1_b", (D,), zeros),
            ParamSpec(f"{i}.attn_w", (D, 3 * D), scaled_normal(std)),
            ParamSpec(f"{i}.attn_b", (3 * D,), zeros),
            ParamSpec(f"{i}.proj_w", (D, D), proj),
            ParamSpec(f"{i}.proj_b", (D,), zeros),
            ParamSpec(f"{i}.ln2_w", (D,), ones),
            ParamSpec(f"{i}.ln2_b", (D,), zeros),
            ParamSpec(f"{i}.fc_w", (D, 4 * D), scaled_normal(std)),
            ParamSpec(f"{i}.fc_b", (4 * D,), zeros),
            ParamSpec(f"{i}.out_w", (4 * D, D), proj),
            ParamSpec(f"{i}.out_b", (D,), zeros),
        ]
    specs += [
        ParamSpec("lnf_w", (D,), ones),
        ParamSpec("lnf_b", (D,), zeros),
        ParamSpec("read_out_w", (D, 1), uniform_fan_in(D)),
        ParamSpec("read_out_b", (1,), uniform_fan_in(D)),
    ]
    return specs
