"""Baseline models of the paper, stacked over S members: MLPs on one-hot tokens (and recurrent nets).

``mlp``: the paper's TemplateMatchingMLP: concatenated one-hot tokens → ``mlp_depth`` Linear
layers (ReLU between them) of hidden width ``embed_dim``; output 1 (regression) or one logit per
vocabulary entry (symbolic, untied). The first layer on a one-hot input is a sum of rows of its
weight, computed as an embedding lookup instead of a (B, L·V) matmul: identical, much cheaper.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .stacked import Layout, ParamSpec, uniform_fan_in
from .transformer import stacked_linear


class MLP:
    """Stacked MLP on concatenated one-hot tokens (``mlp_depth`` ≥ 2 linear layers)."""

    def __init__(self, *, vocab_size: int, length: int, symbolic: bool, embed_dim: int, mlp_depth: int,
                 **_: object) -> None:
        self.V, self.L, self.W, self.depth = vocab_size, length, embed_dim, mlp_depth
        self.symbolic = symbolic
        n_in = length * vocab_size
        n_out = vocab_size if symbolic else 1
        specs = [ParamSpec("w0", (n_in, embed_dim), uniform_fan_in(n_in)),
                 ParamSpec("b0", (embed_dim,), uniform_fan_in(n_in))]
        for i in range(1, mlp_depth - 1):
            specs += [ParamSpec(f"w{i}", (embed_dim, embed_dim), uniform_fan_in(embed_dim)),
                      ParamSpec(f"b{i}", (embed_dim,), uniform_fan_in(embed_dim))]
        specs += [ParamSpec("out_w", (embed_dim, n_out), uniform_fan_in(embed_dim)),
                  ParamSpec("out_b", (n_out,), uniform_fan_in(embed_dim))]
        self.layout = Layout(specs)

    def first_layer(self, p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """one_hot(x).flatten() @ w0 + b0 for x (S, B, L): a sum of L looked-up rows of w0."""
        S, B, L = x.shape
        offsets = (torch.arange(S, device=x.device).view(S, 1, 1) * (L * self.V)
                   + torch.arange(L, device=x.device).view(1, 1, L) * self.V)
        rows = F.embedding(x + offsets, p["w0"].reshape(S * L * self.V, self.W))  # (S, B, L, W)
        return rows.sum(dim=2) + p["b0"].unsqueeze(1)

    def forward(self, p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.first_layer(p, x))
        for i in range(1, self.depth - 1):
            h = F.relu(stacked_linear(h, p[f"w{i}"], p[f"b{i}"]))
        out = stacked_linear(h, p["out_w"], p["out_b"])
        return out if self.symbolic else out.squeeze(-1)
