"""The answer side of a sweep: what is read, fitted, drawn and written once trials have results.

- ``curves``: the fits on DataFrames (per-seed points, n* and scaling laws with bootstrap CIs),
  over the batched numpy ``kernels``; no plotting, no files.
- ``figures`` (matplotlib PNGs) and ``tables`` (the one cell-value rule and markdown tables).
- ``positions``: per-position curves (a metric against the context position k).
- ``write``: a sweep's ``curves/`` directory (Parquet tables, PNGs, ``summary.md``).
- ``report``, ``status``, ``progress``: ``scalesweep report``, ``scalesweep status`` and the live
  display of a running sweep.

Nothing is imported here, so ``scalesweep status`` loads neither pandas nor matplotlib.
"""
