"""The one interface every scorer answers (neural model, n-gram baseline, ONNX runtime).

- `log_probs(contexts)`: next-word log-probabilities for each context (a list of word ids,
  not counting the leading <s>), shape (batch, vocab);
- `start()` / `step(state, word_id)`: the stateful form for typing, one step per word
  (a session begins with `step(start(), BOS_ID)`); a scorer may also answer
  `step_batch(states, word_ids)`, several steps in one call (see `step_many`);
- `split_log_probs(split)`: every word of a prepared split scored in context, in chunks of
  (log_probs (N, V), target ids (N,), target offsets (N,)), for evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from .data import Split, target_positions, windows
from .model import NextWordModel, State
from .stepping import TransposedLinear, exact_log_probs, recurrent_step
from .vocab import BOS_ID, PAD_ID, Vocab

Chunk = tuple[torch.Tensor, torch.Tensor, np.ndarray]


class Scorer(Protocol):
    vocab: Vocab
    name: str

    def log_probs(self, contexts: Sequence[Sequence[int]]) -> torch.Tensor: ...

    def start(self) -> Any: ...

    def step(self, state: Any, word_id: int) -> tuple[Any, torch.Tensor]: ...

    def split_log_probs(self, split: Split) -> Iterator[Chunk]: ...


def read_context(scorer: Scorer, context: Sequence[int]) -> tuple[Any, torch.Tensor]:
    """The scorer's state and log-probabilities after <s> and `context`: in one pass where the
    scorer can (`read`), else one `step` per word."""
    if hasattr(scorer, "read"):
        return scorer.read(context)
    state, log_probs = scorer.step(scorer.start(), BOS_ID)
    for word_id in context:
        state, log_probs = scorer.step(state, word_id)
    return state, log_probs


def step_many(scorer: Scorer, states: Sequence[Any], word_ids: Sequence[int]
              ) -> list[tuple[Any, torch.Tensor]]:
    """`scorer.step` for each (state, word) pair: one batched call where the scorer can
    (`step_batch`: a batch of B rows reads the weights once, so it costs little more than one
    row), else one step after another."""
    if len(states) != len(word_ids):
        raise ValueError("step_many: one word per state")
    if len(states) > 1 and hasattr(scorer, "step_batch"):
        return scorer.step_batch(states, word_ids)
    return [scorer.step(state, word_id) for state, word_id in zip(states, word_ids, strict=True)]


def padded_window(ids: Sequence[int], seq_len: int) -> tuple[int, ...]:
    """The last seq_len ids, <pad>-padded on the left to seq_len: what a window model reads."""
    kept = tuple(ids[-seq_len:])
    return (PAD_ID,) * (seq_len - len(kept)) + kept


def next_window(window: tuple[int, ...], word_id: int, seq_len: int
                ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A window model's state after `word_id`: (the last seq_len ids, padded_window of them)."""
    kept = (*window, word_id)[-seq_len:]
    return kept, padded_window(kept, seq_len)


def stack_states(states: Sequence[State], zeros: torch.Tensor, lstm: bool) -> State:
    """Recurrent states of batch 1 (h, or (h, c) for the LSTM; None for zeros) → one state of
    batch B (one state is returned as it is)."""
    if len(states) == 1:
        return states[0]
    if lstm:
        pairs = [s if s is not None else (zeros, zeros) for s in states]
        return torch.cat([h for h, _ in pairs], 1), torch.cat([c for _, c in pairs], 1)
    return torch.cat([s if s is not None else zeros for s in states], 1)


def state_row(state: State, row: int) -> State:
    """Row `row` of a batched recurrent state, as a state of batch 1."""
    if isinstance(state, tuple):
        return tuple(part[:, row:row + 1] for part in state)
    return state[:, row:row + 1]


def length_batches(lengths: np.ndarray, max_tokens: int) -> Iterator[np.ndarray]:
    """Groups of passage indices, sorted by length, each padded batch ≤ max_tokens tokens."""
    order = np.argsort(lengths, kind="stable")
    batch: list[int] = []
    for index in order:
        if batch and (len(batch) + 1) * lengths[index] > max_tokens:
            yield np.asarray(batch)
            batch = []
        batch.append(int(index))
    if batch:
        yield np.asarray(batch)


@dataclass
class RecurrentState:
    """What a typing session carries: the recurrent state and, for window models, the window."""
    hidden: State
    window: tuple[int, ...]
    features: torch.Tensor | None = None


