"""Beam search over any Scorer's start/step: the B most likely continuations of L words.

A continuation is L words the scorer suggests (never <pad>, <unk> or <s>; with the user
model, the user's own words outside the vocabulary too), scored by its total log-probability.
With `may_end`, a continuation may also end the passage sooner: the scorer predicts <s> (the
start of the next passage, i.e. the end of this one) after it; the <s> counts in its
log-probability but is never shown. Every way the text can go on then falls in exactly one
outcome (its first L words, or its first words and then the end), so the probabilities are
comparable and a short continuation is not favoured merely for being short.

    depth 1        depth 2              …   depth L
    [] ──┬─ w1 ──┬─ w1 w3 ──┬─ …           the B best live prefixes are kept at each depth;
         │       └─ w1 <end>│              (may_end) a prefix's end of passage becomes a
         └─ w2 ── …         └─ …           finished continuation, kept if among the B best

With B at least the number of outcomes (V^L words-only sequences for V suggestable words, plus
the shorter ended ones with may_end) nothing is pruned: the search is exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .errors import RnnImeError
from .limits import MAX_BEAM, MAX_LENGTH
from .scoring import Scorer
from .vocab import BOS_ID, SPECIALS


@dataclass(frozen=True)
class Continuation:
    words: tuple[str, ...]
    log_prob: float  # total: the words, and the end of the passage when ends_passage
    ends_passage: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"words": list(self.words), "text": "".join(self.words),
                "log_prob": round(self.log_prob, 4), "ends_passage": self.ends_passage}


@dataclass(frozen=True)
class _Live:
    words: tuple[str, ...]
    log_prob: float
    state: Any
    next_log_probs: torch.Tensor  # (V,)


def check_beam(beam: int, length: int) -> None:
    if not 1 <= beam <= MAX_BEAM:
        raise RnnImeError(f"--beam must be between 1 and {MAX_BEAM}")
    if not 1 <= length <= MAX_LENGTH:
        raise RnnImeError(f"--length must be between 1 and {MAX_LENGTH}")


def _best(items: list[Continuation], beam: int) -> list[Continuation]:
    return sorted(items, key=lambda c: (-c.log_prob, c.words))[:beam]


def expansions(scorer: Scorer, state: Any, log_probs: torch.Tensor, width: int
               ) -> list[tuple[str, float]]:
    """The `width` next words a prefix grows by, with their log-probabilities: the scorer's
    suggestions (so a scorer's own words beyond the vocabulary, the user's, take part), each
    vocabulary word's log-probability read from `log_probs` in double precision."""
    vocab = scorer.vocab
    out = []
    for word, probability in scorer.suggest(state, log_probs, width):
        word_id = vocab.id(word)
        # float32 → float64 is exact: the entry alone, not a copy of the whole vector
        value = float(log_probs[word_id]) if word_id >= len(SPECIALS) else \
            math.log(probability) if probability > 0 else -math.inf
        if value != -math.inf:
            out.append((word, value))
    return out


def beam_search(scorer: Scorer, context: Sequence[int], beam: int = 5, length: int = 3,
                may_end: bool = False, start: tuple[Any, torch.Tensor] | None = None
                ) -> list[Continuation]:
    """The `beam` most likely continuations of `context` (ids typed after <s>), best first.

    A prefix grows by the scorer's `suggest`ed words (the same words, in the same order, as
    suggestions: length 1 is the top `beam` suggestions) and steps with `step_words`, so a
    word outside the vocabulary keeps its text. `start`: the scorer's (state, log_probs) after
    the context, when the caller has it."""
    check_beam(beam, length)
    live = [_Live((), 0.0, *(start if start is not None else scorer.read(context)))]
    finished: list[Continuation] = []
    for depth in range(1, length + 1):
        candidates: list[Continuation] = []  # live prefixes one word longer, parent in `owner`
        owner: dict[tuple[str, ...], _Live] = {}
        for parent in live:
            end = float(parent.next_log_probs[BOS_ID])
            if may_end and parent.words and math.isfinite(end):
                finished.append(Continuation(parent.words, parent.log_prob + end, True))
            for word, value in expansions(scorer, parent.state, parent.next_log_probs, beam):
                words = (*parent.words, word)
                candidates.append(Continuation(words, parent.log_prob + value))
                owner[words] = parent
        finished = _best(finished, beam)
        kept = _best(candidates, beam)
        if depth == length or not kept:
            return _best(finished + kept, beam)
        stepped = scorer.step_words([owner[c.words].state for c in kept],
                                    [c.words[-1] for c in kept])  # one batched step
        live = [_Live(c.words, c.log_prob, *after)
                for c, after in zip(kept, stepped, strict=True)]
    return _best(finished, beam)
