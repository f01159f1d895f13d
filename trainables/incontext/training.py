"""The stacked training loop: one row per (pack member, seed) (members.py), one GPT-2, fresh sequences every
step, one report per evaluation.

The row of seed s owns a ``torch.Generator`` seeded ``seed + s`` that draws, in order, its initial
parameters and then each step's batch, so a stack of seeds [0, 1, 2] trains each member exactly as
three separate S = 1 runs would (up to float summation order). The evaluation set has its own seed,
shared by all members. Sequences are drawn on the CPU, so a seed means the same data on every device.

Reports every ``eval_every`` steps and at the last, with ``epoch`` = steps completed (the
orchestrator's ASHA uses ``epoch`` as time): ``train_loss`` = the mean training loss over the steps
since the previous report, the evaluation's means over positions (``test_acc``, ``test_loss``,
``oracle_acc``, ``baseline_acc``, or ``test_mse``, ``baseline_mse``), ``seed_metrics`` and
``diverged``. The last report adds the per-position curves (``config.curves``): the mean over live
members under the curve's name (``acc_by_k``: a list of k floats) and every member's under
``seed_curves`` ({curve: [[k floats] per member]}), as ``seed_metrics`` does for scalars.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ..api import MEMBERS, Reporter
from ..members import Stack, default_device, member_gens
from ..packs import member_configs
from .config import curves, resolve
from .curriculum import Curriculum
from .evaluation import EvalSet
from .model import GPT2
from .tasks import TASKS

EVAL_CHUNK = 256  # evaluation sequences per forward pass


class Trainer:
    """Holds the whole stacked state of one trial; ``run(report)`` trains and reports."""

    def __init__(self, config: dict[str, Any], device: torch.device | str | None = None) -> None:
        cfg = self.cfg = resolve(config)
        dev = self.device = torch.device(device) if device is not None else default_device()
        self.task = TASKS[cfg["task"]]
        self.model = GPT2(d=cfg["d"], k=cfg["k"], embed_dim=cfg["embed_dim"], depth=cfg["depth"], heads=cfg["heads"])
        configs = member_configs(cfg)
        self.stack = Stack(self.model.layout, configs, member_gens(configs, cfg["seeds"]), cfg["seeds"], dev,
                           decoupled=False, packed=MEMBERS in cfg)
        self.curriculum = Curriculum(cfg["curriculum"], cfg["d"], cfg["k"], cfg["curriculum_every"])
        self.evalset = EvalSet(self.task, d=cfg["d"], k=cfg["k"], alpha=cfg["alpha"], n=cfg["n_eval"],
                               seed=cfg["eval_seed"], l2=cfg["baseline_l2"], device=dev)
        self.step = 0  # steps completed
        self.loss_sum = torch.zeros(self.stack.rows, device=dev)  # training loss summed since the last report
        self.loss_steps = 0
        self.train_loss = torch.full((self.stack.rows,), math.nan, device=dev)  # as last reported

    def drop(self, members: set[int]) -> None:
        """Stop training ``members``: their rows leave the stack and every per-row tensor."""
        if (rows := self.stack.drop(members)) is not None:
            self.loss_sum, self.train_loss = self.loss_sum[rows], self.train_loss[rows]

    def _loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-row loss (rows,) over all positions of all sequences: BCE on 0/1 labels, or MSE."""
        if self.task.classification:
            return F.binary_cross_entropy_with_logits(out, y, reduction="none").mean(dim=(1, 2))
        return ((out - y) ** 2).mean(dim=(1, 2))

    def train_step(self) -> None:
        d_active, k = self.curriculum.at(self.step)
        cfg = self.cfg
        batches = [self.task.sample(cfg["batch_size"], k, cfg["d"], d_active, cfg["alpha"], g) for g in self.stack.gens]
        x = torch.stack([b.x for b in batches]).to(self.device)  # (rows, B, k, d)
        y = torch.stack([b.y for b in batches]).to(self.device)  # (rows, B, k)
        p, n = self.stack.named(), cfg["grad_accum"]
        chunks = (self._loss(self.model.forward(p, xc, yc), yc) / n for xc, yc in zip(x.chunk(n, 1), y.chunk(n, 1)))
        self.loss_sum += self.stack.step(chunks)
        self.loss_steps += 1
        self.step += 1

    @torch.no_grad()
    def evaluate(self) -> dict[str, torch.Tensor]:
        """Per-row, per-position scores (rows, K) of the model and, repeated per row, the references."""
        self.stack.quarantine()
        p, rows = self.stack.named(detach=True), self.stack.rows
        x, y = self.evalset.x, self.evalset.y
        out = torch.cat([self.model.forward(p, x[i:i + EVAL_CHUNK].expand(rows, -1, -1, -1),
                                            y[i:i + EVAL_CHUNK].expand(rows, -1, -1))
                         for i in range(0, x.shape[0], EVAL_CHUNK)], dim=1)  # (rows, N, K)
        scores = self.evalset.score(out)
        refs = {name: v.to(self.device).expand(rows, -1) for name, v in self.evalset.reference.items()}
        return {**scores, **refs}

    # -- checkpoints --------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything needed to continue exactly (taken at a report, when no training loss is pending)."""
        return {**self.stack.state(), "step": self.step, "train_loss": self.train_loss.cpu().clone()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.drop(set(self.stack.members) - set(state.get("members", self.stack.members)))
        self.stack.load(state)
        self.train_loss = state["train_loss"].to(self.device).clone()
        self.step = int(state["step"])

    # -- the loop -----------------------------------------------------------------------------
    def run(self, report: Reporter) -> None:
        restored = report.restored_state()
        if restored is not None:
            self.load_state(restored)
        steps, every = self.cfg["steps"], self.cfg["eval_every"]
        if self.step >= steps:  # restored from the final checkpoint: report the final state again
            report(self.metrics(), state=self.state)
            return
        while self.step < steps and self.stack.members:
            self.train_step()
            if self.step % every == 0 or self.step == steps:
                self.train_loss = self.loss_sum / self.loss_steps
                self.loss_sum.zero_()
                self.loss_steps = 0
                report(self.metrics(), state=self.state)
                self.drop(report.stopped())

    def metrics(self) -> dict[str, Any]:
        """The report for the current step; the last one adds the per-position curves."""
        by_k = self.evaluate()  # metric → (rows, K)
        per_row = {"train_loss": self.train_loss, **{name: v.mean(-1) for name, v in by_k.items()}}
        out = self.stack.report(self.step, per_row)
        alive = self.stack.alive
        if self.step >= self.cfg["steps"]:
            out["seed_curves"] = {}
            for curve, scalar in curves(self.cfg).items():
                values = by_k[scalar].double()
                out[curve] = values[alive].mean(0).tolist() if alive.any() else [math.nan] * values.shape[1]
                out["seed_curves"][curve] = torch.where(alive[:, None], values, math.nan).tolist()
        return out


def train(config: dict[str, Any], report: Reporter) -> None:
    """The ``incontext`` trainable: build everything from ``config``, train, report per evaluation.

    ``report`` is a :class:`Reporter`; a plain ``fn(metrics)`` callable is accepted too.
    """
    if not hasattr(report, "restored_state"):
        report = Reporter(report)
    Trainer(config).run(report)
