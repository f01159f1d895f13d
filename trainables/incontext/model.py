"""The GPT-2 model of TART's reasoning module and Garg et al. (HF GPT2Model + read-in/read-out), stacked.

Sequence: x₁, ỹ₁, x₂, ỹ₂, ... with ỹ = [y, 0, ..., 0] padded to d dims; Linear read-in d → width;
learned positions; pre-LayerNorm blocks of causal attention (with biases) + GELU (tanh) MLP of
4 × width; final LayerNorm; Linear read-out width → 1 at the x positions, so the prediction for
y_i sees x₁..x_i and y₁..y_{i-1}. Dropout 0. Initialisation as GPT-2's: weights and positions
N(0, 0.02), the two residual projections N(0, 0.02/√(2·depth)), biases 0; read-in and read-out as
nn.Linear's defaults. Every tensor carries the member dimension S first: activations (S, B, L, D).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..stacked.layers import stacked_layer_norm, stacked_linear
from ..stacked.layout import Layout
from .params import gpt2_params


def interleave(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x (..., K, d), y (..., K) → z (..., 2K, d): x₁, [y₁, 0, ..., 0], x₂, ..."""
    y_wide = torch.cat([y.unsqueeze(-1), torch.zeros_like(x[..., 1:])], dim=-1)
    return torch.stack([x, y_wide], dim=-2).flatten(-3, -2)


class GPT2:
    """Stacked GPT-2 over interleaved (x, y) sequences; ``forward(p, x, y)`` → (S, B, K) predictions."""

    def __init__(self, *, d: int, k: int, embed_dim: int, depth: int, heads: int) -> None:
        self.d, self.D, self.H, self.depth = d, embed_dim, heads, depth
        self.layout = Layout(gpt2_params(d=d, k=k, embed_dim=embed_dim, depth=depth))

    def attention(self, p: dict[str, torch.Tensor], i: int, a: torch.Tensor) -> torch.Tensor:
        """Causal self-attention of the normed input a (S, B, L, D)."""
        S, B, L, D = a.shape
        H = self.H
        qkv = stacked_linear(a, p[f"{i}.attn_w"], p[f"{i}.attn_b"]).view(S * B, L, 3, H, D // H)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (S·B, H, L, D/H)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return stacked_linear(
            o.transpose(1, 2).reshape(S, B, L, D), p[f"{i}.proj_w"], p[f"{i}.proj_b"]
        )

    def forward(self, p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x (S, B, K, d), y (S, B, K) → (S, B, K): a logit (or value) per x position."""
        z = interleave(x, y)  # (S, B, 2K, d)
        h = stacked_linear(z, p["read_in_w"], p["read_in_b"]) + p["pos"][:, None, : z.shape[2]]
        for i in range(self.depth):
            h = h + self.attention(p, i, stacked_layer_norm(h, p[f"{i}.ln1_w"], p[f"{i}.ln1_b"]))
            f = stacked_layer_norm(h, p[f"{i}.ln2_w"], p[f"{i}.ln2_b"])
            f = F.gelu(stacked_linear(f, p[f"{i}.fc_w"], p[f"{i}.fc_b"]), approximate="tanh")
            h = h + stacked_linear(f, p[f"{i}.out_w"], p[f"{i}.out_b"])
        h = stacked_layer_norm(h[:, :, ::2], p["lnf_w"], p["lnf_b"])  # x positions only
        return stacked_linear(h, p["read_out_w"], p["read_out_b"]).squeeze(-1)
