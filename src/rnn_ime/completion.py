"""Multi-word continuations for `POST /api/complete`: the seam between the server and beam search.

The real beam search lives in `rnn_ime.beam` (written on another branch). Until that module is
there, `fallback_beam_search` below, a small beam search over the scorer's `start()/step()`
interface, answers instead. Both follow one contract, and `find_search()` is the only place
that picks one, so swapping in the real search touches nothing else:

    search(scorer, context_ids, beam, length) -> [(word_ids, log_prob), ...]  best first

`context_ids` are the typed words (no leading <s>); each continuation has at most `length`
words; at most `beam` continuations come back.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .scoring import NeuralScorer, RecurrentState, Scorer
from .vocab import BOS_ID

Search = Callable[[Scorer, Sequence[int], int, int], list[tuple[list[int], float]]]


@dataclass(frozen=True)
class _Hypothesis:
    ids: tuple[int, ...]
    log_prob: float
    state: Any
    next_log_probs: torch.Tensor | None  # None once the last word is chosen (no step needed)


def state_after(scorer: Scorer, context_ids: Sequence[int]) -> tuple[Any, torch.Tensor]:
    """The scorer's state and next-word log-probabilities after <s> and the context.

    Stepping word by word costs one model call per word (seconds for a 2,000-character text),
    so the neural scorer reads the context in one pass: an lm model runs the whole sequence at
    once; a window model needs only its last seq_len words.
    """
    ids = [BOS_ID, *context_ids]
    if isinstance(scorer, NeuralScorer):
        if scorer.model.config.objective == "lm":
            with torch.inference_mode():
                features, hidden = scorer.model(torch.tensor([ids], device=scorer.device))
                state = RecurrentState(hidden, (), features[:, -1])
                return state, scorer.model.log_probs(state.features)[0]
        before_last = tuple(ids[:-1][max(0, len(ids) - scorer.seq_len):])
        return scorer.step(RecurrentState(None, before_last), ids[-1])
    state = scorer.start()
    for word_id in ids:
        state, log_probs = scorer.step(state, word_id)
    return state, log_probs


def fallback_beam_search(scorer: Scorer, context_ids: Sequence[int], beam: int,
                         length: int) -> list[tuple[list[int], float]]:
    """Keep the `beam` best partial continuations, extending each by its `beam` best words.

    Only suggestable words extend a continuation (never <pad>, <unk> or <s>); beam=1 is greedy.
    """
    never = torch.from_numpy(~scorer.vocab.suggestable_mask())
    width = min(beam, int((~never).sum()))
    state, log_probs = state_after(scorer, context_ids)
    beams = [_Hypothesis((), 0.0, state, log_probs)]
    for position in range(length):
        candidates: list[tuple[float, _Hypothesis, int]] = []
        for hyp in beams:
            masked = hyp.next_log_probs.float().cpu().masked_fill(never, float("-inf"))
            values, ids = masked.topk(width)
            candidates += [(hyp.log_prob + float(v), hyp, int(i))
                           for v, i in zip(values, ids, strict=True)]
        candidates.sort(key=lambda c: c[0], reverse=True)
        last = position == length - 1
        beams = []
        for score, hyp, word_id in candidates[:beam]:
            new_state, new_log_probs = (None, None) if last else scorer.step(hyp.state, word_id)
            beams.append(_Hypothesis((*hyp.ids, word_id), score, new_state, new_log_probs))
    return [(list(h.ids), h.log_prob) for h in beams]


def find_search() -> tuple[str, Search]:
    """The real beam search when `rnn_ime.beam` exists, else the fallback (name, function)."""
    try:
        module = importlib.import_module("rnn_ime.beam")
    except ModuleNotFoundError as exc:
        if exc.name != "rnn_ime.beam":
            raise  # the module is there but something it imports is not: a bug, not absence
        return "fallback", fallback_beam_search
    # Adapt here if the real function's signature differs from the contract above.
    return "rnn_ime.beam", module.beam_search
