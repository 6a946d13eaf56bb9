"""The recurrent model and the Kneser-Ney n-gram mixed: p(w|h) = (1 − λ)·p_rnn(w|h) + λ·p_kn(w|h).

The two know different things: the n-gram remembers the exact phrases of the training text and
has seen every passage start; the recurrent model generalises across longer contexts and
similar words. A linear mixture of two distributions is a distribution (it sums to one), so
every consumer of the Scorer interface (evaluation, suggestions, beam, pinyin) takes it as is.

`rnn-ime mix --model M` fits λ on the validation split (a grid; the one with the best keystroke
savings, ties to the lower loss), compares it with the model alone and writes the choice into
the model dir:

    mixture.json   {"weight": λ, "order": 4, "chosen": "mixture" | "rnn", "validation": …}
    ngram.npz      the n-gram's tables (only when the mixture is chosen)

Loading a model dir (`load_scorer`) then gives the mixture wherever the model is used.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from .data import Split, every_kth_passage
from .errors import ConfigError, ModelError
from .fsutil import read_json, write_json
from .metrics import Judge, Tally
from .ngram import NgramScorer
from .scoring import Chunk, Scorer

MIXTURE_FILE = "mixture.json"
NGRAM_FILE = "ngram.npz"
WEIGHT_GRID = tuple(round(0.1 * i, 1) for i in range(11))
FIT_WORDS = 60_000  # validation words the weight is fitted on (evenly spaced passages)


def mix_log_probs(first: torch.Tensor, second: torch.Tensor, weight: float) -> torch.Tensor:
    """log((1 − w)·exp(first) + w·exp(second)), exactly either one at w = 0 or 1."""
    if weight <= 0.0:
        return first
    if weight >= 1.0:
        return second
    return torch.logaddexp(first.float() + math.log1p(-weight), second.float() + math.log(weight))


MixtureState = tuple[Any, Any]  # (the recurrent scorer's state, the n-gram's state)


class MixtureScorer(Scorer[MixtureState]):
    """Any scorer (the recurrent model, under torch or ONNX) mixed with an n-gram. Its state is
    the pair of the two scorers' states."""

    def __init__(self, first: Scorer, ngram: NgramScorer, weight: float) -> None:
        if not 0.0 <= weight <= 1.0:
            raise ConfigError(f"the mixture weight must be in [0, 1], not {weight}")
        if first.vocab.sha256 != ngram.vocab.sha256:
            raise ModelError("the n-gram and the model have different vocabularies")
        self.first, self.ngram, self.weight = first, ngram, weight
        self.vocab = first.vocab
        self.name = f"{first.name}+{ngram.name}"

    def log_probs(self, contexts: Sequence[Sequence[int]]) -> torch.Tensor:
        return mix_log_probs(self.first.log_probs(contexts), self.ngram.log_probs(contexts),
                             self.weight)

    def start(self) -> MixtureState:
        return self.first.start(), self.ngram.start()

    def step_batch(self, states: Sequence[MixtureState], word_ids: Sequence[int]
                   ) -> list[tuple[MixtureState, torch.Tensor]]:
        firsts = self.first.step_batch([s[0] for s in states], word_ids)
        seconds = self.ngram.step_batch([s[1] for s in states], word_ids)
        return [((a_state, b_state), mix_log_probs(a, b, self.weight))
                for (a_state, a), (b_state, b) in zip(firsts, seconds, strict=True)]

    def read(self, context: Sequence[int]) -> tuple[MixtureState, torch.Tensor]:
        a_state, a = self.first.read(context)
        b_state, b = self.ngram.read(context)
        return (a_state, b_state), mix_log_probs(a, b, self.weight)

    def split_log_probs(self, split: Split) -> Iterator[Chunk]:
        for log_probs, targets, offsets in self.first.split_log_probs(split):
            yield (mix_log_probs(log_probs, self.ngram.log_probs_at(split, offsets),
                                 self.weight), targets, offsets)


# ---------------------------------------------------------------- fitting the weight

def weight_curve(first: Scorer, ngram: NgramScorer, split: Split,
                 grid: Sequence[float] = WEIGHT_GRID) -> dict[float, dict]:
    """Every weight of the grid scored on `split` in one pass over it: {λ: metrics}."""
    judge = Judge(first.vocab)
    tallies = {weight: Tally() for weight in grid}
    for log_probs, targets, offsets in first.split_log_probs(split):
        other = ngram.log_probs_at(split, offsets)
        for weight, tally in tallies.items():
            nll, hits, cost = judge(mix_log_probs(log_probs, other, weight), targets)
            tally.add(nll, hits, cost=cost)
    return {weight: tally.summary() for weight, tally in tallies.items()}


def best_weight(curve: dict[float, dict]) -> float:
    """The weight with the best keystroke savings (KSR@5), ties to the lower loss."""
    return max(curve, key=lambda w: (curve[w].get("ksr5", 0.0), -curve[w]["loss"]))


def fit(first: Scorer, ngram: NgramScorer, valid: Split, max_words: int | None = FIT_WORDS,
        grid: Sequence[float] = WEIGHT_GRID) -> dict:
    """Fit λ on (evenly spaced passages of) the validation split; the record of mixture.json."""
    subset = every_kth_passage(valid, max_words)
    curve = weight_curve(first, ngram, subset, grid)
    weight = best_weight(curve)
    n_words = curve[weight]["words"]
    return {"weight": weight, "order": ngram.order,
            "chosen": "rnn" if weight == 0.0 else "mixture",
            "fitted_on_words": n_words,
            "validation": {str(w): {k: r[k] for k in ("loss", "perplexity", "top1", "top5",
                                                      "ksr1", "ksr5") if k in r}
                           for w, r in curve.items()}}


def save(model_dir: Path, record: dict, ngram: NgramScorer) -> None:
    if record["chosen"] == "mixture":
        ngram.save(model_dir / NGRAM_FILE)
    elif (model_dir / NGRAM_FILE).exists():
        (model_dir / NGRAM_FILE).unlink()
    write_json(model_dir / MIXTURE_FILE, record)


def load_scorer(model_dir: str | Path, scorer: Scorer, use_mixture: bool = True) -> Scorer:
    """The model dir's chosen scorer around `scorer` (the model alone when no mixture was
    fitted, or when it is turned off)."""
    model_dir = Path(model_dir)
    path = model_dir / MIXTURE_FILE
    if not use_mixture or not path.is_file():
        return scorer
    record = read_json(path)
    if not isinstance(record, dict) or record.get("chosen") not in ("rnn", "mixture") \
            or not isinstance(record.get("weight"), int | float):
        raise ModelError(f"{path}: not a mixture record; delete it or rerun `rnn-ime mix`")
    if record["chosen"] == "rnn":
        return scorer
    ngram = NgramScorer.load(model_dir / NGRAM_FILE, scorer.vocab)
    return MixtureScorer(scorer, ngram, float(record["weight"]))


def describe(scorer: Scorer) -> str:
    """One line saying what scores: the model alone, or the mixture and its weight."""
    if isinstance(scorer, MixtureScorer):
        return (f"{scorer.name}: (1 − {scorer.weight:g})·p_model + {scorer.weight:g}·p_kn "
                "(weight fitted on validation by `rnn-ime mix`)")
    return f"{scorer.name} alone"
