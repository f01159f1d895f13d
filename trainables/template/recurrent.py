"""Recurrent baselines of the paper (experiments/models.py), stacked over S members.

Both embed tokens (N(0, 1), width ``embed_dim`` = hidden size), run over the sequence and read
the last hidden state through a Linear layer: 1 output (regression) or one logit per vocabulary
entry (symbolic, untied). Initialisers follow nn.Linear / nn.LSTM defaults.

``rnn``: TemplateMatchingRNN, an Elman network h_t = ReLU(W [e_t; h_{t-1}] + b), h_0 = 0.
``lstm``: TemplateMatchingLSTM, one nn.LSTM layer (gate order i, f, g, o; biases b_ih + b_hh).
The paper's code draws a random initial (h, c) on every forward pass, which makes its outputs
random at test time; ours starts from zeros (deterministic, like the RNN).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..stacked.layers import stacked_linear
from ..stacked.layout import Layout
from . import params


class _Recurrent:
    def __init__(self, vocab_size: int, symbolic: bool, embed_dim: int, layout: Layout) -> None:
        self.V, self.H, self.symbolic = vocab_size, embed_dim, symbolic
        self.layout = layout

    def embed(self, p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        S = x.shape[0]
        offsets = torch.arange(S, device=x.device).view(S, 1, 1) * self.V
        return F.embedding(x + offsets, p["emb"].reshape(S * self.V, self.H))  # (S, B, L, H)

    def readout(self, p: dict[str, torch.Tensor], h: torch.Tensor) -> torch.Tensor:
        out = stacked_linear(h, p["out_w"], p["out_b"])
        return out if self.symbolic else out.squeeze(-1)


class RNN(_Recurrent):
    """Stacked Elman RNN with ReLU."""

    def __init__(self, *, vocab_size: int, symbolic: bool, embed_dim: int, **_: object) -> None:
        layout = Layout(params.rnn(vocab_size=vocab_size, symbolic=symbolic, embed_dim=embed_dim))
        super().__init__(vocab_size, symbolic, embed_dim, layout)

    def forward(self, p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        pre = stacked_linear(
            self.embed(p, x), p["w_in"], p["b"]
        )  # (S, B, L, H): all input terms at once
        h = torch.zeros_like(pre[:, :, 0])
        for t in range(x.shape[2]):
            h = F.relu(pre[:, :, t] + torch.bmm(h, p["w_h"]))
        return self.readout(p, h)


class LSTM(_Recurrent):
    """Stacked one-layer LSTM, zero initial state."""

    def __init__(self, *, vocab_size: int, symbolic: bool, embed_dim: int, **_: object) -> None:
        layout = Layout(params.lstm(vocab_size=vocab_size, symbolic=symbolic, embed_dim=embed_dim))
        super().__init__(vocab_size, symbolic, embed_dim, layout)

    def forward(self, p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        pre = stacked_linear(self.embed(p, x), p["w_ih"], p["b_ih"] + p["b_hh"])  # (S, B, L, 4H)
        h = torch.zeros_like(pre[:, :, 0, : self.H])
        c = torch.zeros_like(h)
        for t in range(x.shape[2]):
            i, f, g, o = (pre[:, :, t] + torch.bmm(h, p["w_hh"])).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        return self.readout(p, h)
