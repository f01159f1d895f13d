"""The trained state of one trial: the stack of rows, one stacked optimizer step with divergence handling
(and gradient accumulation), the per-evaluation report, dropping members, the checkpoint.

A trial's stack has one row per (pack member, seed): a config with ``members: [{lr: ...}, ...]`` trains
those K configs × ``seeds`` seeds as one model (only keys the trainable declares ``stackable`` may differ
between members; trainables/packs.py checks such configs); a config without it is one member. Member k's
seed s row draws from a generator seeded ``seed + s``, so a packed member trains exactly as the same config
alone (up to float summation order).
Members that the runner stops early are dropped: their rows are sliced out of every tensor.

A row whose loss becomes NaN/inf is *diverged*: its gradient is ignored from then on (Adam skips it), and
its metrics are reported as NaN, and the row is flagged diverged (no seed mean counts it).
Checkpoints hold CPU tensors, so a trial can be restored on another device.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import Any

import torch

from ..api import Report, Row
from .adam import Adam
from .layout import Layout


def default_device() -> torch.device:
    """CUDA when visible (Ray hides GPUs from trials that hold none), else CPU; SCALESWEEP_DEVICE overrides."""
    return torch.device(
        os.environ.get("SCALESWEEP_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    )


def member_gens(configs: list[dict[str, Any]], seeds: int) -> list[torch.Generator]:
    """One generator per row: member k's seed s row is seeded ``seed + s``, as the member alone would be."""
    return [torch.Generator().manual_seed(c["seed"] + s) for c in configs for s in range(seeds)]