class NeuralScorer:
    def __init__(self, model: NextWordModel, vocab: Vocab, name: str = "rnn",
                 max_tokens: int = 16384, logit_rows: int = 2048) -> None:
        self.model = model.eval()
        self.vocab = vocab
        self.name = name
        self.max_tokens = max_tokens
        self.logit_rows = logit_rows  # rows of (rows, vocab) log-probabilities held at once
        self.device = next(model.parameters()).device
        self._step_linear = TransposedLinear()  # step(): projection weights kept (in, out)

    @property
    def seq_len(self) -> int:
        return self.model.config.seq_len

    @torch.inference_mode()
    def log_probs(self, contexts: Sequence[Sequence[int]]) -> torch.Tensor:
        if self.model.config.objective == "window":
            ids = torch.tensor([padded_window((BOS_ID, *c), self.seq_len) for c in contexts],
                               device=self.device)
            features, _ = self.model(ids)
            return self.model.log_probs(features)
        # contexts differ in length; each is read from a zero state, as a typing session is
        return torch.stack([self.read(context)[1] for context in contexts])

    def start(self) -> RecurrentState:
        """The state before anything, not even <s>, was read; step(start(), BOS_ID) begins."""
        return RecurrentState(hidden=None, window=())

    def step(self, state: RecurrentState, word_id: int) -> tuple[RecurrentState, torch.Tensor]:
        """Commit one word: one recurrent step (lm) or one window run, then the projection.

        The lm step runs the cell functions rather than the whole nn.LSTM/GRU/RNN module, and
        the projection reads transposed weights (see stepping.py): the same numbers, faster.
        """
        return self.step_batch([state], [word_id])[0]

    @torch.inference_mode()
    def step_batch(self, states: Sequence[RecurrentState], word_ids: Sequence[int]
                   ) -> list[tuple[RecurrentState, torch.Tensor]]:
        """`step` for several states at once (see `step_many`); the same numbers to float
        rounding."""
        if self.model.config.objective == "window":
            windows = [next_window(state.window, word_id, self.seq_len)
                       for state, word_id in zip(states, word_ids, strict=True)]
            features, _ = self.model(torch.tensor([padded for _, padded in windows],
                                                  device=self.device))
            new = [RecurrentState(None, kept, features[i:i + 1])
                   for i, (kept, _) in enumerate(windows)]
        else:
            rnn = self.model.rnn
            zeros = torch.zeros(rnn.num_layers, 1, rnn.hidden_size, device=self.device)
            hidden = stack_states([state.hidden for state in states], zeros,
                                  lstm=rnn.mode == "LSTM")
            x = self.model.embedding(torch.tensor(list(word_ids), device=self.device))  # (B, E)
            features, hidden = recurrent_step(rnn, x, hidden)  # (B, H)
            new = [RecurrentState(state_row(hidden, i), (), features[i:i + 1])
                   for i in range(len(states))]
        log_probs = exact_log_probs(self.model, features, self._step_linear)
        return [(state, log_probs[i]) for i, state in enumerate(new)]

    @torch.inference_mode()
    def read(self, context: Sequence[int]) -> tuple[RecurrentState, torch.Tensor]:
        """The state and next-word log-probabilities after <s> and `context`, in one pass
        (stepping word by word costs one model call per word: seconds for a long text)."""
        ids = [BOS_ID, *context]
        if self.model.config.objective == "lm":
            features, hidden = self.model(torch.tensor([ids], device=self.device))
            state = RecurrentState(hidden, (), features[:, -1])
            return state, exact_log_probs(self.model, state.features, self._step_linear)[0]
        before_last = tuple(ids[:-1][max(0, len(ids) - self.seq_len):])
        return self.step(RecurrentState(None, before_last), ids[-1])

    def _passage_lengths(self, split: Split) -> np.ndarray:
        return split.ends - split.starts

    @torch.inference_mode()
    def split_log_probs(self, split: Split) -> Iterator[Chunk]:
        if self.model.config.objective == "window":
            positions = target_positions(split)
            tokens = np.asarray(split.tokens)
            step = self.logit_rows
            for begin in range(0, len(positions), step):
                chosen = positions[begin:begin + step]
                ids = torch.from_numpy(windows(split, chosen, self.seq_len)).to(self.device)
                features, _ = self.model(ids)
                yield (self.model.log_probs(features),
                       torch.from_numpy(tokens[chosen].astype(np.int64)), chosen)
            return
        # lm: each passage is read from its <s> with a zero state, as a typing session is.
        tokens = np.asarray(split.tokens)
        lengths = self._passage_lengths(split)  # <s> + words
        for group in length_batches(lengths, self.max_tokens):
            width = int(lengths[group].max())
            ids = np.full((len(group), width), PAD_ID, dtype=np.int64)
            for row, index in enumerate(group):
                start = split.starts[index]
                ids[row, :lengths[index]] = tokens[start:start + lengths[index]]
            features, _ = self.model(torch.from_numpy(ids).to(self.device))
            # position t predicts token t+1 of the same passage, when that is a word
            rows, cols = np.nonzero(np.arange(width - 1)[None, :] < (lengths[group] - 1)[:, None])
            if len(rows) == 0:
                continue
            selected = features[torch.from_numpy(rows), torch.from_numpy(cols)]
            offsets = split.starts[group][rows] + cols + 1
            for begin in range(0, len(offsets), self.logit_rows):
                part = slice(begin, begin + self.logit_rows)
                yield (self.model.log_probs(selected[part]),
                       torch.from_numpy(tokens[offsets[part]].astype(np.int64)), offsets[part])
