"""`rnn-ime explain`: the shapes, parameters and per-step hidden states of an RNN, in plain text."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .errors import ConfigError
from .limits import EXPLAIN_MAX_LAYERS, EXPLAIN_MAX_SIZE, EXPLAIN_MAX_STEPS
from .options import check_int_range, check_seed
from .reference_rnn import ReferenceRNN, StepRecord

SHOWN_VALUES = 6


@dataclass
class ExplainConfig:
    input_size: int = 8
    hidden_size: int = 4
    layers: int = 1
    bidirectional: bool = False
    nonlinearity: str = "tanh"
    batch_first: bool = False
    seq_len: int = 4
    seed: int = 0

    def check(self, steps: int | None = None) -> None:
        """Sizes within what a page of text can show (limits.EXPLAIN_*), or a one-line error;
        `steps`: the words of a TEXT, in place of --seq-len."""
        check_int_range("input_size", self.input_size, 1, EXPLAIN_MAX_SIZE)
        check_int_range("hidden_size", self.hidden_size, 1, EXPLAIN_MAX_SIZE)
        check_int_range("layers", self.layers, 1, EXPLAIN_MAX_LAYERS)
        check_int_range("seq_len", self.seq_len, 1, EXPLAIN_MAX_STEPS)
        if steps is not None and steps > EXPLAIN_MAX_STEPS:
            raise ConfigError(f"the text has {steps} words; explain shows at most "
                              f"{EXPLAIN_MAX_STEPS}")
        check_seed(self.seed)
        if self.nonlinearity not in ("tanh", "relu"):
            raise ConfigError("--nonlinearity must be tanh or relu")


def _values(t: torch.Tensor) -> str:
    shown = ", ".join(f"{v:+.3f}" for v in t[:SHOWN_VALUES].tolist())
    return f"[{shown}{', …' if t.numel() > SHOWN_VALUES else ''}]"


def _shape(t: torch.Tensor | tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in (t.shape if isinstance(t, torch.Tensor) else t)) + ")"


def explain_config(config: ExplainConfig, words: list[str] | None = None) -> str:
    """Shapes and per-step states of a randomly initialised RNN on random input (or one vector
    per word of `words`), checked against torch.nn.RNN with the same weights."""
    config.check(len(words) if words else None)
    torch.manual_seed(config.seed)
    steps = len(words) if words else config.seq_len
    reference = ReferenceRNN(config.input_size, config.hidden_size, config.layers,
                             config.nonlinearity, batch_first=config.batch_first,
                             bidirectional=config.bidirectional)
    directions = 2 if config.bidirectional else 1
    batch = 1
    x = torch.randn(steps, batch, config.input_size)
    if config.batch_first:
        x = x.transpose(0, 1)
    h0 = torch.zeros(config.layers * directions, batch, config.hidden_size)
    trace: list[StepRecord] = []
    with torch.no_grad():
        output, h_n = reference(x, h0, trace)
        torch_rnn = nn.RNN(config.input_size, config.hidden_size, config.layers,
                           nonlinearity=config.nonlinearity, batch_first=config.batch_first,
                           bidirectional=config.bidirectional)
        torch_rnn.load_state_dict(reference.state_dict())
        torch_output, torch_h_n = torch_rnn(x, h0)
    diff = max(float((output - torch_output).abs().max()), float((h_n - torch_h_n).abs().max()))
    layout = "(batch, seq_len, …)" if config.batch_first else "(seq_len, batch, …)"
    lines = [
        f"RNN: input_size={config.input_size} hidden_size={config.hidden_size} "
        f"num_layers={config.layers} nonlinearity={config.nonlinearity} "
        f"bidirectional={config.bidirectional} batch_first={config.batch_first}",
        f"h_t = {config.nonlinearity}(W_ih x_t + b_ih + W_hh h_(t-1) + b_hh)",
        "",
        f"shapes {layout}:",
        f"  input   {_shape(x)}",
        f"  h0      {_shape(h0)}   (num_layers·num_directions, batch, hidden_size)",
        f"  output  {_shape(output)}   last layer, every step, directions concatenated",
        f"  h_n     {_shape(h_n)}   every layer and direction, last step",
        "",
        "parameters:",
    ]
    total = 0
    for name, param in reference.named_parameters():
        lines.append(f"  {name:<22}{_shape(param)}")
        total += param.numel()
    lines.append(f"  total {total:,} parameters")
    lines += ["", "steps (batch item 0; first values shown):"]
    for record in trace:
        label = f" {words[record.t]}" if words else ""
        lines.append(f"  layer {record.layer} {record.direction:<8} t={record.t}{label}: "
                     f"pre {_values(record.pre_activation[0])} → h {_values(record.hidden[0])}")
    out_last = output[-1, 0] if not config.batch_first else output[0, -1]
    lines += ["", f"h_n[-{directions}] == output[-1][:hidden]: "
              f"{torch.allclose(h_n[-directions, 0], out_last[:config.hidden_size])}",
              f"max |reference − torch.nn.RNN| = {diff:.2e}"]
    return "\n".join(lines)


def explain_model(predictor, text: str, k: int = 3) -> str:
    """Feed a trained model the words of `text` one step at a time and show its states."""
    model = predictor.scorer.model
    config = model.config
    words, ids = predictor.encode(text)
    lines = [f"model: {config.cell} × {config.layers}, embed {config.embed}, hidden "
             f"{config.hidden}, vocabulary {config.vocab_size}, objective {config.objective}",
             f"shapes: ids (1, 1) → embedding (1, 1, {config.embed}) → {config.cell} output "
             f"(1, 1, {config.feature_size}) → log-probs (1, {config.vocab_size})",
             ""]
    from .predict import top_k
    from .vocab import BOS

    session = predictor.session()
    lines.append(f"  {BOS:<8} → next: {_suggested(top_k(session._log_probs, predictor.vocab, k))}")
    for word in words:
        session.commit(word)
        state = session.state.hidden
        h = state[0] if isinstance(state, tuple) else state
        known = "" if predictor.vocab.id(word) != 1 else " (unknown → <unk>)"
        norm = f"‖h‖={float(h[-1, 0].norm()):.2f} h={_values(h[-1, 0])} " if h is not None else ""
        lines.append(f"  {word}{known}: {norm}→ next: "
                     f"{_suggested(top_k(session._log_probs, predictor.vocab, k))}")
    return "\n".join(lines)


def _suggested(suggestions) -> str:
    return " ".join(f"{s.word}({s.probability:.2f})" for s in suggestions)
