"""Inference on one word at a time: a fast torch step, and exact log-probs that export to ONNX.

`nn.LSTM`'s forward on a single time step costs several times more than the step itself
(≈0.5 ms against ≈0.07 ms for `torch.lstm_cell`, 256 units, 1 thread), and `F.linear` on one
row reads a (V, H) weight more slowly than `x @ W_t` with W_t stored (H, V) contiguous. So a
typing session steps with the cell functions and a projection whose weights are kept
transposed. Same parameters, same arithmetic: the results agree with the module forward to
float rounding.

Shapes (B batch, E embed, H hidden, L layers, V vocab):

    word ids (B,) ─embedding─▶ x (B, E) ─cell, layer 1 … L─▶ output (B, H)
    state: h (L, B, H), and c (L, B, H) for the LSTM, exactly as nn.LSTM/GRU/RNN carry it
    output ─projection─▶ log-probs (B, V)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from .model import NextWordModel, State

Linear = Callable[[nn.Linear, torch.Tensor], torch.Tensor]
CELL_FUNCTIONS = {"GRU": torch.gru_cell, "RNN_TANH": torch.rnn_tanh_cell,
                  "RNN_RELU": torch.rnn_relu_cell}


def plain_linear(linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return linear(x)


def exact_log_probs(model: NextWordModel, features: torch.Tensor,
                    linear: Linear = plain_linear,
                    top_layer: Linear | None = None) -> torch.Tensor:
    """Log-probabilities over the whole vocabulary, features (N, F) → (N, V).

    The same numbers as `model.log_probs`; the adaptive softmax is written with `torch.cat`
    instead of writes into slices of an empty tensor, so that it exports to ONNX as plain ops:

        head log-probs (N, shortlist + clusters) ─▶ [ shortlist | cluster 1 | cluster 2 … ]
        cluster i: log_softmax(up_i(down_i(x))) + head log-prob of "a word of cluster i"

    `top_layer(layer, x)`, when given, replaces log_softmax(linear(layer, x)) for the layers
    that rank words: the decoder (full softmax), or the head and each cluster's up-projection
    (adaptive).
    """
    def log_softmax_of(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        if top_layer is not None:
            return top_layer(layer, x)
        return F.log_softmax(linear(layer, x), dim=-1)

    if model.adaptive is None:
        return log_softmax_of(model.decoder, features)
    adaptive = model.adaptive
    shortlist = adaptive.shortlist_size
    head = log_softmax_of(adaptive.head, features)
    parts = [head[:, :shortlist]]
    for index, (down, up) in enumerate(adaptive.tail):
        cluster = log_softmax_of(up, linear(down, features))
        parts.append(cluster + head[:, shortlist + index:shortlist + index + 1])
    return torch.cat(parts, dim=-1)


def exact_probabilities(model: NextWordModel, features: torch.Tensor,
                        linear: Linear = plain_linear) -> torch.Tensor:
    """Probabilities over the whole vocabulary, features (N, F) → (N, V) float32: the exp of
    `exact_log_probs`, computed as softmaxes (an adaptive cluster's scaled by the head's
    probability of the cluster) written into one tensor. What a mixture needs: it mixes
    probabilities, and a softmax costs less than a log_softmax and the exp after it."""
    if model.adaptive is None:
        return F.softmax(linear(model.decoder, features), dim=-1)
    adaptive = model.adaptive
    shortlist = adaptive.shortlist_size
    head = F.softmax(linear(adaptive.head, features), dim=-1)
    out = features.new_empty(features.shape[0], model.config.vocab_size)
    out[:, :shortlist] = head[:, :shortlist]
    begin = shortlist
    for index, (down, up) in enumerate(adaptive.tail):
        cluster = F.softmax(linear(up, linear(down, features)), dim=-1)
        end = begin + cluster.shape[1]
        torch.mul(cluster, head[:, shortlist + index:shortlist + index + 1],
                  out=out[:, begin:end])
        begin = end
    return out


class TransposedLinear:
    """`linear(x)` computed as x @ W_t with W_t = weight.t() kept contiguous, (in, out).

    The copy is remade whenever the weight changes (its storage or version counter), so a
    scorer built over a model that is still training never uses stale weights.
    """

    def __init__(self) -> None:
        self._cache: dict[int, tuple[tuple[int, int], torch.Tensor]] = {}

    def __call__(self, linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        weight = linear.weight
        stamp = (weight.data_ptr(), weight._version)
        cached = self._cache.get(id(linear))
        if cached is None or cached[0] != stamp:
            cached = (stamp, weight.detach().t().contiguous())
            self._cache[id(linear)] = cached
        if linear.bias is None:
            return x @ cached[1]
        return torch.addmm(linear.bias, x, cached[1])


def recurrent_step(rnn: nn.RNNBase, x: torch.Tensor, state: State
                   ) -> tuple[torch.Tensor, State]:
    """One time step of a unidirectional RNN/GRU/LSTM stack: x (B, E) → output (B, H), state.

    `state` is None (zeros) or what the module itself takes and returns: h (L, B, H), or the
    pair (h, c) for the LSTM. Dropout between layers is not applied (inference).
    """
    if rnn.bidirectional:
        raise ValueError("recurrent_step: a bidirectional RNN cannot be stepped")
    shape = (rnn.num_layers, x.shape[0], rnn.hidden_size)
    lstm = rnn.mode == "LSTM"
    if state is None:
        zeros = x.new_zeros(shape)
        state = (zeros, zeros) if lstm else zeros
    new_h, new_c = [], []
    for layer in range(rnn.num_layers):
        weights = [getattr(rnn, f"{name}_l{layer}", None)
                   for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        if lstm:
            h, c = torch.lstm_cell(x, (state[0][layer], state[1][layer]), *weights)
            new_c.append(c)
        else:
            h = CELL_FUNCTIONS[rnn.mode](x, state[layer], *weights)
        new_h.append(h)
        x = h
    hidden = torch.stack(new_h)
    return x, ((hidden, torch.stack(new_c)) if lstm else hidden)
