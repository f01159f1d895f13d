"""Adam / AdamW over stacked parameters, with a learning rate and a weight decay per row."""

from __future__ import annotations

import torch

from .kernels import adam_update


class Adam:
    """Adam (``decoupled``: AdamW) over stacked parameters (S, ...), ``lr[s]`` and ``weight_decay[s]`` per row.

    Each row's slices get torch.optim.Adam(W)'s update (Adam adds ``weight_decay * p`` to the gradient;
    AdamW decays ``p`` by ``lr * weight_decay``), one kernel call per row (kernels.adam_update): the update
    is memory-bound, so per-row calls cost little next to one call over all rows. A row that is not
    ``alive`` is skipped inside the kernel, so a diverged row's NaN gradients never touch its parameters or
    moments, without a host sync.
    """

    def __init__(
        self,
        params: list[torch.Tensor],
        lr: list[float],
        weight_decay: list[float],
        decoupled: bool,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.S = params[0].shape[0]
        if not (len(lr) == len(weight_decay) == self.S):
            raise ValueError("need one lr and one weight_decay per row")
        self.params = params
        self.lr, self.wd = [float(x) for x in lr], [float(x) for x in weight_decay]
        self.update = adam_update(params[0].device, decoupled)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.steps = torch.zeros((), device=params[0].device)
        self.m = [torch.zeros_like(p, requires_grad=False) for p in params]
        self.v = [torch.zeros_like(p, requires_grad=False) for p in params]
        # Per-row views, made once: all updates are in place, so they stay valid.
        self._rows = [
            list(zip(*(t.detach().unbind(0) for t in ts))) for ts in (params, self.m, self.v)
        ]

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor], alive: torch.Tensor) -> None:
        self.steps += 1
        skip = (~alive).to(self.params[0].dtype).unbind(0)
        # contiguous, so that each row's slice is too (the fused kernel needs it)
        row_grads = list(
            zip(*((g if g.is_contiguous() else g.contiguous()).unbind(0) for g in grads))
        )
        for s, (p, m, v) in enumerate(zip(*self._rows)):
            self.update(
                p,
                row_grads[s],
                m,
                v,
                self.steps,
                lr=self.lr[s],
                beta1=self.beta1,
                beta2=self.beta2,
                weight_decay=self.wd[s],
                eps=self.eps,
                skip=skip[s],
            )

    @torch.no_grad()
    def quarantine(self, dead: torch.Tensor) -> None:
        """Zero a diverged row's parameters and moments so no NaN/inf survives in it."""
        if dead.device.type == "cpu" and not bool(dead.any()):
            return  # the usual case, free to check on the CPU, where masking every tensor is not
        for t in (*self.params, *self.m, *self.v):
            t.masked_fill_(dead.view(-1, *(1,) * (t.dim() - 1)), 0.0)

    def state_dict(self) -> dict[str, object]:
        return {
            "step": self.steps.clone(),
            "m": [t.clone() for t in self.m],
            "v": [t.clone() for t in self.v],
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, object]) -> None:
        self.steps.copy_(state["step"])  # type: ignore[arg-type]
        for mine, saved in zip((*self.m, *self.v), (*state["m"], *state["v"])):  # type: ignore[misc]
            mine.copy_(saved)
