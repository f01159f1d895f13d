"""Stacked parameters and a stacked Adam: S members share one flat (S, P) tensor.

Every model here is written with batched weights: each parameter carries a leading member
dimension, and the forward pass uses bmm/einsum so all S members train in the same kernels. All
parameters live in ONE leaf tensor ``flat`` of shape (S, P); the model reads views of it (one
``split`` per forward, whose backward is a single concatenation), so the gradient is one (S, P)
tensor and an optimizer step is a handful of whole-tensor ops whatever the model. Members never
mix: a member's loss depends only on its own row of ``flat``.

Why batched weights rather than ``torch.func.stack_module_state`` + ``vmap``: measured on 2 CPU
cores (transformer, depth 2, 2 heads × 64, full batch), batched weights were as fast or faster
at every size tried, and per-member hyper-parameters are plain (S,) tensors (see ``Adam``).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

Init = Callable[[tuple[int, ...], torch.Generator], torch.Tensor]


def normal(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """N(0, 1), as nn.Embedding and the paper's positional/CLS parameters."""
    return torch.randn(shape, generator=gen)


def zeros(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    return torch.zeros(shape)


def ones(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    return torch.ones(shape)


def uniform_fan_in(fan_in: int) -> Init:
    """U(-1/√fan_in, 1/√fan_in): nn.Linear's default for weights (kaiming_uniform, a=√5) and biases."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0

    def init(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
        return torch.empty(shape).uniform_(-bound, bound, generator=gen)

    return init


@dataclass(frozen=True)
class ParamSpec:
    """One member's parameter: its name, shape and initialiser (called in declaration order)."""

    name: str
    shape: tuple[int, ...]
    init: Init


class Layout:
    """Where each named parameter lives inside a member's flat row."""

    def __init__(self, specs: list[ParamSpec]) -> None:
        self.specs = specs
        self.sizes = [math.prod(s.shape) for s in specs]
        self.size = sum(self.sizes)

    def init_member(self, gen: torch.Generator) -> torch.Tensor:
        """One member's (P,) parameter row, drawn from its own generator."""
        if not self.specs:
            return torch.zeros(0)
        return torch.cat([s.init(s.shape, gen).reshape(-1).float() for s in self.specs])

    def views(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named (S, *shape) views of the (S, P) tensor."""
        S = flat.shape[0]
        parts = flat.split(self.sizes, dim=1)
        return {s.name: p.view(S, *s.shape) for s, p in zip(self.specs, parts)}


class Adam:
    """Adam / AdamW over one (S, P) tensor with per-member lr and weight decay (shape (S,)).

    Follows torch.optim.Adam(W)'s update exactly (default eps 1e-8, betas (0.9, 0.999)):
    Adam adds ``weight_decay * p`` to the gradient; AdamW decays ``p`` by ``lr * weight_decay``
    before the update. ``alive`` (S,) freezes diverged members: their gradients are ignored and
    their parameters and moments stop changing.
    """

    def __init__(self, flat: torch.Tensor, lr: torch.Tensor, weight_decay: torch.Tensor,
                 decoupled: bool, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.flat = flat
        self.lr = lr.reshape(-1, 1).to(flat)
        self.wd = weight_decay.reshape(-1, 1).to(flat)
        self.decoupled = decoupled
        self.use_wd = bool((weight_decay != 0).any())
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.step_count = 0
        self.m = torch.zeros_like(flat)
        self.v = torch.zeros_like(flat)

    @torch.no_grad()
    def step(self, grad: torch.Tensor, alive: torch.Tensor) -> None:
        live = alive.reshape(-1, 1)
        p = self.flat
        g = torch.where(live, grad, 0.0)  # a diverged member's moments only decay; its step is 0
        if self.use_wd and not self.decoupled:
            g.add_(p * self.wd)
        self.step_count += 1
        t = self.step_count
        self.m.lerp_(g, 1 - self.beta1)
        self.v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
        if self.use_wd and self.decoupled:
            p.mul_(torch.where(live, 1 - self.lr * self.wd, 1.0))
        step_size = torch.where(live, self.lr / (1 - self.beta1 ** t), 0.0)
        denom = (self.v.sqrt() / math.sqrt(1 - self.beta2 ** t)).add_(self.eps)
        p.addcdiv_(self.m * step_size, denom, value=-1.0)

    @torch.no_grad()
    def quarantine(self, dead: torch.Tensor) -> None:
        """Zero a diverged member's parameters and moments so no NaN/inf survives in it."""
        for t in (self.flat, self.m, self.v):
            t[dead] = 0.0

    def state_dict(self) -> dict[str, object]:
        return {"step": self.step_count, "m": self.m.clone(), "v": self.v.clone()}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.step_count = int(state["step"])  # type: ignore[arg-type]
        self.m = state["m"].clone()  # type: ignore[union-attr]
        self.v = state["v"].clone()  # type: ignore[union-attr]
