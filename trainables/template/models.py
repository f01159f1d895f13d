"""Models by name. Each is a stacked model: ``layout`` (its parameters) and ``forward(p, x)``.

``forward`` maps tokens (S, B, L) to predictions (S, B) for regression tasks or to logits
(S, B, V) over the whole vocabulary for symbolic tasks. Adding a model = one class, one line here and
its name in ``config.MODEL_NAMES`` (config imports no torch).
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from ..stacked.layout import Layout
from .baselines import MLP, MLPWithXXT
from .params import model_kwargs
from .recurrent import LSTM, RNN
from .transformer import Transformer


class StackedModel(Protocol):
    layout: Layout

    def forward(self, p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor: ...


MODELS: dict[str, type] = {
    "transformer": Transformer,
    "mlp": MLP,
    "mlp_xxt": MLPWithXXT,
    "rnn": RNN,
    "lstm": LSTM,
}


def build_model(
    config: dict[str, Any], vocab_size: int, length: int, symbolic: bool
) -> StackedModel:
    """The model named by ``config['model']``."""
    return MODELS[config["model"]](**model_kwargs(config, vocab_size, length, symbolic))
