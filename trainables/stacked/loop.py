"""The one stacked training loop: a trainable plugs in a model, a sampler and an evaluation (a StackedTask).

A trial trains ``units`` units (the template trainable's epochs, incontext's steps), each a sequence of
optimizer steps the task's sampler draws, and reports every ``every`` units and at the last, with
``epoch`` = units completed (the runner's time, e.g. ASHA's). A report (stack.Stack.report) has one row per
(member, seed) holding ``train_loss`` (the mean loss of the steps of the last unit, or of every step since
the previous report, each step weighted as its sampler says) and the evaluation's metrics; a metric
evaluated per position (rows, K) is reported as its mean over positions, and the last report's rows carry
the trainable's ``curves``, per position.

Divergence: a row whose loss is not finite stops updating (stack.Stack.step) and is zeroed before each
evaluation, so no NaN/inf survives in it. After each report, the members the runner stopped
(``report.stopped()``) leave the stack and every per-row tensor, the task's included; the trial ends when
none is left.

Checkpoints: ``report(metrics, state=...)`` hands the runner a callable returning everything needed to
continue exactly (the stack's state, the units completed, the last reported training loss), taken at a
report, when no training loss is pending. A trial restored from it (``report.restored_state()``) makes
exactly the reports the uninterrupted trial made after it; restored from its final checkpoint, it reports
the final state again.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch

from ..api import Report, Reporter
from .stack import Stack


@dataclass(frozen=True)
class Step:
    """One optimizer step: its micro-batches, whose gradients are accumulated (each is what the task's
    ``loss`` takes), and its weight in the reported training loss."""

    chunks: Sequence[Any]
    weight: int | float = 1


class StackedTask(Protocol):
    """What a trainable plugs into :func:`run_stacked`: its stack (model parameters and rows), a sampler,
    a loss and an evaluation."""

    stack: Stack

    def steps(self, unit: int) -> Iterable[Step]:
        """The optimizer steps of unit ``unit`` (0-based), drawing from the rows' generators
        (``stack.gens``) as they are asked for."""
        ...

    def loss(self, p: dict[str, torch.Tensor], chunk: Any) -> torch.Tensor:
        """Each row's mean loss (rows,) on one micro-batch, under the parameters ``p``."""
        ...

    def evaluate(self, p: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each row's metrics (rows,), or per position (rows, K), under the parameters ``p``."""
        ...

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Keep only the rows ``rows`` of the task's own per-row tensors (members were dropped)."""
        ...


def run_stacked(
    task: StackedTask,
    report: Reporter,
    *,
    units: int,
    every: int,
    train_loss_over: Literal["unit", "report"] = "unit",
    curves: Mapping[str, str] | None = None,
) -> None:
    """Train ``task`` for ``units`` units, reporting every ``every`` units and at the last.

    ``train_loss_over``: the reported training loss is the weighted mean over the steps of the last unit
    (``"unit"``) or over all steps since the previous report (``"report"``). ``curves``: {curve: the
    per-position metric it shows}, added to the last report.
    """
    if train_loss_over not in ("unit", "report"):
        raise ValueError(f"train_loss_over: expected 'unit' or 'report', got {train_loss_over!r}")
    _Run(task, units, train_loss_over, dict(curves or {})).run(report, every)


class _Run:
    """The loop's own state: units completed and the training loss, per row, reported and pending."""

    def __init__(
        self, task: StackedTask, units: int, loss_over: str, curves: dict[str, str]
    ) -> None:
        self.task, self.stack, self.units = task, task.stack, units
        self.loss_over, self.curves = loss_over, curves
        self.epoch = 0  # units completed
        rows, device = self.stack.rows, self.stack.device
        self.train_loss = torch.full((rows,), math.nan, device=device)  # as last reported
        self.loss_sum = torch.zeros(
            rows, device=device
        )  # weighted losses of the steps not yet in train_loss
        self.weight_sum: int | float = 0

    def run(self, report: Reporter, every: int) -> None:
        restored = report.restored_state()
        if restored is not None:
            self.load(restored)
        if (
            self.epoch >= self.units
        ):  # restored from the final checkpoint: report the final state again
            report(self.metrics(), state=self.state)
            return
        while self.epoch < self.units and self.stack.members:
            self.train_unit()
            due = self.epoch % every == 0 or self.epoch == self.units
            if self.loss_over == "unit" or due:
                self.train_loss = self.loss_sum / self.weight_sum
                self.loss_sum.zero_()
                self.weight_sum = 0
            if due:
                report(self.metrics(), state=self.state)
                self.drop(report.stopped())

    def train_unit(self) -> None:
        for step in self.task.steps(self.epoch):
            p, n = self.stack.named(), len(step.chunks)
            losses = (
                self.task.loss(p, c) if n == 1 else self.task.loss(p, c) / n for c in step.chunks
            )
            self.loss_sum += self.stack.step(losses) * step.weight
            self.weight_sum += step.weight
        self.epoch += 1

    @torch.no_grad()
    def metrics(self) -> Report:
        """The report for the units completed: one row per (member, seed); per-position curves on the last."""
        self.stack.quarantine()
        evaluated = self.task.evaluate(self.stack.named(detach=True))
        per_row = {name: v.mean(-1) if v.dim() > 1 else v for name, v in evaluated.items()}
        last = self.curves and self.epoch >= self.units
        curves = (
            {curve: evaluated[metric] for curve, metric in self.curves.items()} if last else None
        )
        return self.stack.report(self.epoch, {"train_loss": self.train_loss, **per_row}, curves)

    def drop(self, members: Iterable[int]) -> None:
        """Stop training ``members``: their rows leave the stack and every per-row tensor."""
        if (rows := self.stack.drop(members)) is not None:
            self.task.keep_rows(rows)
            self.train_loss, self.loss_sum = self.train_loss[rows], self.loss_sum[rows]

    def state(self) -> dict[str, Any]:
        """Everything needed to continue exactly (taken at a report, when no training loss is pending)."""
        return {
            **self.stack.state(),
            "epoch": self.epoch,
            "train_loss": self.train_loss.cpu().clone(),
        }

    def load(self, state: dict[str, Any]) -> None:
        self.drop(set(self.stack.members) - set(state.get("members", self.stack.members)))
        self.stack.load(state)
        self.train_loss = state["train_loss"].to(self.stack.device).clone()
        self.epoch = int(state["epoch"])
