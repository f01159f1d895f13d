"""The incontext task plugged into the stacked loop (trainables/stacked/loop.py): GPT-2, fresh sequences every
step, a fixed evaluation set.

One row per (pack member, seed) (trainables/stacked/stack.py). The row of seed s owns a ``torch.Generator``
seeded ``seed + s`` that draws, in order, its initial parameters and then each step's batch, so a stack of
seeds [0, 1, 2] trains each member exactly as three separate S = 1 runs would (up to float summation
order). The evaluation set has its own seed, shared by all members. Sequences are drawn on the CPU, so a
seed means the same data on every device.

A unit of the loop is one optimizer step (``grad_accum`` micro-batches, gradients accumulated), taken at
the learning rate ``lr_factor`` gives for that step (``warmup_steps``, ``lr_schedule``). Reports
every ``eval_every`` steps and at the last, with ``epoch`` = steps completed: ``train_loss`` = the mean
training loss over the steps since the previous report, the evaluation's means over positions
(``test_acc``, ``test_loss``, ``oracle_acc``, ``baseline_acc``, or ``test_mse``, ``baseline_mse``), one
row per (member, seed). The last report's rows add the per-position curves (``config.curves``, e.g.
``acc_by_k``: k floats per row).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

from ..api import Reporter
from ..packs import member_configs
from ..stacked.loop import Step, run_stacked
from ..stacked.stack import Stack, default_device, member_gens
from .config import curves, resolve
from .curriculum import Curriculum
from .evaluation import EvalSet
from .model import GPT2
from .tasks import TASKS

EVAL_CHUNK = 256  # evaluation sequences per forward pass


def lr_factor(step: int, steps: int, warmup: int, schedule: str) -> float:
    """The multiple of ``lr`` used at (0-based) ``step``: (step + 1) / warmup during the linear warm-up,
    then 1 (``constant``) or a half cosine from 1 down to 0 after the last step (``cosine``).

    A function of the step alone (and, for ``cosine``, of ``steps``), so a restored trial continues
    with the same rates, and with ``constant`` a shorter trial is the prefix of a longer one.
    """
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))
    return 1.0


class Trainer:
    """One trial's model, stack, curriculum and evaluation set; ``run(report)`` trains it in the stacked loop."""

    def __init__(self, config: dict[str, Any], device: torch.device | str | None = None) -> None:
        cfg = self.cfg = resolve(config)
        dev = self.device = torch.device(device) if device is not None else default_device()
        self.task = TASKS[cfg["task"]]
        self.model = GPT2(
            d=cfg["d"],
            k=cfg["k"],
            embed_dim=cfg["embed_dim"],
            depth=cfg["depth"],
            heads=cfg["heads"],
        )
        configs = member_configs(cfg)
        self.stack = Stack(
            self.model.layout,
            configs,
            member_gens(configs, cfg["seeds"]),
            cfg["seeds"],
            dev,
            decoupled=False,
        )
        self.curriculum = Curriculum(cfg["curriculum"], cfg["d"], cfg["k"], cfg["curriculum_every"])
        self.evalset = EvalSet(
            self.task,
            d=cfg["d"],
            k=cfg["k"],
            alpha=cfg["alpha"],
            n=cfg["n_eval"],
            seed=cfg["eval_seed"],
            l2=cfg["baseline_l2"],
            device=dev,
        )

    def run(self, report: Reporter) -> None:
        cfg = self.cfg
        run_stacked(
            self,
            report,
            units=cfg["steps"],
            every=cfg["eval_every"],
            train_loss_over="report",
            curves=curves(cfg),
        )

    # -- what the loop asks for -------------------------------------------------------------------
    def steps(self, unit: int) -> Iterator[Step]:
        """One step on a fresh batch per row at the curriculum's (d, k), in ``grad_accum`` micro-batches,
        at the schedule's learning rate (each row's own ``lr`` times ``lr_factor``)."""
        d_active, k = self.curriculum.at(unit)
        cfg = self.cfg
        factor = lr_factor(unit, cfg["steps"], cfg["warmup_steps"], cfg["lr_schedule"])
        self.stack.opt.lr = [lr * factor for lr in self.stack.lr]
        batches = [
            self.task.sample(cfg["batch_size"], k, cfg["d"], d_active, cfg["alpha"], g)
            for g in self.stack.gens
        ]
        x = torch.stack([b.x for b in batches]).to(self.device)  # (rows, B, k, d)
        y = torch.stack([b.y for b in batches]).to(self.device)  # (rows, B, k)
        n = cfg["grad_accum"]
        yield Step(list(zip(x.chunk(n, 1), y.chunk(n, 1))))

    def loss(
        self, p: dict[str, torch.Tensor], chunk: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """Per-row loss (rows,) over all positions of all sequences: BCE on 0/1 labels, or MSE."""
        x, y = chunk
        out = self.model.forward(p, x, y)
        if self.task.classification:
            return F.binary_cross_entropy_with_logits(out, y, reduction="none").mean(dim=(1, 2))
        return ((out - y) ** 2).mean(dim=(1, 2))

    def evaluate(self, p: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-row, per-position scores (rows, K) of the model and, repeated per row, the references."""
        rows = self.stack.rows
        x, y = self.evalset.x, self.evalset.y
        out = torch.cat(
            [
                self.model.forward(
                    p,
                    x[i : i + EVAL_CHUNK].expand(rows, -1, -1, -1),
                    y[i : i + EVAL_CHUNK].expand(rows, -1, -1),
                )
                for i in range(0, x.shape[0], EVAL_CHUNK)
            ],
            dim=1,
        )  # (rows, N, K)
        scores = self.evalset.score(out)
        refs = {
            name: v.to(self.device).expand(rows, -1) for name, v in self.evalset.reference.items()
        }
        return {**scores, **refs}

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Nothing per row but the stack: sequences are drawn fresh every step."""


def train(config: dict[str, Any], report: Reporter) -> None:
    """The ``incontext`` trainable: build everything from ``config``, train, report per evaluation.

    ``report`` is a :class:`Reporter` (``Reporter(fn)`` hands each :class:`Report` to ``fn``).
    """
    Trainer(config).run(report)