class Stack:
    """The trained state of one trial: parameters, optimizer moments, RNG streams and live rows, one row per
    (member, seed), with ``members`` naming the pack members whose rows are still in the stack, in order."""

    def __init__(
        self,
        layout: Layout,
        configs: list[dict[str, Any]],
        gens: list[torch.Generator],
        seeds: int,
        device: torch.device,
        decoupled: bool,
    ) -> None:
        self.layout, self.gens, self.seeds, self.device = layout, gens, seeds, device
        self.decoupled = decoupled
        self.members = list(range(len(configs)))
        self.base_seeds = [
            int(c["seed"]) for c in configs
        ]  # member k's seed s row trains seed base_seeds[k] + s
        self.lr = [float(c["lr"]) for c in configs for _ in range(seeds)]
        self.weight_decay = [
            float(c.get("weight_decay", 0.0)) for c in configs for _ in range(seeds)
        ]
        self.params = [p.detach().to(device).requires_grad_() for p in layout.init(gens)]
        self.opt = Adam(
            self.params, lr=self.lr, weight_decay=self.weight_decay, decoupled=decoupled
        )
        self.alive = torch.ones(len(gens), dtype=torch.bool, device=device)

    @property
    def rows(self) -> int:
        return len(self.gens)

    def named(self, detach: bool = False) -> dict[str, torch.Tensor]:
        return self.layout.named([p.detach() for p in self.params] if detach else self.params)

    def step(self, chunk_losses: Iterable[torch.Tensor]) -> torch.Tensor:
        """One optimizer step on the summed losses (rows,) of the chunks of one batch, their gradients
        accumulated (one backward per chunk bounds activation memory); rows whose loss is not finite are
        marked dead. Returns the summed loss (rows,)."""
        total: torch.Tensor | None = None
        grads: list[torch.Tensor] = []
        for loss in chunk_losses:
            self.alive &= torch.isfinite(loss.detach())
            chunk = torch.autograd.grad(torch.where(self.alive, loss, 0.0).sum(), self.params)
            grads = [a.add_(b) for a, b in zip(grads, chunk)] if grads else list(chunk)
            total = loss.detach() if total is None else total + loss.detach()
        if total is None:
            raise ValueError("expected at least one chunk loss")
        self.opt.step(grads, self.alive)
        return total

    def quarantine(self) -> None:
        """Zero diverged rows' parameters and moments so no NaN/inf survives in them."""
        self.opt.quarantine(~self.alive)

    def report(
        self,
        epoch: int,
        per_row: dict[str, torch.Tensor],
        curves: dict[str, torch.Tensor] | None = None,
    ) -> Report:
        """The report for one evaluation: one row per (member, seed) still in the stack, NaN and flagged
        where diverged; ``curves`` ({name: (rows, positions)}) ride on the rows (the last report's)."""
        dead = (~self.alive).tolist()
        values = {k: v.double().tolist() for k, v in per_row.items()}
        per_position = {k: v.double().tolist() for k, v in (curves or {}).items()}
        rows = []
        for j, member in enumerate(self.members):
            for s in range(self.seeds):
                r = j * self.seeds + s
                metrics = {k: math.nan if dead[r] else v[r] for k, v in values.items()}
                row_curves = {
                    k: [math.nan] * len(v[r]) if dead[r] else v[r] for k, v in per_position.items()
                }
                rows.append(
                    Row(member, self.base_seeds[member] + s, metrics, dead[r], row_curves or None)
                )
        return Report(epoch, rows)

    def drop(self, members: Iterable[int]) -> torch.Tensor | None:
        """Slice the rows of ``members`` out of the stack; returns the kept rows' indices (for the trainer's
        own per-row tensors), or None when none of them is in the stack."""
        gone = set(members) & set(self.members)
        if not gone:
            return None
        rows = [
            j * self.seeds + s
            for j, m in enumerate(self.members)
            if m not in gone
            for s in range(self.seeds)
        ]
        index = torch.tensor(rows, dtype=torch.long, device=self.device)
        state = self.opt.state_dict()
        self.members = [m for m in self.members if m not in gone]
        self.gens = [self.gens[r] for r in rows]
        self.lr, self.weight_decay = (
            [self.lr[r] for r in rows],
            [self.weight_decay[r] for r in rows],
        )
        self.params = [p.detach()[index].requires_grad_() for p in self.params]
        self.alive = self.alive[index]
        self.opt = Adam(
            self.params, lr=self.lr, weight_decay=self.weight_decay, decoupled=self.decoupled
        )
        if rows:
            self.opt.load_state_dict(
                {
                    "step": state["step"],
                    "m": [t[index] for t in state["m"]],
                    "v": [t[index] for t in state["v"]],
                }
            )
        return index

    def state(self) -> dict[str, Any]:
        """Parameters, optimizer moments, live rows, RNG streams and members, as CPU tensors."""
        state = self.opt.state_dict()
        return {
            "params": {
                s.name: p.detach().cpu().clone() for s, p in zip(self.layout.specs, self.params)
            },
            "optimizer": {
                "step": state["step"].cpu(),
                "m": [t.cpu() for t in state["m"]],
                "v": [t.cpu() for t in state["v"]],
            },
            "alive": self.alive.cpu().clone(),
            "rng": [g.get_state() for g in self.gens],
            "members": list(self.members),
        }

    def load(self, state: dict[str, Any]) -> None:
        """Restore what ``state`` saved; the stack must already hold the saved members (``drop`` first)."""
        if state.get("members", self.members) != self.members:
            raise ValueError(
                "the checkpoint's members differ from the stack's; drop the missing ones first"
            )
        saved = state["params"]
        expected = {s.name: tuple(p.shape) for s, p in zip(self.layout.specs, self.params)}
        if {k: tuple(v.shape) for k, v in saved.items()} != expected:
            raise ValueError(
                "the checkpoint's parameters do not match the model this config builds"
            )
        with torch.no_grad():
            for s, p in zip(self.layout.specs, self.params):
                p.copy_(saved[s.name])
        o = state["optimizer"]
        self.opt.load_state_dict(
            {
                "step": o["step"].to(self.device),
                "m": [t.to(self.device) for t in o["m"]],
                "v": [t.to(self.device) for t in o["v"]],
            }
        )
        for g, s in zip(self.gens, state["rng"]):
            g.set_state(s)
        self.alive = state["alive"].to(self.device).clone()
