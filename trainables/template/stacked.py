"""Stacked parameters and a stacked Adam: every parameter carries a leading member dimension S.

Every model here is written with batched weights: each parameter is one leaf tensor of shape
(S, *shape), and the forward pass uses bmm/einsum so all S members train in the same kernels.
Members never mix: a member's loss depends only on its own slice of every parameter, so one
backward of the summed member losses gives every member its own gradient.

Why batched weights rather than ``torch.func.stack_module_state`` + ``vmap`` over an nn.Module:
per train step (copy, depth 2, 2 heads × 64, S = 3, full batch, one CPU thread, both with a
fused Adam) vmap took 1.57× / 0.97× the time at width 32, n = 16 / 256 and 1.43× / 1.27× at
width 128; and batched weights make per-member hyper-parameters plain per-member values.
"""
from __future__ import annotations

import ctypes
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch

Init = Callable[[tuple[int, ...], torch.Generator], torch.Tensor]


def normal(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """N(0, 1), as nn.Embedding and the paper's positional/CLS parameters."""
    return torch.randn(shape, generator=gen)


def zeros(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    return torch.zeros(shape)


def ones(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    return torch.ones(shape)


def uniform_fan_in(fan_in: int) -> Init:
    """U(-1/√fan_in, 1/√fan_in): nn.Linear's default for weights (kaiming_uniform, a=√5) and biases."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0

    def init(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
        return torch.empty(shape).uniform_(-bound, bound, generator=gen)

    return init


@dataclass(frozen=True)
class ParamSpec:
    """One member's parameter: its name, shape and initialiser (called in declaration order)."""

    name: str
    shape: tuple[int, ...]
    init: Init


class Layout:
    """A model's parameters: names, shapes and initialisers, in declaration order."""

    def __init__(self, specs: list[ParamSpec]) -> None:
        self.specs = specs
        self.size = sum(math.prod(s.shape) for s in specs)  # parameters per member

    def init(self, gens: list[torch.Generator]) -> list[torch.Tensor]:
        """One (S, *shape) leaf tensor per parameter; member s draws all of its own from gens[s]."""
        members = [[s.init(s.shape, g).float() for s in self.specs] for g in gens]
        return [torch.stack(per_member).requires_grad_() for per_member in zip(*members)]

    def named(self, params: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return {s.name: p for s, p in zip(self.specs, params)}


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters
_kept = False


def keep_freed_memory(trim_threshold: int = 256 << 20) -> bool:
    """Make glibc's malloc serve every block from its heap (no ``mmap`` of its own for large blocks)
    and give free memory back to the OS only beyond ``trim_threshold`` bytes; True if it took.

    A training step or an evaluation allocates and frees the same large temporaries every time
    (logits and their gradients are S·B·V floats). By default glibc maps each block over 128 KiB
    (raised dynamically, at most to 32 MiB) on its own and unmaps it when freed, so every step
    page-faults it in again: measured 5-8 thousand faults (20-30 MiB) per step of 8 stacked copy-task
    transformers at n = 256, which made the stack slower per member than runs of one, and an
    evaluation of 8 × 1024 test samples (34 MiB of logits) stayed slower stacked at any threshold.
    The cost: freed memory stays with the process, given back only from the top of the heap and beyond
    ``trim_threshold``, so its resident size stays near its peak. (A thread's arena still maps blocks
    beyond its 64 MiB heaps.) Once per process, on Linux with glibc; elsewhere a no-op."""
    global _kept
    if not _kept and sys.platform.startswith("linux"):
        try:
            mallopt = ctypes.CDLL(None).mallopt
        except (OSError, AttributeError):  # not glibc
            return False
        _kept = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))
    return _kept


class Adam:
    """Adam / AdamW over stacked parameters, with a learning rate and weight decay per member.

    Each member's slices are updated by PyTorch's fused Adam(W) kernel (``torch._fused_adam_``,
    the multi-tensor kernel behind ``torch.optim.Adam(fused=True)``): one pass over memory for
    all parameters instead of ~10 element-wise ops each, and numerically torch.optim.Adam's
    update (Adam adds ``weight_decay * p`` to the gradient; AdamW decays ``p`` by
    ``lr * weight_decay``). A member that is not ``alive`` is skipped inside the kernel (its
    ``found_inf`` flag), so a diverged member's NaN gradients never touch its parameters or
    moments, without a host sync. One call per member costs little: the update is memory-bound,
    and one call over all members of a stack of 8 (grouped by lr and weight decay, live members
    only) measured 0.44 / 1.00 ms against 0.49 / 1.05 ms per step at widths 32 / 64.
    """

    def __init__(self, params: list[torch.Tensor], lr: list[float], weight_decay: list[float], decoupled: bool,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.S = params[0].shape[0]
        if not (len(lr) == len(weight_decay) == self.S):
            raise ValueError("need one lr and one weight_decay per member")
        self.params = params
        self.lr, self.wd = [float(x) for x in lr], [float(x) for x in weight_decay]
        self.kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.steps = torch.zeros((), device=params[0].device)
        self.m = [torch.zeros_like(p, requires_grad=False) for p in params]
        self.v = [torch.zeros_like(p, requires_grad=False) for p in params]
        # Per-member views, made once: all updates are in place, so they stay valid.
        self._members = [list(zip(*(t.detach().unbind(0) for t in ts))) for ts in (params, self.m, self.v)]
        if params[0].device.type == "cpu":
            keep_freed_memory()  # every trial builds its optimizer: the earliest hook these modules own

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor], alive: torch.Tensor) -> None:
        self.steps += 1
        skip = (~alive).to(self.params[0].dtype).unbind(0)
        # the kernel reads a tensor's memory as contiguous whatever its strides
        member_grads = list(zip(*((g if g.is_contiguous() else g.contiguous()).unbind(0) for g in grads)))
        steps = [self.steps] * len(self.params)
        for s, (p, m, v) in enumerate(zip(*self._members)):
            self.kernel(p, member_grads[s], m, v, [], steps, lr=self.lr[s], beta1=self.beta1, beta2=self.beta2,
                        weight_decay=self.wd[s], eps=self.eps, amsgrad=False, maximize=False, grad_scale=None,
                        found_inf=skip[s])

    @torch.no_grad()
    def quarantine(self, dead: torch.Tensor) -> None:
        """Zero a diverged member's parameters and moments so no NaN/inf survives in it."""
        if dead.device.type == "cpu" and not bool(dead.any()):
            return  # the usual case, free to check on the CPU (masking every tensor took 2 ms at S = 8)
        for t in (*self.params, *self.m, *self.v):
            t.masked_fill_(dead.view(-1, *(1,) * (t.dim() - 1)), 0.0)

    def state_dict(self) -> dict[str, object]:
        return {"step": self.steps.clone(), "m": [t.clone() for t in self.m], "v": [t.clone() for t in self.v]}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, object]) -> None:
        self.steps.copy_(state["step"])  # type: ignore[arg-type]
        for mine, saved in zip((*self.m, *self.v), (*state["m"], *state["v"])):  # type: ignore[misc]
            mine.copy_(saved)
