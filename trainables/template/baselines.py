"""MLP baselines of the paper, stacked over S members (the recurrent ones are in ``recurrent``).

``mlp``: the paper's TemplateMatchingMLP: concatenated one-hot tokens → ``mlp_depth`` Linear
layers (ReLU between them) of hidden width ``embed_dim``; output 1 (regression) or one logit per
vocabulary entry (symbolic, untied). The first layer on a one-hot input is a sum of rows of its
weight, computed as an embedding lookup instead of a (B, L·V) matmul: identical, much cheaper.

``mlp_xxt``: TemplateMatchingMLPWithXXT: the same MLP whose input also holds the L×L token
equality bits [x_i = x_j] (diagonal included, scale 1), i.e. the entries of X Xᵀ for one-hot X.
These bits do not depend on which symbols were drawn, so this MLP can generalise to unseen ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..stacked.layers import stacked_linear
from ..stacked.layout import Layout
from . import params


class MLP:
    """Stacked MLP on concatenated one-hot tokens (``mlp_depth`` ≥ 2 linear layers)."""

    xxt = False

    def __init__(
        self,
        *,
        vocab_size: int,
        length: int,
        symbolic: bool,
        embed_dim: int,
        mlp_depth: int,
        **_: object,
    ) -> None:
        self.V, self.L, self.W, self.depth = vocab_size, length, embed_dim, mlp_depth
        self.symbolic = symbolic
        self.layout = Layout(
            params.mlp(
                self.xxt,
                vocab_size=vocab_size,
                length=length,
                symbolic=symbolic,
                embed_dim=embed_dim,
                mlp_depth=mlp_depth,
            )
        )

    def first_layer(self, p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """one_hot(x).flatten() @ w0 + b0 for x (S, B, L): a sum of L looked-up rows of w0."""
        S, B, L = x.shape
        offsets = (
            torch.arange(S, device=x.device).view(S, 1, 1) * (L * self.V)
            + torch.arange(L, device=x.device).view(1, 1, L) * self.V
        )
        rows = F.embedding(x + offsets, p["w0"].reshape(S * L * self.V, self.W))  # (S, B, L, W)
        h = rows.sum(dim=2) + p["b0"].unsqueeze(1)
        if self.xxt:
            equal = (x.unsqueeze(-1) == x.unsqueeze(-2)).to(h.dtype).view(S, B, L * L)
            h = h + torch.bmm(equal, p["w0_xxt"])
        return h

    def forward(self, p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.first_layer(p, x))
        for i in range(1, self.depth - 1):
            h = F.relu(stacked_linear(h, p[f"w{i}"], p[f"b{i}"]))
        out = stacked_linear(h, p["out_w"], p["out_b"])
        return out if self.symbolic else out.squeeze(-1)


class MLPWithXXT(MLP):
    """``mlp`` whose input also holds the L×L token-equality bits."""

    xxt = True
