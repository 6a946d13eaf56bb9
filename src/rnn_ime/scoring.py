"""The one interface every scorer answers (neural model, n-gram baseline, ONNX runtime, and any
wrapper of them), as the base class `Scorer`.

A scorer writes two methods; the base class builds the rest on them, and a scorer overrides a
default only to answer faster, never differently (the same numbers, to float rounding):

    start() -> state                          the state before anything, not even <s>, was read
    step_batch(states, word_ids)              B states, B words → B (state, log_probs (V,))
      ├─ step(state, word_id)                 = step_batch of one
      ├─ read(context)                        = step <s>, then each word of the context
      │    └─ log_probs(contexts) (B, V)      = read each context
      ├─ split_log_probs(split)               = each passage stepped from its <s>, passages
      │                                         side by side in one step_batch per position
      ├─ step_words_for_lexicon(states, words) = step_words, as numpy, for a reader (the pinyin
      │                                         decoder) that looks only through
      │                                         lexicon_log_probs
      └─ lexicon_log_probs_batch(states, …)   = lexicon_log_probs after each state, stacked

A context is a list of word ids, not counting the leading <s>: a session begins with
`step(start(), BOS_ID)`. `split_log_probs(split)` scores every word of a prepared split in
context, in chunks of (log_probs (N, V), target ids (N,), target offsets (N,)), for evaluation.
Each scorer names its one state type (the type parameter, e.g. `Scorer[RecurrentState]`); a
consumer only carries states from one call to the next and never looks inside.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import numpy as np
import torch

from .data import Split, target_positions, windows
from .model import NextWordModel, State
from .stepping import TransposedLinear, exact_log_probs, exact_probabilities, recurrent_step
from .vocab import BOS_ID, PAD_ID, SPECIALS, Vocab

Chunk = tuple[torch.Tensor, torch.Tensor, np.ndarray]
StateT = TypeVar("StateT")


def top_words(log_probs: torch.Tensor, vocab: Vocab, k: int) -> list[tuple[str, float]]:
    """The k most likely suggestable words (never <pad>, <unk> or <s>), with probabilities.

    The unsuggestable ids are the vocabulary's first ones (vocab.SPECIALS), so the top k of the
    view past them is the answer: no masked copy of the (V,) vector, which matters when a request
    must stay under 1 ms.
    """
    first = len(SPECIALS)
    scores = log_probs.float().cpu()[first:]
    values, ids = scores.topk(min(k, scores.numel()))
    return [(vocab.word(i + first), p)
            for i, p in zip(ids.tolist(), values.exp().tolist(), strict=True)]


class WordTable(Protocol):
    """Words beyond the vocabulary (the pinyin lexicon): for each, the id a scorer steps with
    (its vocabulary id, or <unk>) and `extra`, log p(word | <unk>) for a word outside it."""
    words: tuple[str, ...]
    step_id: np.ndarray
    extra: np.ndarray
    position: dict[str, int]


class Scorer(ABC, Generic[StateT]):
    """Next-word log-probabilities over `vocab`, in the stateful form (start / step_batch) and
    the stateless one (log_probs), with defaults built on step_batch."""

    vocab: Vocab
    name: str
    split_rows: int = 256  # passages stepped side by side by the default split_log_probs

    @abstractmethod
    def start(self) -> StateT:
        """The state before anything, not even <s>, was read; step(start(), BOS_ID) begins."""

    @abstractmethod
    def step_batch(self, states: Sequence[StateT], word_ids: Sequence[int]
                   ) -> list[tuple[StateT, torch.Tensor]]:
        """Commit word_ids[i] after states[i], for every i at once: the new state and the
        (V,) next-word log-probabilities of each. One word per state; no states give []."""

    def step_probabilities(self, states: Sequence[StateT], word_ids: Sequence[int]
                           ) -> tuple[list[StateT], torch.Tensor]:
        """step_batch's new states and their next-word distributions as probabilities, (N, V)
        float32, what a mixture mixes (a scorer that has them without a log overrides this)."""
        stepped = self.step_batch(states, word_ids)
        if not stepped:
            return [], torch.empty(0, len(self.vocab))
        return ([state for state, _ in stepped],
                torch.stack([log_probs for _, log_probs in stepped]).float().exp_())

    def step_words(self, states: Sequence[StateT], words: Sequence[str]
                   ) -> list[tuple[StateT, torch.Tensor]]:
        """step_batch with the words themselves (a word outside the vocabulary steps as <unk>;
        a scorer that remembers such words, like the user model, overrides this)."""
        return self.step_batch(states, [self.vocab.id(w) for w in words])

    def step_words_for_lexicon(self, states: Sequence[StateT], words: Sequence[str]
                               ) -> list[tuple[StateT, np.ndarray]]:
        """step_words for a reader that looks at the log-probabilities only through
        `lexicon_log_probs` of the same state (the pinyin decoder), as numpy arrays; a scorer
        may hand back what is cheaper to make there, as long as its lexicon_log_probs gives
        the same numbers (the user model: the base's, mixed only at the words looked up)."""
        return [(state, log_probs.float().cpu().numpy())
                for state, log_probs in self.step_words(states, words)]

    def word_log_prob(self, state: StateT, log_probs: np.ndarray, word_id: int) -> float:
        """log p(word | history) of one vocabulary word, given what step_words_for_lexicon
        handed back for the state (a scorer that hands back less there overrides this)."""
        return float(log_probs[word_id])

    def step(self, state: StateT, word_id: int) -> tuple[StateT, torch.Tensor]:
        """Commit one word: the new state and the (V,) next-word log-probabilities."""
        return self.step_batch([state], [word_id])[0]

    def lexicon_log_probs(self, state: StateT, log_probs: np.ndarray, lexicon: WordTable,
                          words: np.ndarray) -> np.ndarray:
        """log p(word | history) of lexicon words, given the state and its (V,) log-probs: a
        vocabulary word's own, p(<unk>)·p(word | <unk>) for the others (a scorer that knows
        more about words outside the vocabulary, like the user model, overrides this)."""
        return log_probs[lexicon.step_id[words]] + lexicon.extra[words]

    def lexicon_log_probs_batch(self, states: Sequence[StateT], log_probs: Sequence[np.ndarray],
                                lexicon: WordTable, words: np.ndarray) -> np.ndarray:
        """lexicon_log_probs of the same words after each of several states, (states, words)
        (a scorer that shares work between them overrides this)."""
        return np.stack([self.lexicon_log_probs(state, lp, lexicon, words)
                         for state, lp in zip(states, log_probs, strict=True)])

    def suggest(self, state: StateT, log_probs: torch.Tensor, k: int) -> list[tuple[str, float]]:
        """The k most likely next words (word, probability): the vocabulary's, never <pad>,
        <unk> or <s> (a scorer that knows words beyond the vocabulary overrides this)."""
        return top_words(log_probs, self.vocab, k)

    def read(self, context: Sequence[int]) -> tuple[StateT, torch.Tensor]:
        """The state and (V,) log-probabilities after <s> and `context`, as stepping word by
        word leaves them (a scorer that can read a context in one pass overrides this)."""
        state, log_probs = self.step(self.start(), BOS_ID)
        for word_id in context:
            state, log_probs = self.step(state, word_id)
        return state, log_probs

    def log_probs(self, contexts: Sequence[Sequence[int]]) -> torch.Tensor:
        """(batch, V) next-word log-probabilities, one row per context (each read from <s>)."""
        rows = [self.read(context)[1] for context in contexts]
        return torch.stack(rows) if rows else torch.empty(0, len(self.vocab))

    def split_log_probs(self, split: Split) -> Iterator[Chunk]:
        """Every word of `split`, each passage read from its <s> as a typing session reads it.

        Passages of similar length step side by side, `split_rows` at a time:

            position t:  step_batch(states of the passages with a word at t + 1, token t)
                         → their log-probabilities of token t + 1, one chunk
        """
        tokens = np.asarray(split.tokens).astype(np.int64)
        lengths = split.ends - split.starts  # <s> + words
        order = np.argsort(lengths, kind="stable")
        for begin in range(0, len(order), self.split_rows):
            group = order[begin:begin + self.split_rows]
            starts, group_lengths = split.starts[group], lengths[group]
            states = [self.start() for _ in group]
            for t in range(int(group_lengths.max()) - 1):
                live = np.flatnonzero(t < group_lengths - 1)
                stepped = self.step_batch([states[i] for i in live],
                                          tokens[starts[live] + t].tolist())
                for i, (state, _) in zip(live.tolist(), stepped, strict=True):
                    states[i] = state
                offsets = starts[live] + t + 1
                yield (torch.stack([log_probs for _, log_probs in stepped]),
                       torch.from_numpy(tokens[offsets]), offsets)


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
    """NeuralScorer's state: the recurrent state h, or (h, c) for the LSTM, each (L, 1, H)
    (None before the first step: zeros), or for window models the window of ids; and the
    features (1, F) the last step's log-probabilities were projected from."""
    hidden: State
    window: tuple[int, ...]
    features: torch.Tensor | None = None


class NeuralScorer(Scorer[RecurrentState]):
    """The recurrent model (either objective) in torch. Overrides every default: `read` and
    `split_log_probs` run whole sequences through the model in one call."""

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
        return super().log_probs(contexts)

    def start(self) -> RecurrentState:
        return RecurrentState(hidden=None, window=())

    @torch.inference_mode()
    def step_batch(self, states: Sequence[RecurrentState], word_ids: Sequence[int]
                   ) -> list[tuple[RecurrentState, torch.Tensor]]:
        """One recurrent step (lm) or one window run for B states, then the projection: a
        batch of B rows reads the weights once, so it costs little more than one row.

        The lm step runs the cell functions rather than the whole nn.LSTM/GRU/RNN module, and
        the projection reads transposed weights (see stepping.py): the same numbers, faster.
        """
        if not states:
            return []
        new, features = self._step_features(states, word_ids)
        log_probs = exact_log_probs(self.model, features, self._step_linear)
        return [(state, log_probs[i]) for i, state in enumerate(new)]

    @torch.inference_mode()
    def step_probabilities(self, states: Sequence[RecurrentState], word_ids: Sequence[int]
                           ) -> tuple[list[RecurrentState], torch.Tensor]:
        if not states:
            return [], torch.empty(0, len(self.vocab))
        new, features = self._step_features(states, word_ids)
        return new, exact_probabilities(self.model, features, self._step_linear)

    def _step_features(self, states: Sequence[RecurrentState], word_ids: Sequence[int]
                       ) -> tuple[list[RecurrentState], torch.Tensor]:
        """The new states and the (B, F) features their next words are projected from."""
        # a <s> starts a passage from the zero state, as in training and in read()
        states = [self.start() if word_id == BOS_ID else state
                  for state, word_id in zip(states, word_ids, strict=True)]
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
        return new, features

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
