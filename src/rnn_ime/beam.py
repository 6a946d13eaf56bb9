"""Beam search over any Scorer's start/step: the B most likely continuations of L words.

A continuation is L suggestable words (never <pad>, <unk> or <s>), scored by its total
log-probability. With `may_end`, a continuation may also end the passage sooner: the scorer
predicts <s> (the start of the next passage, i.e. the end of this one) after it; the <s> counts
in its log-probability but is never shown. Every way the text can go on then falls in exactly
one outcome (its first L words, or its first words and then the end), so the probabilities are
comparable and a short continuation is not favoured merely for being short.

    depth 1        depth 2              …   depth L
    [] ──┬─ w1 ──┬─ w1 w3 ──┬─ …           the B best live prefixes are kept at each depth;
         │       └─ w1 <end>│              (may_end) a prefix's end of passage becomes a
         └─ w2 ── …         └─ …           finished continuation, kept if among the B best

With B at least the number of outcomes (V^L words-only sequences for V suggestable words, plus
the shorter ended ones with may_end) nothing is pruned: the search is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .errors import RnnImeError
from .limits import MAX_BEAM, MAX_LENGTH
from .scoring import Scorer
from .vocab import BOS_ID, Vocab


@dataclass(frozen=True)
class Continuation:
    word_ids: tuple[int, ...]
    log_prob: float  # total: the words, and the end of the passage when ends_passage
    ends_passage: bool = False

    def as_dict(self, vocab: Vocab) -> dict[str, Any]:
        words = [vocab.word(i) for i in self.word_ids]
        return {"words": words, "text": "".join(words), "log_prob": round(self.log_prob, 4),
                "ends_passage": self.ends_passage}


@dataclass(frozen=True)
class _Live:
    word_ids: tuple[int, ...]
    log_prob: float
    state: Any
    next_log_probs: torch.Tensor  # (V,)


def check_beam(beam: int, length: int) -> None:
    if not 1 <= beam <= MAX_BEAM:
        raise RnnImeError(f"--beam must be between 1 and {MAX_BEAM}")
    if not 1 <= length <= MAX_LENGTH:
        raise RnnImeError(f"--length must be between 1 and {MAX_LENGTH}")


def _best(items: list[Continuation], beam: int) -> list[Continuation]:
    return sorted(items, key=lambda c: (-c.log_prob, c.word_ids))[:beam]


def beam_search(scorer: Scorer, context: Sequence[int], beam: int = 5, length: int = 3,
                may_end: bool = False, start: tuple[Any, torch.Tensor] | None = None
                ) -> list[Continuation]:
    """The `beam` most likely continuations of `context` (ids typed after <s>), best first.

    `start`: the scorer's (state, log_probs) after the context, when the caller has it."""
    check_beam(beam, length)
    allowed = torch.from_numpy(scorer.vocab.suggestable_mask())
    width = min(beam, int(allowed.sum()))
    live = [_Live((), 0.0, *(start if start is not None else scorer.read(context)))]
    finished: list[Continuation] = []
    for depth in range(1, length + 1):
        candidates: list[Continuation] = []  # live prefixes one word longer, parent in `owner`
        owner: dict[tuple[int, ...], _Live] = {}
        for parent in live:
            scores = parent.next_log_probs.double().cpu()
            if may_end and parent.word_ids and torch.isfinite(scores[BOS_ID]):
                finished.append(Continuation(parent.word_ids,
                                             parent.log_prob + float(scores[BOS_ID]), True))
            values, ids = scores.masked_fill(~allowed, float("-inf")).topk(width)
            for value, word_id in zip(values.tolist(), ids.tolist(), strict=True):
                if value != float("-inf"):
                    words = (*parent.word_ids, word_id)
                    candidates.append(Continuation(words, parent.log_prob + value))
                    owner[words] = parent
        finished = _best(finished, beam)
        kept = _best(candidates, beam)
        if depth == length or not kept:
            return _best(finished + kept, beam)
        stepped = scorer.step_batch([owner[c.word_ids].state for c in kept],
                                    [c.word_ids[-1] for c in kept])  # one batched step
        live = [_Live(c.word_ids, c.log_prob, *after)
                for c, after in zip(kept, stepped, strict=True)]
    return _best(finished, beam)
