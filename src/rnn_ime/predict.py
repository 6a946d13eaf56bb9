"""Prediction: top-k next words for typed text, and a typing session that carries state.

A session costs one recurrent step per committed word; re-reading the whole text is never
needed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import modeldir
from .context_cache import DEFAULT_ENTRIES, ContextCache
from .errors import ConfigError, RnnImeError
from .limits import MAX_K
from .scoring import NeuralScorer, Scorer, top_words
from .text import ClauseCache, get_tokenizer
from .vocab import BOS_ID, UNK_ID, Vocab

SIGNIFICANT_DIGITS = 6  # of a probability in an answer (JSON)


def shown_probability(probability: float) -> float:
    """A probability as answers show it: 6 significant digits, so a small one (a continuation
    of 8 words: 1e-12) is not rounded to 0."""
    return float(f"{probability:.{SIGNIFICANT_DIGITS}g}")


@dataclass(frozen=True)
class Suggestion:
    word: str
    probability: float

    def as_dict(self) -> dict[str, Any]:
        return {"word": self.word, "probability": shown_probability(self.probability)}


def top_k(log_probs: torch.Tensor, vocab: Vocab, k: int) -> list[Suggestion]:
    """The k most likely suggestable words (never <pad>, <unk> or <s>)."""
    return [Suggestion(w, p) for w, p in top_words(log_probs, vocab, k)]


def suggestions_of(scorer: Scorer, state: Any, log_probs: torch.Tensor, k: int
                   ) -> list[Suggestion]:
    """The scorer's k best next words (its own words beyond the vocabulary included)."""
    return [Suggestion(w, p) for w, p in scorer.suggest(state, log_probs, k)]


def check_k(k: int) -> int:
    if not 1 <= k <= MAX_K:
        raise RnnImeError(f"-k must be between 1 and {MAX_K}")
    return k


class Predictor:
    def __init__(self, scorer: Scorer, tokenizer_name: str = "jieba", model_name: str = "") -> None:
        self.scorer = scorer
        self.vocab = scorer.vocab
        self.tokenizer = get_tokenizer(tokenizer_name)
        self.model_name = model_name

    @classmethod
    def from_dir(cls, path: str | Path, device: str = "cpu", runtime: str = "torch",
                 int8: bool = False, mixture: bool = True) -> Predictor:
        """runtime "torch" (the weights), or "onnx" (the graph of `rnn-ime export`); mixed with
        the n-gram when `rnn-ime mix` chose it for this model dir (unless `mixture` is off)."""
        from .mixture import load_scorer

        if runtime == "onnx":
            from .onnx_runtime import OnnxScorer

            scorer, config = OnnxScorer.from_dir(path, int8=int8)
        elif runtime == "torch":
            if int8:
                raise ConfigError("--int8 needs --runtime onnx")
            model, vocab, config = modeldir.load(path, device=device)
            scorer = NeuralScorer(model, vocab)
        else:
            raise ConfigError(f"unknown runtime {runtime!r}; choose torch or onnx")
        tokenizer = config.get("tokenizer", {}).get("name", "jieba")
        return cls(load_scorer(path, scorer, mixture), tokenizer, Path(path).name)

    def encode(self, text: str) -> tuple[list[str], list[int]]:
        words = self.tokenizer.tokenize(text)
        return words, self.vocab.encode(words)

    def suggest(self, text: str, k: int = 5) -> list[Suggestion]:
        """The k most likely next words after `text` (the empty text: a passage's first word)."""
        _, ids = self.encode(text)
        state, log_probs = self.scorer.read(ids)
        return suggestions_of(self.scorer, state, log_probs, check_k(k))

    def session(self) -> TypingSession:
        return TypingSession(self)


class Context:
    """Typed text as the scorer has read it: its word ids, the state and next-word
    log-probabilities after <s> and them (shared with a cache: never write into them). The
    scorer reads the text only when the state is first asked for: a profile whose copy of the
    model adapted reads it with that copy instead."""

    def __init__(self, ids: list[int], read: Callable[[], tuple[Any, torch.Tensor]],
                 last_words: tuple[str, ...] = ()) -> None:
        self.ids, self._read, self.last_words = ids, read, last_words  # last two words

    @functools.cached_property
    def _read_once(self) -> tuple[Any, torch.Tensor]:
        return self._read()

    @property
    def state(self) -> Any:
        return self._read_once[0]

    @property
    def log_probs(self) -> torch.Tensor:
        return self._read_once[1]

    @property
    def last_word(self) -> str | None:
        return self.last_words[-1] if self.last_words else None


class ContextReader:
    """Typed text → Context, reusing the work of texts read before (what a server answering
    every keystroke wants): jieba's words of each clause (text.ClauseCache), and the scorer's
    states after word prefixes (context_cache.ContextCache), so typing one more character costs
    segmenting the last clause and at most a step or two. `entries` bounds the state cache
    (0: no caches, every text segmented and read whole: the plain path). The same words and
    the same numbers, to float rounding, as `Predictor.encode` and reading the context whole.
    """

    def __init__(self, predictor: Predictor, entries: int = DEFAULT_ENTRIES) -> None:
        self.predictor = predictor
        self.states = ContextCache(predictor.scorer, entries) if entries else None
        self.clauses = ClauseCache(predictor.tokenizer, 16 * entries) if entries else None

    def words(self, text: str) -> list[str]:
        return (self.clauses or self.predictor.tokenizer).tokenize(text)

    def encode(self, text: str) -> list[int]:
        return self.predictor.vocab.encode(self.words(text))

    def read(self, text: str) -> Context:
        words = self.words(text)
        ids = self.predictor.vocab.encode(words)
        last = tuple(words[-2:])
        reader = self.states.read if self.states is not None else self.predictor.scorer.read
        return Context(ids, functools.partial(reader, ids), last)

    def suggest(self, text: str, k: int = 5) -> list[Suggestion]:
        """Predictor.suggest through the caches."""
        context = self.read(text)
        return suggestions_of(self.predictor.scorer, context.state, context.log_probs,
                              check_k(k))


class TypingSession:
    """Commit words one at a time; each commit costs one step of the scorer."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.words: list[str] = []
        scorer = predictor.scorer
        self.state, self._log_probs = scorer.step(scorer.start(), BOS_ID)

    def commit_text(self, text: str) -> None:
        """Segment `text` and commit its words."""
        for word in self.predictor.tokenizer.tokenize(text):
            self.commit(word)

    def commit(self, word: str) -> None:
        self.state, self._log_probs = self.predictor.scorer.step_words([self.state], [word])[0]
        self.words.append(word)

    def suggestions(self, k: int = 5) -> list[Suggestion]:
        return suggestions_of(self.predictor.scorer, self.state, self._log_probs, check_k(k))

    @property
    def unknown_words(self) -> list[str]:
        return [w for w in self.words if self.predictor.vocab.id(w) == UNK_ID]
