"""A plain RNN written from its equations, with `torch.nn.RNN`'s arguments, names and shapes.

    h_t = act(W_ih x_t + b_ih + W_hh h_(t-1) + b_hh)        act = tanh or relu

Layer l > 0 reads the outputs of layer l-1 (both directions concatenated when bidirectional).
Shapes (batch_first=False; batch_first=True swaps the first two axes of input and output):

    input  (seq_len, batch, input_size)
    h0     (num_layers · num_directions, batch, hidden_size)   zeros when not given
    output (seq_len, batch, num_directions · hidden_size)       last layer, every step
    h_n    (num_layers · num_directions, batch, hidden_size)   every layer, last step

Parameters are named like nn.RNN's (weight_ih_l0, weight_hh_l0_reverse, …), so
`ReferenceRNN(...).load_state_dict(nn_rnn.state_dict())` works, and vice versa.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class StepRecord:
    """One time step of one layer and direction, for showing a learner what happens."""
    layer: int
    direction: str
    t: int
    pre_activation: torch.Tensor  # W_ih x_t + b_ih + W_hh h_(t-1) + b_hh, (batch, hidden)
    hidden: torch.Tensor  # h_t, (batch, hidden)


class ReferenceRNN(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False) -> None:
        super().__init__()
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"unknown nonlinearity {nonlinearity!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.nonlinearity, self.bias, self.batch_first = nonlinearity, bias, batch_first
        self.dropout, self.bidirectional = dropout, bidirectional
        self.num_directions = 2 if bidirectional else 1
        bound = 1.0 / math.sqrt(hidden_size)  # nn.RNN's initialisation
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * self.num_directions
            for suffix in self._suffixes(layer):
                shapes = {"weight_ih": (hidden_size, layer_input),
                          "weight_hh": (hidden_size, hidden_size)}
                if bias:
                    shapes.update(bias_ih=(hidden_size,), bias_hh=(hidden_size,))
                for name, shape in shapes.items():
                    param = nn.Parameter(torch.empty(shape).uniform_(-bound, bound))
                    self.register_parameter(f"{name}{suffix}", param)

    def _suffixes(self, layer: int) -> list[str]:
        return [f"_l{layer}", f"_l{layer}_reverse"][: self.num_directions]

    def _activation(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x) if self.nonlinearity == "tanh" else torch.relu(x)

    def cell(self, x_t: torch.Tensor, h_prev: torch.Tensor, suffix: str) -> tuple[torch.Tensor,
                                                                                    torch.Tensor]:
        """One step: (batch, in) and (batch, hidden) → pre-activation and h_t, (batch, hidden)."""
        pre = x_t @ getattr(self, f"weight_ih{suffix}").T + h_prev @ getattr(
            self, f"weight_hh{suffix}").T
        if self.bias:
            pre = pre + getattr(self, f"bias_ih{suffix}") + getattr(self, f"bias_hh{suffix}")
        return pre, self._activation(pre)

    def forward(self, input: torch.Tensor, h0: torch.Tensor | None = None,
                trace: list[StepRecord] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Run every layer and direction step by step; append StepRecords to `trace` if given."""
        x = input.transpose(0, 1) if self.batch_first else input  # → (seq_len, batch, features)
        seq_len, batch = x.shape[0], x.shape[1]
        if h0 is None:
            h0 = x.new_zeros(self.num_layers * self.num_directions, batch, self.hidden_size)
        h_n = []
        for layer in range(self.num_layers):
            outputs = []
            for direction, suffix in enumerate(self._suffixes(layer)):
                h = h0[layer * self.num_directions + direction]
                steps = range(seq_len) if direction == 0 else range(seq_len - 1, -1, -1)
                out = [None] * seq_len
                for t in steps:
                    pre, h = self.cell(x[t], h, suffix)
                    out[t] = h
                    if trace is not None:
                        trace.append(StepRecord(layer, "backward" if direction else "forward",
                                                t, pre.detach(), h.detach()))
                outputs.append(torch.stack(out))
                h_n.append(h)
            x = torch.cat(outputs, dim=-1)  # (seq_len, batch, num_directions · hidden)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = nn.functional.dropout(x, self.dropout)
        output = x.transpose(0, 1) if self.batch_first else x
        return output, torch.stack(h_n)
