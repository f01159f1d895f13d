"""Process-wide tuning for a training worker: call :func:`configure_process` once, at the worker's start.

Entry points call it: ``python -m trainables`` (trainables/__main__.py) and the Ray worker that runs a
trial. It changes no result, only how the process uses memory; it imports no torch.
"""

from __future__ import annotations

import ctypes
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainables.api import Trainable

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters
_configured = False


def configure_process(trim_threshold: int = 256 << 20) -> bool:
    """Make glibc's malloc serve every block from its heap (no ``mmap`` of its own for large blocks) and give
    free memory back to the OS only beyond ``trim_threshold`` bytes; True if it took. Idempotent.

    Why: a training step or an evaluation allocates and frees the same large temporaries every time (logits
    and their gradients are S·B·V floats). By default glibc maps each block over its mmap threshold (128 KiB,
    raised dynamically up to 32 MiB) on its own and unmaps it when freed, so every step page-faults those
    blocks in again, a cost that grows with the stack and would make stacking rows pay per row.
    The cost: freed memory stays with the process, given back only from the top of the heap and beyond
    ``trim_threshold``, so its resident size stays near its peak (a thread's arena still maps blocks beyond
    its 64 MiB heaps). Linux with glibc only; elsewhere a no-op that returns False.
    """
    global _configured
    if not _configured and sys.platform.startswith("linux"):
        try:
            mallopt = ctypes.CDLL(None).mallopt
        except (OSError, AttributeError):  # not glibc
            return False
        _configured = bool(mallopt(_M_MMAP_MAX, 0)) and bool(
            mallopt(_M_TRIM_THRESHOLD, trim_threshold)
        )
    return _configured


def prepare_worker(trainable: Trainable, threads: int) -> None:
    """A process about to run ``trainable``'s trials: its train function imported (with torch, if it uses
    torch), the stacked core's malloc tuning (a researcher's process is left alone) and ``threads`` torch
    threads: the CPUs a trial holds, so that trials side by side do not oversubscribe the cores."""
    trainable.function()
    if trainable.stacks_seeds:
        configure_process()
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
