"""Sample generation for template tasks (tasks.py has the sampling rules and the vocabulary layout)."""

from __future__ import annotations

import torch

from .tasks import Task, Vocab, is_wildcard


def injective_draws(rows: int, k: int, lo: int, hi: int, gen: torch.Generator) -> torch.Tensor:
    """(rows, k) symbols from [lo, hi), distinct within a row, uniform over ordered k-subsets.

    The j-th symbol is uniform over the hi-lo-j symbols not yet taken: a rank r among them is
    mapped to its symbol by stepping over the taken ones in increasing order.
    """
    out = torch.empty(rows, k, dtype=torch.long)
    for j in range(k):
        r = torch.randint(0, hi - lo - j, (rows,), generator=gen)
        if j:
            taken, _ = out[:, :j].sort(dim=1)
            for i in range(j):
                r = r + (r >= taken[:, i]).long()
        out[:, j] = r
    return out + lo


def generate(
    task: Task, vocab: Vocab, n: int, symbols: tuple[int, int], gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples with symbols from ``symbols``: (n, length) long tokens and (n,) labels.

    Labels are float for regression tasks and vocabulary indices (long) for symbolic ones.
    Samples come out grouped by template; the trainer shuffles mini-batches.
    """
    lo, hi = symbols
    probs = torch.tensor(task.probs, dtype=torch.float64)
    counts = (
        torch.bincount(
            torch.multinomial(probs, n, replacement=True, generator=gen),
            minlength=len(task.templates),
        ).tolist()
        if n
        else [0] * len(task.templates)
    )
    xs, ys = [], []
    for t, c in zip(task.templates, counts):
        wild = t.wildcards()
        subs = injective_draws(c, len(wild), lo, hi, gen)
        cols = [
            subs[:, wild.index(tok)] if is_wildcard(tok) else torch.full((c,), vocab.index(tok))
            for tok in t.tokens
        ]
        xs.append(torch.stack(cols, dim=1) if cols else torch.empty(c, 0, dtype=torch.long))
        if task.label_kind == "regression":
            ys.append(torch.full((c,), float(t.label)))
        elif is_wildcard(t.label):
            ys.append(subs[:, wild.index(t.label)])
        else:
            ys.append(torch.full((c,), vocab.index(t.label)))
    return torch.cat(xs), torch.cat(ys)
