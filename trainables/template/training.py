"""The stacked training loop: one row per (pack member, seed) (members.py), one model, one optimizer,
one report per evaluation.

The row of seed s owns a ``torch.Generator`` seeded ``seed + s`` that draws, in order, its data (train
then test), its initial parameters, and its mini-batch shuffles; so a stack of seeds [0, 1, 2]
trains each member exactly as three separate S = 1 runs would (up to float summation order).

Mini-batches: a fresh permutation per member per epoch, the last partial batch kept; when
n_train ≤ batch_size every step is one full batch (no shuffle drawn).

Metrics per member: ``train_loss`` = mean mini-batch loss over the last epoch (free to compute;
with full batches it is the loss before that epoch's step), ``test_loss`` (MSE or cross-entropy
on the unseen-symbol test set), ``test_error`` (symbolic: 1 − accuracy; regression: the fraction
of samples whose prediction has the wrong sign, a prediction of exactly 0 counting as wrong) and,
for symbolic tasks, ``test_acc``. Reports hold the mean over non-diverged members.

A member whose training loss becomes NaN/inf is *diverged*: its gradient is ignored from then on,
its parameters and optimizer moments are zeroed at the next evaluation, and its metrics are NaN.

Device: CUDA when visible (Ray hides GPUs from trials that hold none), else CPU; the environment
variable ``SCALESWEEP_DEVICE`` overrides. Data, initial parameters and shuffles are always drawn
on the CPU, so a seed means the same data and initialisation on every device; checkpoints hold
CPU tensors.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ..api import MEMBERS, Reporter
from ..members import Stack, default_device, member_gens
from ..packs import member_configs
from .config import resolve, task_of
from .models import build_model
from .sampling import generate
from .tasks import Vocab

EVAL_CHUNK = 2048


class Trainer:
    """Holds the whole stacked state of one trial; ``run(report)`` trains and reports."""

    def __init__(self, config: dict[str, Any], device: torch.device | str | None = None) -> None:
        cfg = self.cfg = resolve(config)
        dev = self.device = torch.device(device) if device is not None else default_device()
        self.task = task_of(cfg)
        self.symbolic = self.task.label_kind == "symbolic"
        self.vocab = Vocab.for_task(self.task, cfg["n_train"], cfg["val_alphabet"], cfg["test_alphabet"])
        configs = member_configs(cfg)
        gens = member_gens(configs, cfg["seeds"])
        data = [self._member_data(g) for g in gens]  # drawn before the parameters, as the order above says
        self.train_x, self.train_y, self.test_x, self.test_y = (torch.stack(d).to(dev) for d in zip(*data))
        self.model = build_model(cfg, self.vocab.size, self.task.length, self.symbolic)
        self.stack = Stack(self.model.layout, configs, gens, cfg["seeds"], dev, decoupled=cfg["optimizer"] == "adamw",
                           packed=MEMBERS in cfg)
        self.epoch = 0  # epochs completed
        self.train_loss = torch.full((self.stack.rows,), math.nan, device=dev)  # of the last epoch

    def _member_data(self, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
        tx, ty = generate(self.task, self.vocab, self.cfg["n_train"], self.vocab.train_range, gen)
        ex, ey = generate(self.task, self.vocab, self.cfg["n_test"], self.vocab.test_range, gen)
        return tx, ty, ex, ey

    def drop(self, members: set[int]) -> None:
        """Stop training ``members``: their rows leave the stack and every per-row tensor."""
        if (rows := self.stack.drop(members)) is not None:
            self.train_x, self.train_y, self.test_x, self.test_y, self.train_loss = (
                t[rows] for t in (self.train_x, self.train_y, self.test_x, self.test_y, self.train_loss))

    # -- losses -------------------------------------------------------------------------------
    def _losses(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-row, per-sample loss (rows, B)."""
        if self.symbolic:
            return F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(y.shape)
        return (out - y) ** 2

    def _errors(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.symbolic:
            return (out.argmax(dim=-1) != y).float()
        return (out * y <= 0).float()

    # -- training -----------------------------------------------------------------------------
    def train_epoch(self) -> torch.Tensor:
        """One pass over the training set; returns each row's mean mini-batch loss (rows,)."""
        n, bs = self.cfg["n_train"], self.cfg["batch_size"]
        order = None
        if n > bs:
            order = torch.stack([torch.randperm(n, generator=g) for g in self.stack.gens]).to(self.device)
        total = torch.zeros(self.stack.rows, device=self.device)
        for start in range(0, n, bs):
            if order is None:
                x, y = self.train_x, self.train_y
            else:
                idx = order[:, start:start + bs]
                x = torch.gather(self.train_x, 1, idx.unsqueeze(-1).expand(-1, -1, self.train_x.shape[-1]))
                y = torch.gather(self.train_y, 1, idx)
            out = self.model.forward(self.stack.named(), x)
            loss = self._losses(out, y).mean(dim=1)  # (rows,)
            self.stack.step([loss])
            total += loss.detach() * x.shape[1]
        self.epoch += 1
        self.train_loss = total / n
        return self.train_loss

    @torch.no_grad()
    def evaluate(self) -> dict[str, torch.Tensor]:
        """Per-row test metrics (rows,), batched over rows and chunks of the test set."""
        self.stack.quarantine()
        p = self.stack.named(detach=True)
        loss_sum = torch.zeros(self.stack.rows, dtype=torch.float64, device=self.device)
        err_sum = torch.zeros(self.stack.rows, dtype=torch.float64, device=self.device)
        n = self.test_x.shape[1]
        for start in range(0, n, EVAL_CHUNK):
            x, y = self.test_x[:, start:start + EVAL_CHUNK], self.test_y[:, start:start + EVAL_CHUNK]
            out = self.model.forward(p, x)
            loss_sum += self._losses(out, y).sum(dim=1)
            err_sum += self._errors(out, y).sum(dim=1)
        out = {"test_loss": loss_sum / n, "test_error": err_sum / n}
        if self.symbolic:
            out["test_acc"] = 1 - out["test_error"]
        return out

    # -- checkpoints --------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything needed to continue exactly: parameters, optimizer, RNG streams, members, epoch."""
        return {**self.stack.state(), "epoch": self.epoch, "train_loss": self.train_loss.cpu().clone()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.drop(set(self.stack.members) - set(state.get("members", self.stack.members)))
        self.stack.load(state)
        self.train_loss = state["train_loss"].to(self.device).clone()
        self.epoch = int(state["epoch"])

    # -- the loop -----------------------------------------------------------------------------
    def run(self, report: Reporter) -> None:
        restored = report.restored_state()
        if restored is not None:
            self.load_state(restored)
        epochs, every = self.cfg["epochs"], self.cfg["eval_every"]
        if self.epoch >= epochs:  # restored from the final checkpoint: report the final state again
            report(self.metrics(self.train_loss), state=self.state)
            return
        while self.epoch < epochs and self.stack.members:
            train_loss = self.train_epoch()
            if self.epoch % every == 0 or self.epoch == epochs:
                report(self.metrics(train_loss), state=self.state)
                self.drop(report.stopped())

    def metrics(self, train_loss: torch.Tensor) -> dict[str, Any]:
        """The report for the current epoch: means over live rows, per-row lists, flags."""
        return self.stack.report(self.epoch, {"train_loss": train_loss, **self.evaluate()})


def train(config: dict[str, Any], report: Reporter) -> None:
    """The ``template`` trainable: build everything from ``config``, train, report per evaluation.

    ``report`` is a :class:`Reporter`; a plain ``fn(metrics)`` callable is accepted too.
    """
    if not hasattr(report, "restored_state"):
        report = Reporter(report)
    Trainer(config).run(report)
