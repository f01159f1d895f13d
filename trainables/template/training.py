"""The template task plugged into the stacked loop (trainables/stacked/loop.py): data, sampler, loss, evaluation.

One row per (pack member, seed) (trainables/stacked/stack.py). The row of seed s owns a ``torch.Generator``
seeded ``seed + s`` that draws, in order, its data (train then test), its initial parameters, and its
mini-batch shuffles; so a stack of seeds [0, 1, 2] trains each member exactly as three separate S = 1 runs
would (up to float summation order).

A unit of the loop is an epoch. Mini-batches: a fresh permutation per row per epoch, the last partial
batch kept; when n_train ≤ batch_size every step is one full batch (no shuffle drawn).

Metrics per row: ``train_loss`` = mean mini-batch loss over the last epoch, weighted by batch size (free to
compute; with full batches it is the loss before that epoch's step), ``test_loss`` (MSE or cross-entropy
on the unseen-symbol test set), ``test_error`` (symbolic: 1 − accuracy; regression: the fraction of
samples whose prediction has the wrong sign, a prediction of exactly 0 counting as wrong) and, for
symbolic tasks, ``test_acc``. Reports hold the mean over non-diverged rows.

Device: CUDA when visible, else CPU; ``SCALESWEEP_DEVICE`` overrides (trainables/stacked/stack.py). Data,
initial parameters and shuffles are always drawn on the CPU, so a seed means the same data and
initialisation on every device.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

from ..api import Reporter
from ..packs import member_configs
from ..stacked.loop import Step, run_stacked
from ..stacked.stack import Stack, default_device, member_gens
from .config import resolve, task_of
from .models import build_model
from .sampling import generate
from .tasks import Vocab

EVAL_CHUNK = 2048  # test samples per forward pass


class Trainer:
    """One trial's data (per row), model and stack; ``run(report)`` trains it in the stacked loop."""

    def __init__(self, config: dict[str, Any], device: torch.device | str | None = None) -> None:
        cfg = self.cfg = resolve(config)
        dev = self.device = torch.device(device) if device is not None else default_device()
        self.task = task_of(cfg)
        self.symbolic = self.task.label_kind == "symbolic"
        self.vocab = Vocab.for_task(
            self.task, cfg["n_train"], cfg["val_alphabet"], cfg["test_alphabet"]
        )
        configs = member_configs(cfg)
        gens = member_gens(configs, cfg["seeds"])
        data = [
            self._row_data(g) for g in gens
        ]  # drawn before the parameters, as the order above says
        self.train_x, self.train_y, self.test_x, self.test_y = (
            torch.stack(d).to(dev) for d in zip(*data)
        )
        self.model = build_model(cfg, self.vocab.size, self.task.length, self.symbolic)
        self.stack = Stack(
            self.model.layout,
            configs,
            gens,
            cfg["seeds"],
            dev,
            decoupled=cfg["optimizer"] == "adamw",
        )

    def _row_data(self, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
        tx, ty = generate(self.task, self.vocab, self.cfg["n_train"], self.vocab.train_range, gen)
        ex, ey = generate(self.task, self.vocab, self.cfg["n_test"], self.vocab.test_range, gen)
        return tx, ty, ex, ey

    def run(self, report: Reporter) -> None:
        run_stacked(
            self,
            report,
            units=self.cfg["epochs"],
            every=self.cfg["eval_every"],
            train_loss_over="unit",
        )

    # -- what the loop asks for -------------------------------------------------------------------
    def steps(self, unit: int) -> Iterator[Step]:
        """One pass over the training set in mini-batches, each one step weighted by its size."""
        n, bs = self.cfg["n_train"], self.cfg["batch_size"]
        order = None
        if n > bs:
            order = torch.stack([torch.randperm(n, generator=g) for g in self.stack.gens]).to(
                self.device
            )
        for start in range(0, n, bs):
            if order is None:
                x, y = self.train_x, self.train_y
            else:
                idx = order[:, start : start + bs]
                x = torch.gather(
                    self.train_x, 1, idx.unsqueeze(-1).expand(-1, -1, self.train_x.shape[-1])
                )
                y = torch.gather(self.train_y, 1, idx)
            yield Step([(x, y)], weight=x.shape[1])

    def loss(
        self, p: dict[str, torch.Tensor], chunk: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        x, y = chunk
        return self._losses(self.model.forward(p, x), y).mean(dim=1)

    def evaluate(self, p: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-row test metrics (rows,), batched over rows and chunks of the test set."""
        loss_sum = torch.zeros(self.stack.rows, dtype=torch.float64, device=self.device)
        err_sum = torch.zeros(self.stack.rows, dtype=torch.float64, device=self.device)
        n = self.test_x.shape[1]
        for start in range(0, n, EVAL_CHUNK):
            x, y = (
                self.test_x[:, start : start + EVAL_CHUNK],
                self.test_y[:, start : start + EVAL_CHUNK],
            )
            out = self.model.forward(p, x)
            loss_sum += self._losses(out, y).sum(dim=1)
            err_sum += self._errors(out, y).sum(dim=1)
        out = {"test_loss": loss_sum / n, "test_error": err_sum / n}
        if self.symbolic:
            out["test_acc"] = 1 - out["test_error"]
        return out

    def keep_rows(self, rows: torch.Tensor) -> None:
        self.train_x, self.train_y, self.test_x, self.test_y = (
            t[rows] for t in (self.train_x, self.train_y, self.test_x, self.test_y)
        )

    # -- losses -----------------------------------------------------------------------------------
    def _losses(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-row, per-sample loss (rows, B)."""
        if self.symbolic:
            return F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(y.shape)
        return (out - y) ** 2

    def _errors(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.symbolic:
            return (out.argmax(dim=-1) != y).float()
        return (out * y <= 0).float()


def train(config: dict[str, Any], report: Reporter) -> None:
    """The ``template`` trainable: build everything from ``config``, train, report per evaluation.

    ``report`` is a :class:`Reporter` (``Reporter(fn)`` hands each :class:`Report` to ``fn``).
    """
    Trainer(config).run(report)
