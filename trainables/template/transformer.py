"""The paper's transformer (experiments/models.py of eboix/relational-reasoning), stacked over S members.

Pre-LayerNorm blocks of attention + GELU MLP with residuals; token embedding, learned positional
embedding and CLS token all N(0, 1) (``embed_std`` scales them); no biases in q/k/v/out, biases in
the MLP; dropout 0.
Every tensor carries the member dimension S first: tokens (S, B, L), activations (S, B, L, D).

Readout (always at the last position): with ``readout="cls"`` a learned CLS token is appended
at the end of the input; with ``"final"`` the last input token is read. Regression tasks read a
scalar through LayerNorm (no affine) → Linear; symbolic tasks read logits over the whole
vocabulary through LayerNorm (no affine) → h·Eᵀ with E the input embedding (tied; the tied
embedding is in trainables/stacked/layers.py).

Identities (see docs/science.md, Models), X = the LayerNorm'd block input at full width:
- KQ: per (layer, head) scalar a_h (init 0) adds ``m_kq · a_h · X Xᵀ`` to the attention logits
  after ``q kᵀ / √dim_head``;
- VO: per (layer, head) scalar b_h (init 0) adds ``m_vo · Σ_h b_h A_h X`` to the attention output
  after the output projection, before the residual.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..stacked.layers import TiedGrad, TiedLogits, TiedLookup, stacked_layer_norm, stacked_linear
from ..stacked.layout import Layout
from . import params


class Transformer:
    """Stacked template-matching transformer; ``forward(p, x)`` with p = layout.views(flat)."""

    def __init__(self, **config: Any) -> None:
        """``config``: the keywords of ``params.transformer`` (the parameter shapes) and the identities'
        multipliers ``kq_identity_mult``, ``vo_identity_mult``."""
        self.V, self.D, self.depth = config["vocab_size"], config["embed_dim"], config["depth"]
        self.H, self.K = config["heads"], config["dim_head"]
        self.symbolic, self.cls = config["symbolic"], config["readout"] == "cls"
        self.kq, self.vo = config["kq_identity"], config["vo_identity"]
        self.kq_mult, self.vo_mult = config["kq_identity_mult"], config["vo_identity_mult"]
        self.layout = Layout(params.transformer(**config))

    def embed(self, p: dict[str, torch.Tensor], x: torch.Tensor, tie: TiedGrad) -> torch.Tensor:
        S, B, L = x.shape
        offsets = torch.arange(S, device=x.device).view(S, 1, 1) * self.V
        h = TiedLookup.apply(p["emb"], (x + offsets).flatten(), tie).view(S, B, L, self.D)
        if self.cls:
            h = torch.cat([h, p["cls"].view(S, 1, 1, self.D).expand(S, B, 1, self.D)], dim=2)
        return h + p["pos"].unsqueeze(1)

    def attention(
        self, p: dict[str, torch.Tensor], i: int, a: torch.Tensor, last_only: bool
    ) -> torch.Tensor:
        """Attention output for normed input a (S, B, L, D); only the last query if last_only."""
        S, B, L, _ = a.shape
        H, K = self.H, self.K
        qk = stacked_linear(a, p[f"{i}.wqk"]).view(S, B, L, 2, H, K)
        q, k = qk[:, :, :, 0].transpose(2, 3), qk[:, :, :, 1].transpose(2, 3)  # (S, B, H, L, K)
        a_q = a
        if last_only:
            q, a_q = q[:, :, :, -1:], a[:, :, -1:]
        Lq = q.shape[3]
        v = stacked_linear(a, p[f"{i}.wv"]).view(S, B, L, H, K).transpose(2, 3)  # (S, B, H, L, K)
        if Lq == 1:
            # One query per sample: products and sums instead of S·B·H matmuls of one row each,
            # whose fixed cost per matmul dominates at this size.
            dots = (q * k).sum(-1).unsqueeze(-2) * (K**-0.5)  # (S, B, H, 1, L)
            if self.kq:
                xxt = (a_q * a).sum(-1).view(S, B, 1, 1, L)
        else:
            dots = torch.matmul(q, k.transpose(-1, -2)) * (K**-0.5)  # (S, B, H, Lq, L)
            if self.kq:
                xxt = torch.matmul(a_q, a.transpose(-1, -2)).unsqueeze(2)  # (S, B, 1, Lq, L)
        if self.kq:
            dots = dots + (self.kq_mult * p[f"{i}.kq"]).view(S, 1, H, 1, 1) * xxt
        attn = dots.softmax(dim=-1)
        if Lq == 1:
            o = (attn.transpose(-1, -2) * v).sum(-2).reshape(S, B, 1, H * K)
        else:
            o = torch.matmul(attn, v).transpose(2, 3).reshape(S, B, Lq, H * K)
        o = stacked_linear(o, p[f"{i}.wo"])  # (S, B, Lq, D)
        if self.vo:
            mix = (attn * (self.vo_mult * p[f"{i}.vo"]).view(S, 1, H, 1, 1)).sum(
                dim=2
            )  # (S, B, Lq, L)
            o = o + (
                (mix.transpose(-1, -2) * a).sum(-2, keepdim=True)
                if Lq == 1
                else torch.matmul(mix, a)
            )
        return o

    def forward(self, p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """(S, B, L) tokens → (S, B) predictions (regression) or (S, B, V) logits (symbolic)."""
        tie = TiedGrad()
        h = self.embed(p, x, tie)
        for i in range(self.depth):
            # Only the last position is read out, so the last block computes just that query:
            # identical outputs, less work.
            last = i == self.depth - 1
            a = stacked_layer_norm(h, p[f"{i}.ln1_w"], p[f"{i}.ln1_b"])
            h = (h[:, :, -1:] if last else h) + self.attention(p, i, a, last_only=last)
            f = stacked_layer_norm(h, p[f"{i}.ln2_w"], p[f"{i}.ln2_b"])
            f = F.gelu(stacked_linear(f, p[f"{i}.w1"], p[f"{i}.b1"]))
            h = h + stacked_linear(f, p[f"{i}.w2"], p[f"{i}.b2"])
        z = stacked_layer_norm(h[:, :, -1])  # (S, B, D)
        if self.symbolic:
            return TiedLogits.apply(z, p["emb"], tie)  # (S, B, V)
        return stacked_linear(z, p["head_w"], p["head_b"]).squeeze(-1)
