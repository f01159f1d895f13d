"""The private or version-specific torch kernels the stacked core uses, each with a public-API fallback.

- ``torch._fused_adam_`` / ``torch._fused_adamw_``: the multi-tensor kernels behind
  ``torch.optim.Adam(W)(fused=True)``: one pass over memory for all of a row's tensors, and a ``found_inf``
  flag that skips the update on the device, without a host sync.
- ``torch.ops.aten.embedding_dense_backward``: F.embedding's backward, which sums the rows of one index
  in a fixed order (deterministic), where ``index_add_`` adds with atomics on a GPU.

Neither is public API, so each is used only where it exists and passes a probe: called once per process
and device type on a small problem, it must accept the arguments passed here and agree with its fallback
to 1e-6. Otherwise the fallback (public tensor operations computing the same result) serves for the rest of
the process, with a warning. ``tests/test_kernels.py`` compares both paths on the torch version they were
checked on (``CHECKED_ON``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Protocol

import torch

CHECKED_ON = "2.13"
"""The torch minor version on which the private paths were checked against their fallbacks."""


class AdamUpdate(Protocol):
    def __call__(
        self,
        params: Sequence[torch.Tensor],
        grads: Sequence[torch.Tensor],
        exp_avgs: Sequence[torch.Tensor],
        exp_avg_sqs: Sequence[torch.Tensor],
        step: torch.Tensor,
        *,
        lr: float,
        beta1: float,
        beta2: float,
        weight_decay: float,
        eps: float,
        skip: torch.Tensor,
    ) -> None: ...


# -- Adam ------------------------------------------------------------------------------------------
def fused_adam(decoupled: bool) -> AdamUpdate:
    """The private fused kernel. Every tensor must be contiguous: the kernel reads a tensor's memory as
    contiguous whatever its strides."""
    kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_

    def update(
        params: Sequence[torch.Tensor],
        grads: Sequence[torch.Tensor],
        exp_avgs: Sequence[torch.Tensor],
        exp_avg_sqs: Sequence[torch.Tensor],
        step: torch.Tensor,
        *,
        lr: float,
        beta1: float,
        beta2: float,
        weight_decay: float,
        eps: float,
        skip: torch.Tensor,
    ) -> None:
        kernel(
            params,
            grads,
            exp_avgs,
            exp_avg_sqs,
            [],
            [step] * len(params),
            lr=lr,
            beta1=beta1,
            beta2=beta2,
            weight_decay=weight_decay,
            eps=eps,
            amsgrad=False,
            maximize=False,
            grad_scale=None,
            found_inf=skip,
        )

    return update


def public_adam(decoupled: bool) -> AdamUpdate:
    """The same update from public tensor operations (torch.optim.Adam's single-tensor formulas); ``skip``
    selects the old values on the device, so it needs no host sync either."""

    @torch.no_grad()
    def update(
        params: Sequence[torch.Tensor],
        grads: Sequence[torch.Tensor],
        exp_avgs: Sequence[torch.Tensor],
        exp_avg_sqs: Sequence[torch.Tensor],
        step: torch.Tensor,
        *,
        lr: float,
        beta1: float,
        beta2: float,
        weight_decay: float,
        eps: float,
        skip: torch.Tensor,
    ) -> None:
        keep = skip.to(torch.bool)
        t = step.double()
        step_size = lr / (1 - beta1**t)
        bias2_sqrt = (1 - beta2**t).sqrt()
        for p, g, m, v in zip(params, grads, exp_avgs, exp_avg_sqs):
            new_p = p
            if weight_decay and decoupled:
                new_p = p * (1 - lr * weight_decay)
            elif weight_decay:
                g = g.add(p, alpha=weight_decay)
            new_m = m.lerp(g, 1 - beta1)
            new_v = v.mul(beta2).addcmul_(g, g, value=1 - beta2)
            denom = (new_v.sqrt() / bias2_sqrt).add_(eps)
            new_p = new_p - step_size * new_m / denom
            for old, new in ((p, new_p), (m, new_m), (v, new_v)):
                old.copy_(torch.where(keep, old, new))

    return update


def adam_update(device: torch.device, decoupled: bool) -> AdamUpdate:
    """Adam's (decoupled: AdamW's) in-place update of one row's tensors on ``device``, as torch.optim.Adam(W)
    computes it; ``step`` (0-dim) counts this update; nothing changes where ``skip`` (0-dim float) is 1."""
    private = _passes(
        f"_fused_adam{'w' if decoupled else ''}_", device, lambda: _probe_adam(device, decoupled)
    )
    return fused_adam(decoupled) if private else public_adam(decoupled)


def _probe_adam(device: torch.device, decoupled: bool) -> bool:
    def run(update: AdamUpdate, skip: float) -> list[torch.Tensor]:
        p, g = torch.linspace(-1, 1, 5, device=device), torch.linspace(0.3, -0.7, 5, device=device)
        m, v = torch.full_like(p, 0.1), torch.full_like(p, 0.2)
        update(
            [p],
            [g],
            [m],
            [v],
            torch.tensor(3.0, device=device),
            lr=0.1,
            beta1=0.9,
            beta2=0.999,
            weight_decay=0.01,
            eps=1e-8,
            skip=torch.tensor(skip, device=device),
        )
        return [p, m, v]

    for skip in (0.0, 1.0):
        mine, reference = run(fused_adam(decoupled), skip), run(public_adam(decoupled), skip)
        if not all(torch.allclose(a, b, rtol=1e-6, atol=1e-7) for a, b in zip(mine, reference)):
            return False
    return True


# -- embedding backward ----------------------------------------------------------------------------
def dense_embedding_backward(
    grad: torch.Tensor, index: torch.Tensor, num_weights: int
) -> torch.Tensor:
    """The private kernel: rows of one index summed in a fixed order."""
    return torch.ops.aten.embedding_dense_backward(grad, index, num_weights, -1, False)


def public_embedding_backward(
    grad: torch.Tensor, index: torch.Tensor, num_weights: int
) -> torch.Tensor:
    """The same sums by ``index_add_`` (on a GPU in no fixed order: equal up to float rounding)."""
    return grad.new_zeros(num_weights, grad.shape[-1]).index_add_(0, index, grad)


def embedding_backward(grad: torch.Tensor, index: torch.Tensor, num_weights: int) -> torch.Tensor:
    """The gradient (num_weights, D) of F.embedding's weight, given the rows ``index`` (N,) it looked up and
    the gradient ``grad`` (N, D) of its output."""
    private = _passes(
        "embedding_dense_backward", grad.device, lambda: _probe_embedding(grad.device)
    )
    return (dense_embedding_backward if private else public_embedding_backward)(
        grad, index, num_weights
    )


def _probe_embedding(device: torch.device) -> bool:
    grad = torch.linspace(-1, 1, 8, device=device).view(4, 2)
    index = torch.tensor([2, 0, 2, 1], device=device)
    return torch.allclose(
        dense_embedding_backward(grad, index, 3),
        public_embedding_backward(grad, index, 3),
        rtol=1e-6,
        atol=1e-7,
    )


# -- choosing a path -------------------------------------------------------------------------------
_passed: dict[tuple[str, str], bool] = {}


def _passes(kernel: str, device: torch.device, probe: Callable[[], bool]) -> bool:
    """Whether the private ``kernel`` passed its probe on ``device``'s type (probed at the first call)."""
    key = (kernel, device.type)
    if key not in _passed:
        try:
            with torch.no_grad():
                ok, why = probe(), "gave another result than its fallback"
        except Exception as e:  # missing, or its signature changed
            ok, why = False, f"failed: {type(e).__name__}: {e}"
        if not ok:
            warnings.warn(
                f"torch {torch.__version__}: the private kernel {kernel} on {device.type} {why}; "
                f"using its public fallback (slower)",
                RuntimeWarning,
                stacklevel=3,
            )
        _passed[key] = ok
    return _passed[key]
