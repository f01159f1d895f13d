"""What every stacked training loop does the same way: the device, one stacked optimizer step with
divergence handling (and gradient accumulation), the per-evaluation report, the whole-state checkpoint.

A member whose loss becomes NaN/inf is *diverged*: its gradient is ignored from then on (the fused
Adam skips it), and its metrics are reported as NaN; reports hold means over live members.
Checkpoints hold CPU tensors, so a trial can be restored on another device.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # types only: importing trainables.template here would be circular
    from .template.stacked import Adam, Layout


def default_device() -> torch.device:
    """CUDA when visible (Ray hides GPUs from trials that hold none), else CPU; SCALESWEEP_DEVICE overrides."""
    return torch.device(os.environ.get("SCALESWEEP_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu"))


def optimizer_step(chunk_losses: Iterable[torch.Tensor], params: list[torch.Tensor], opt: Adam,
                   alive: torch.Tensor) -> torch.Tensor:
    """One step on the summed losses (S,) of the chunks of one batch, their gradients accumulated (one
    backward per chunk bounds activation memory); marks members whose loss is not finite as dead (in
    place). Returns the summed loss (S,)."""
    total: torch.Tensor | None = None
    grads: list[torch.Tensor] = []
    for loss in chunk_losses:
        alive &= torch.isfinite(loss.detach())
        chunk = torch.autograd.grad(torch.where(alive, loss, 0.0).sum(), params)
        grads = [a.add_(b) for a, b in zip(grads, chunk)] if grads else list(chunk)
        total = loss.detach() if total is None else total + loss.detach()
    if total is None:
        raise ValueError("expected at least one chunk loss")
    opt.step(grads, alive)
    return total


def member_report(epoch: int, per_member: dict[str, torch.Tensor], alive: torch.Tensor) -> dict[str, Any]:
    """The report for one evaluation: means over live members, per-member lists (NaN when diverged), flags."""
    per_member = {k: v.double() for k, v in per_member.items()}
    dead = ~alive
    report: dict[str, Any] = {"epoch": epoch}
    for k, v in per_member.items():
        report[k] = float(v[alive].mean()) if alive.any() else math.nan
    report["seed_metrics"] = {k: torch.where(dead, math.nan, v).tolist() for k, v in per_member.items()}
    report["diverged"] = dead.tolist()
    return report


def save_state(layout: Layout, params: list[torch.Tensor], opt: Adam, alive: torch.Tensor,
               gens: list[torch.Generator]) -> dict[str, Any]:
    """Parameters, optimizer moments, live members and RNG streams, as CPU tensors."""
    state = opt.state_dict()
    return {"params": {s.name: p.detach().cpu().clone() for s, p in zip(layout.specs, params)},
            "optimizer": {"step": state["step"].cpu(), "m": [t.cpu() for t in state["m"]],
                          "v": [t.cpu() for t in state["v"]]},
            "alive": alive.cpu().clone(), "rng": [g.get_state() for g in gens]}


def load_state(state: dict[str, Any], layout: Layout, params: list[torch.Tensor], opt: Adam,
               gens: list[torch.Generator]) -> torch.Tensor:
    """Restore what ``save_state`` saved into ``params``, ``opt`` and ``gens``; returns the live-member mask."""
    saved = state["params"]
    expected = {s.name: tuple(p.shape) for s, p in zip(layout.specs, params)}
    if {k: tuple(v.shape) for k, v in saved.items()} != expected:
        raise ValueError("the checkpoint's parameters do not match the model this config builds")
    device = params[0].device
    with torch.no_grad():
        for s, p in zip(layout.specs, params):
            p.copy_(saved[s.name])
    o = state["optimizer"]
    opt.load_state_dict({"step": o["step"].to(device), "m": [t.to(device) for t in o["m"]],
                         "v": [t.to(device) for t in o["v"]]})
    for g, s in zip(gens, state["rng"]):
        g.set_state(s)
    return state["alive"].to(device).clone()
