"""Stacked layers: every tensor carries the row dimension S first, every weight is (S, ...).

``stacked_linear`` and ``stacked_layer_norm`` serve every model; the tied embedding (``TiedLookup``,
``TiedLogits``) serves a model whose logits over the vocabulary reuse its input embedding E.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from .kernels import embedding_backward


def stacked_layer_norm(
    x: torch.Tensor, w: torch.Tensor | None = None, b: torch.Tensor | None = None
) -> torch.Tensor:
    """LayerNorm over the last dim; w, b are (S, D) per-row affine parameters (or None)."""
    y = F.layer_norm(x, x.shape[-1:])
    if w is None:
        return y
    shape = (w.shape[0],) + (1,) * (x.dim() - 2) + (w.shape[1],)
    return torch.addcmul(b.view(shape), y, w.view(shape))


def stacked_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """x (S, ..., i) @ w (S, i, o) [+ b (S, o)] as one bmm over the flattened middle dims."""
    S, o = x.shape[0], w.shape[-1]
    flat = x.reshape(S, -1, x.shape[-1])
    y = torch.bmm(flat, w) if b is None else torch.baddbmm(b.unsqueeze(1), flat, w)
    return y.view(*x.shape[:-1], o)


class TiedGrad:
    """One forward's handle between the readout and the lookup of a tied embedding E: the readout's
    backward leaves E's gradient here and the lookup's backward (which always runs after it: the
    readout's input depends on the lookup's output) adds its rows into that same tensor, instead of
    autograd zeroing a second (S, V, D) gradient and adding the two."""

    __slots__ = ("grad",)

    def __init__(self) -> None:
        self.grad: torch.Tensor | None = None


class TiedLookup(torch.autograd.Function):
    """Rows ``index`` (N,) of E (S, V, D) viewed as (S·V, D) → (N, D), as F.embedding."""

    @staticmethod
    def forward(ctx: Any, emb: torch.Tensor, index: torch.Tensor, tie: TiedGrad) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.tie, ctx.shape = tie, emb.shape
        return emb.reshape(-1, emb.shape[-1]).index_select(0, index)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        (index,) = ctx.saved_tensors
        total, ctx.tie.grad = ctx.tie.grad, None
        rows = total.view(-1, ctx.shape[-1]) if total is not None else None
        if (
            grad.device.type != "cpu"
        ):  # index_add_ adds with atomics there: F.embedding's ordered sums instead
            lookup = embedding_backward(grad, index, math.prod(ctx.shape[:-1]))
            return (lookup if rows is None else rows.add_(lookup)).view(ctx.shape), None, None
        if rows is None:
            rows = grad.new_zeros(ctx.shape).view(-1, ctx.shape[-1])
        return rows.index_add_(0, index, grad).view(ctx.shape), None, None


class TiedLogits(torch.autograd.Function):
    """Logits z·Eᵀ (S, B, V) over the vocabulary, tied to the input embedding E (S, V, D).

    Both the logits and E's gradient (S, V, D) come out contiguous, so that the loss and the argmax read
    the logits (the largest tensor of a step) without a copy or strided access.
    E's gradient goes to the lookup's backward through ``tie`` (see TiedGrad).
    """

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, emb: torch.Tensor, tie: TiedGrad) -> torch.Tensor:
        ctx.save_for_backward(z, emb)
        ctx.tie = tie
        return torch.bmm(z, emb.transpose(1, 2))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        z, emb = ctx.saved_tensors
        grad_z = torch.bmm(grad, emb) if ctx.needs_input_grad[0] else None
        if ctx.needs_input_grad[1]:
            ctx.tie.grad = torch.bmm(grad.transpose(1, 2), z)
        return grad_z, None, None
