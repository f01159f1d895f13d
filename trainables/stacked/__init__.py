"""The stacked training core shared by the trainables: many members (rows) trained as one model.

A trial trains one row per (pack member, seed) as a single model whose every parameter carries a
leading row dimension; members never mix, so one backward of the summed row losses gives each row
its own gradient. A trainable plugs a model, a sampler and an evaluation into :func:`loop.run_stacked`,
the one training loop.

Modules: ``layout`` (parameters: names, shapes, initialisers), ``layers`` (stacked linear, layer norm and
tied embedding), ``adam`` (Adam / AdamW with a learning rate and weight decay per row), ``kernels`` (the
private or version-specific torch kernels, each with a public fallback), ``stack`` (the trained state of
one trial: rows, divergence, dropping members, reports, checkpoints), ``loop`` (the training loop) and
``process`` (process-wide tuning a worker applies once at its start).

This package imports nothing at import time, so ``trainables.stacked.process`` stays free of torch.
"""
