"""NextWordModel: embedding → recurrent stack → projection over the vocabulary.

Shapes (B batch, T time steps, E embed, H hidden, D = 2 if bidirectional else 1, V vocab):

    ids (B, T) ─embedding─▶ (B, T, E) ─rnn/gru/lstm─▶ output (B, T, D·H)
      lm objective:      every step's output is a feature          → (B, T, D·H), D = 1
      window objective:  the last step (and, bidirectional, the     → (B, D·H)
                         backward direction's step 0)
    features ─projection─▶ logits (…, V)   (full softmax, or an adaptive softmax whose
                                            frequent-word head is cheap)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch
from torch import nn
from torch.nn import functional as F

from .errors import ConfigError
from .limits import MAX_LAYERS, MAX_SEQ_LEN, MAX_WIDTH
from .vocab import BOS_ID

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
OBJECTIVES = ("lm", "window")
SOFTMAXES = ("auto", "full", "adaptive")
ADAPTIVE_MIN_VOCAB = 5000

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None


def default_cutoffs(vocab_size: int) -> list[int]:
    """Cluster boundaries for the adaptive softmax: a 2,000-word head, then ×5 per cluster."""
    cutoffs, edge = [], 2000
    while edge < vocab_size - 1000:
        cutoffs.append(edge)
        edge *= 5
    return cutoffs


@dataclass
class ModelConfig:
    vocab_size: int
    objective: str = "lm"
    cell: str = "gru"  # the product default, as TrainConfig.cell
    nonlinearity: str = "tanh"
    layers: int = 1
    embed: int = 256
    hidden: int = 256
    dropout: float = 0.0
    bidirectional: bool = False
    tie_weights: bool = False
    softmax: str = "auto"
    cutoffs: list[int] = field(default_factory=list)
    seq_len: int = 5

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def feature_size(self) -> int:
        return self.hidden * self.directions

    def resolved(self) -> ModelConfig:
        """Check every option and fill in what `auto` means for this vocabulary."""
        if self.cell not in CELLS:
            raise ConfigError(f"unknown cell {self.cell!r}; choose one of {', '.join(CELLS)}")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"unknown objective {self.objective!r}; choose lm or window")
        if self.nonlinearity not in ("tanh", "relu"):
            raise ConfigError("--nonlinearity must be tanh or relu")
        if self.nonlinearity != "tanh" and self.cell != "rnn":
            raise ConfigError("--nonlinearity applies to --cell rnn only")
        if self.softmax not in SOFTMAXES:
            raise ConfigError(f"unknown softmax {self.softmax!r}; choose full or adaptive")
        for name in ("layers", "embed", "hidden", "seq_len", "vocab_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
        for name, most in (("layers", MAX_LAYERS), ("embed", MAX_WIDTH), ("hidden", MAX_WIDTH),
                           ("seq_len", MAX_SEQ_LEN)):
            if getattr(self, name) > most:
                raise ConfigError(f"--{name.replace('_', '-')} must be at most {most:,}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError("--dropout must be in [0, 1)")
        if self.bidirectional and self.objective == "lm":
            raise ConfigError("--bidirectional needs --objective window: in the lm objective "
                              "the backward direction would read the words it must predict")
        softmax = self.softmax
        if softmax == "auto":
            softmax = "full" if self.tie_weights or self.vocab_size < ADAPTIVE_MIN_VOCAB \
                else "adaptive"
        cutoffs = list(self.cutoffs) if softmax == "adaptive" else []
        if softmax == "adaptive":
            cutoffs = cutoffs or default_cutoffs(self.vocab_size)
            if not cutoffs or cutoffs != sorted(set(cutoffs)) or cutoffs[0] < 1 \
                    or cutoffs[-1] >= self.vocab_size - 1:
                raise ConfigError(f"adaptive softmax cutoffs {cutoffs} do not fit a vocabulary "
                                  f"of {self.vocab_size}; use --softmax full")
        if self.tie_weights:
            if softmax != "full":
                raise ConfigError("--tie-weights needs the full softmax (--softmax full)")
            if self.feature_size != self.embed:
                raise ConfigError(f"--tie-weights needs --embed equal to the output size "
                                  f"({self.feature_size})")
        return ModelConfig(**{**asdict(self), "softmax": softmax, "cutoffs": cutoffs})

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """The config a dict describes (unknown keys ignored); a missing vocab_size or a value
        of the wrong JSON type is a ConfigError."""
        known = {f.name: f for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for name, value in values.items():
            if not _is_of(value, known[name].type):
                raise ConfigError(f"model option {name!r} should be {known[name].type}, "
                                  f"not {value!r}")
        if "vocab_size" not in values:
            raise ConfigError("model options without vocab_size")
        return cls(**values)


def _is_of(value: object, annotation: str) -> bool:
    """Whether a JSON value fits a ModelConfig field's annotation (int, float, bool, str or
    list[int])."""
    if annotation == "list[int]":
        return isinstance(value, list) and all(_is_of(v, "int") for v in value)
    if annotation == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, {"bool": bool, "str": str}[annotation])


class NextWordModel(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config = config.resolved()
        self.embedding = nn.Embedding(config.vocab_size, config.embed)
        rnn_options = {"nonlinearity": config.nonlinearity} if config.cell == "rnn" else {}
        self.rnn = CELLS[config.cell](
            config.embed, config.hidden, num_layers=config.layers, batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
            bidirectional=config.bidirectional, **rnn_options)
        self.drop = nn.Dropout(config.dropout)
        if config.softmax == "adaptive":
            self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(
                config.feature_size, config.vocab_size, config.cutoffs, div_value=4.0)
            self.decoder = None
        else:
            self.adaptive = None
            self.decoder = nn.Linear(config.feature_size, config.vocab_size)
            if config.tie_weights:
                self.decoder.weight = self.embedding.weight
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        if self.decoder is not None:
            nn.init.zeros_(self.decoder.bias)
            if not self.config.tie_weights:
                nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    # ------------------------------------------------------------------ features
    def forward(self, ids: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        """ids (B, T) → features (B, T, H) for lm, (B, D·H) for window; and the new state.

        lm: every <s> starts a passage from the zero state, wherever it stands in a row, so a
        passage is read in training exactly as evaluation and typing read it.
        """
        x = self.drop(self.embedding(ids))
        if self.config.objective == "lm":
            output, state = self._read_passages(x, ids, state)
        else:
            output, state = self.rnn(x, state)
        if self.config.objective == "window":
            hidden = self.config.hidden
            if self.config.bidirectional:
                # forward direction: after the last word; backward direction: after the first.
                output = torch.cat([output[:, -1, :hidden], output[:, 0, hidden:]], dim=-1)
            else:
                output = output[:, -1]
        return self.drop(output), state

    def _read_passages(self, x: torch.Tensor, ids: torch.Tensor, state: State
                       ) -> tuple[torch.Tensor, State]:
        """Run the recurrent stack over x (B, T, E), zeroing a row's state before each <s>.

        The columns holding some row's <s> cut the batch into time segments; each segment is
        one call of the cuDNN/MKL recurrent kernel, and between segments the rows that start a
        passage get the zero state:

            row 0  w w w <s> w w w w     cuts at t=3 and t=5: segments [0,3) [3,5) [5,8)
            row 1  w w w w w <s> w w     before t=3 row 0 is zeroed, before t=5 row 1
        """
        starts = ids == BOS_ID
        if state is None:
            starts[:, 0] = False  # the zero state already
        cuts = torch.nonzero(starts.any(dim=0)).flatten().tolist()
        if not cuts:
            return self.rnn(x, state)
        bounds = sorted({0, *cuts, x.shape[1]})
        outputs = []
        for begin, end in zip(bounds, bounds[1:], strict=False):
            if begin in cuts and state is not None:
                keep = (~starts[:, begin]).to(x.dtype)[None, :, None]  # (1, B, 1)
                state = (tuple(part * keep for part in state) if isinstance(state, tuple)
                         else state * keep)
            output, state = self.rnn(x[:, begin:end], state)
            outputs.append(output)
        return torch.cat(outputs, dim=1), state

    # ------------------------------------------------------------------ outputs
    def loss(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the targets; the adaptive softmax never builds (N, V) logits."""
        flat = features.reshape(-1, features.shape[-1])
        targets = targets.reshape(-1)
        if self.adaptive is not None:
            # the adaptive softmax mixes dtypes under autocast (index_copy_ fails): keep it fp32
            with torch.autocast(flat.device.type, enabled=False):
                return self.adaptive(flat.float(), targets).loss
        return F.cross_entropy(self.decoder(flat), targets)

    def log_probs(self, features: torch.Tensor) -> torch.Tensor:
        """Exact log-probabilities over the whole vocabulary: (…, D·H) → (…, V)."""
        flat = features.reshape(-1, features.shape[-1])
        if self.adaptive is not None:
            out = self.adaptive.log_prob(flat)
        else:
            out = F.log_softmax(self.decoder(flat), dim=-1)
        return out.reshape(*features.shape[:-1], -1)


def detach_state(state: State) -> State:
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
