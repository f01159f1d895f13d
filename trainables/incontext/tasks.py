"""In-context tasks (see docs/science.md, In-context logistic regression): each sequence draws its own w.

- ``logistic_regression`` (TART): w = α·g, g ~ N(0, I_d); x ~ N(0, I_d);
  y ~ Bernoulli(sigmoid(⟨x, w⟩)), y ∈ {0, 1}; BCE on the 0/1 targets. The oracle predicts
  1[⟨x, w⟩ > 0]; its accuracy is E[sigmoid(α‖g‖·|z|)], z ~ N(0, 1) (≈ 0.986 at d = 16, α = 10).
- ``linear_regression`` (Garg et al.): w ~ N(0, I_d); x ~ N(0, I_d); y = ⟨x, w⟩, no noise; MSE.
  The oracle is exact, so it has no metric of its own.

With a curriculum only the first ``d_active`` coordinates of x are drawn as above; the others are
zero (as in both papers' code), so the labels depend on those coordinates alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .config import CLASSIFICATION


@dataclass(frozen=True)
class Batch:
    """Sequences of one member: x (B, K, d), y (B, K), w (B, d)."""

    x: torch.Tensor
    y: torch.Tensor
    w: torch.Tensor


def _gaussian_xw(
    B: int, K: int, d: int, d_active: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    # Always draw all d coordinates, so that the random stream does not depend on the curriculum.
    x = torch.randn(B, K, d, generator=gen)
    w = torch.randn(B, d, generator=gen)
    x[:, :, d_active:] = 0.0
    return x, w


def logistic_regression(
    B: int, K: int, d: int, d_active: int, alpha: float, gen: torch.Generator
) -> Batch:
    x, g = _gaussian_xw(B, K, d, d_active, gen)
    w = alpha * g
    y = torch.bernoulli(torch.sigmoid(torch.einsum("bkd,bd->bk", x, w)), generator=gen)
    return Batch(x, y, w)


def linear_regression(
    B: int, K: int, d: int, d_active: int, alpha: float, gen: torch.Generator
) -> Batch:
    x, w = _gaussian_xw(B, K, d, d_active, gen)
    return Batch(x, torch.einsum("bkd,bd->bk", x, w), w)


@dataclass(frozen=True)
class Task:
    name: str
    sample: Callable[[int, int, int, int, float, torch.Generator], Batch]
    classification: bool
    """True: labels in {0, 1}, BCE on logits, accuracy; False: real labels, MSE."""


TASKS: dict[str, Task] = {
    name: Task(name, sample, CLASSIFICATION[name])
    for name, sample in (
        ("logistic_regression", logistic_regression),
        ("linear_regression", linear_regression),
    )
}
