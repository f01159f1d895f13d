"""Stacked parameters: every parameter is one leaf tensor (S, *shape) with a leading row dimension S.

Models are written with batched weights: the forward pass uses bmm/einsum so all S rows train in the same
kernels, and a row's output depends only on its own slice of every parameter. Batched weights (rather than
``torch.func.stack_module_state`` + ``vmap`` over an nn.Module) make per-row hyper-parameters plain per-row
values and cost less per step at the small widths this project trains (benchmarks/README.md has the figures).

Each row draws all of its initial parameters from its own generator, in declaration order, so a row
initialises exactly as the same member alone would.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

Init = Callable[[tuple[int, ...], "torch.Generator"], "torch.Tensor"]
"""An initialiser: a shape and a generator to a tensor. Torch is imported when one runs, not with this
module, which the driver imports to count parameters (template.params)."""


def normal(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """N(0, 1), as nn.Embedding."""
    import torch

    return torch.randn(shape, generator=gen)


def scaled_normal(std: float) -> Init:
    """N(0, std²), as GPT-2's weights."""

    def init(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
        import torch

        return torch.randn(shape, generator=gen) * std

    return init


def zeros(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    import torch

    return torch.zeros(shape)


def ones(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    import torch

    return torch.ones(shape)


def uniform_fan_in(fan_in: int) -> Init:
    """U(-1/√fan_in, 1/√fan_in): nn.Linear's default for weights (kaiming_uniform, a=√5) and biases."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0

    def init(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
        import torch

        return torch.empty(shape).uniform_(-bound, bound, generator=gen)

    return init


@dataclass(frozen=True)
class ParamSpec:
    """One row's parameter: its name, shape and initialiser (called in declaration order)."""

    name: str
    shape: tuple[int, ...]
    init: Init


class Layout:
    """A model's parameters: names, shapes and initialisers, in declaration order."""

    def __init__(self, specs: list[ParamSpec]) -> None:
        self.specs = specs
        self.size = sum(math.prod(s.shape) for s in specs)  # parameters per row

    def init(self, gens: list[torch.Generator]) -> list[torch.Tensor]:
        """One (S, *shape) leaf tensor per parameter; row s draws all of its own from gens[s]."""
        import torch

        rows = [[s.init(s.shape, g).float() for s in self.specs] for g in gens]
        return [torch.stack(per_row).requires_grad_() for per_row in zip(*rows)]

    def named(self, params: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return {s.name: p for s, p in zip(self.specs, params)}
