"""The recurrent model and the Kneser-Ney n-gram mixed: p(w|h) = (1 − λ)·p_rnn(w|h) + λ·p_kn(w|h).

The two know different things: the n-gram remembers the exact phrases of the training text and
has seen every passage start; the recurrent model generalises across longer contexts and
similar words. A linear mixture of two distributions is a distribution (it sums to one), so
every consumer of the Scorer interface (evaluation, suggestions, beam, pinyin) takes it as is.

λ depends on how many words of the passage precede the predicted one (the buckets of
metrics.CONTEXT_BUCKETS: 0, 1, 2, 3–4, 5–9, 10+): at a passage's first word the n-gram's
counts of first words are hard to beat, deep in a passage the recurrent model knows more.
`rnn-ime mix --model M` scores λ = 0, 0.1, …, 1 in each bucket on the validation split, keeps
for each the one with the best top-1 + KSR@5 (ties to the lower loss), except at a passage's
first word, where it keeps the one with the lowest loss (`best_first_word_weight`), and writes
the choice into the model dir:

    mixture.json   {"weights": [λ per bucket], "order": 4, "chosen": "mixture" | "rnn", …}
    ngram.npz      the n-gram's tables (only when the mixture is chosen)

Loading a model dir (`load_scorer`) then gives the mixture wherever the model is used.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import Split, every_kth_passage
from .errors import ConfigError, ModelError
from .fsutil import read_json_object, sha256_file, write_json
from .metrics import CONTEXT_BUCKETS, Judge, Tally, context_bucket, context_lengths
from .modeldir import weights_file
from .ngram import NgramScorer
from .scoring import Chunk, Scorer
from .vocab import BOS_ID

MIXTURE_FILE = "mixture.json"
NGRAM_FILE = "ngram.npz"
WEIGHT_GRID = tuple(round(0.1 * i, 1) for i in range(11))
FIT_WORDS = 60_000  # validation words the weights are fitted on (evenly spaced passages)
BUCKET_LABELS = tuple(label for _, _, label in CONTEXT_BUCKETS)


def mix_log_probs(first: torch.Tensor, second: torch.Tensor,
                  weight: float | torch.Tensor) -> torch.Tensor:
    """log((1 − w)·exp(first) + w·exp(second)); `weight` one number, or one per row (N,)."""
    if not isinstance(weight, torch.Tensor):
        if weight <= 0.0:
            return first
        if weight >= 1.0:
            return second
        weight = torch.tensor(weight)
    second = second.to(first.device)
    weight = weight.to(first.device, torch.float64)
    keep = torch.log1p(-weight).float()  # -inf at w = 1, so that row is exactly `second`
    take = torch.log(weight).float()  # -inf at w = 0
    if weight.ndim == 1:
        keep, take = keep[:, None], take[:, None]
    return torch.logaddexp(first.float() + keep, second.float() + take)


def mix_probabilities(first: torch.Tensor, second: torch.Tensor, weight: torch.Tensor
                      ) -> torch.Tensor:
    """log((1 − w)·first + w·second) for two (N, V) float32 probability tensors and one
    weight per row, every weight above 0 (`first` is written over). One log per word, where
    mixing log-probabilities costs a log_softmax, two exps, a log1p and a max."""
    column = weight.to(torch.float32)[:, None]
    return first.mul_(1.0 - column).add_(second.mul_(column)).log_()


MixtureState = tuple[Any, Any, int]  # (model's state, n-gram's state, words since <s>)


class MixtureScorer(Scorer[MixtureState]):
    """Any scorer (the recurrent model, under torch or ONNX) mixed with an n-gram, with one
    weight per context-length bucket. Its state: the two scorers' states and how many words
    the passage has so far."""

    def __init__(self, first: Scorer, ngram: NgramScorer, weights: Sequence[float]) -> None:
        if len(weights) != len(CONTEXT_BUCKETS) or any(not 0.0 <= w <= 1.0 for w in weights):
            raise ConfigError(f"the mixture needs {len(CONTEXT_BUCKETS)} weights in [0, 1] "
                              "(one per context-length bucket)")
        if first.vocab.sha256 != ngram.vocab.sha256:
            raise ModelError("the n-gram and the model have different vocabularies")
        self.first, self.ngram = first, ngram
        self.weights = tuple(float(w) for w in weights)
        self.vocab = first.vocab
        self.name = f"{first.name}+{ngram.name}"

    def weight_of(self, lengths: Sequence[int] | np.ndarray) -> torch.Tensor:
        """λ for each context length (words since the passage's <s>)."""
        return torch.tensor(self.weights)[context_bucket(np.asarray(lengths))]

    def log_probs(self, contexts: Sequence[Sequence[int]]) -> torch.Tensor:
        return mix_log_probs(self.first.log_probs(contexts), self.ngram.log_probs(contexts),
                             self.weight_of([_words_since_start(c) for c in contexts]))

    def start(self) -> MixtureState:
        return self.first.start(), self.ngram.start(), 0

    @torch.inference_mode()
    def step_batch(self, states: Sequence[MixtureState], word_ids: Sequence[int]
                   ) -> list[tuple[MixtureState, torch.Tensor]]:
        if not states:
            return []
        lengths = [0 if w == BOS_ID else s[2] + 1 for s, w in zip(states, word_ids, strict=True)]
        weights = self.weight_of(lengths)
        if bool((weights > 0.0).all()):
            firsts, first = self.first.step_probabilities([s[0] for s in states], word_ids)
            seconds, second = self.ngram.step_probabilities([s[1] for s in states], word_ids)
            mixed = mix_probabilities(first, second, weights)
        else:  # a row of weight 0 is the model's own log-probabilities, exactly
            a_stepped = self.first.step_batch([s[0] for s in states], word_ids)
            b_stepped = self.ngram.step_batch([s[1] for s in states], word_ids)
            firsts, seconds = [a for a, _ in a_stepped], [b for b, _ in b_stepped]
            mixed = mix_log_probs(torch.stack([a for _, a in a_stepped]),
                                  torch.stack([b for _, b in b_stepped]), weights)
        return [((a_state, b_state, n), mixed[i]) for i, (a_state, b_state, n)
                in enumerate(zip(firsts, seconds, lengths, strict=True))]

    def read(self, context: Sequence[int]) -> tuple[MixtureState, torch.Tensor]:
        a_state, a = self.first.read(context)
        b_state, b = self.ngram.read(context)
        n = _words_since_start(context)
        return (a_state, b_state, n), mix_log_probs(a[None], b[None], self.weight_of([n]))[0]

    def split_log_probs(self, split: Split) -> Iterator[Chunk]:
        for log_probs, targets, offsets in self.first.split_log_probs(split):
            weights = self.weight_of(context_lengths(split, offsets))
            yield (mix_log_probs(log_probs, self.ngram.log_probs_at(split, offsets), weights),
                   targets, offsets)


def _words_since_start(context: Sequence[int]) -> int:
    """Words typed since the last <s> of a context (the context itself follows one)."""
    ids = list(context)
    return ids[::-1].index(BOS_ID) if BOS_ID in ids else len(ids)


# ---------------------------------------------------------------- fitting the weights

def weight_curves(first: Scorer, ngram: NgramScorer, split: Split,
                  grid: Sequence[float] = WEIGHT_GRID) -> list[dict[float, Tally]]:
    """Every weight of the grid scored on `split` in one pass over it, per context-length
    bucket: [{λ: tally} for each bucket]."""
    judge = Judge(first.vocab)
    curves = [{weight: Tally() for weight in grid} for _ in CONTEXT_BUCKETS]
    for log_probs, targets, offsets in first.split_log_probs(split):
        other = ngram.log_probs_at(split, offsets)
        buckets = context_bucket(context_lengths(split, offsets))
        for weight in grid:
            nll, hits, cost = judge(mix_log_probs(log_probs, other, weight), targets)
            for index, curve in enumerate(curves):
                curve[weight].add(nll, hits, buckets == index, cost)
    return curves


def best_weight(curve: dict[float, Tally]) -> float:
    """The weight with the best top-1 + KSR@5 (the two figures a user feels: the first
    suggestion, and the keystrokes that five suggestions save), ties to the lower loss; 0 (the
    model alone) for a bucket without words."""
    scored = {w: t.summary() for w, t in curve.items() if t.words}
    if not scored:
        return 0.0
    return max(scored, key=lambda w: (round(scored[w]["top1"] + scored[w].get("ksr5", 0.0), 6),
                                      -scored[w]["loss"]))


def best_first_word_weight(curve: dict[float, Tally]) -> float:
    """The weight with the lowest loss, for a passage's first word.

    With no context both scorers give one fixed distribution, the same for every passage, so
    top-1 there is the share of the one word ranked first, and which first word is most common
    changes from split to split more than from ranker to ranker (on the embedded corpus: 在 in
    train, 1 in valid, from articles of numbered paragraphs). Choosing by top-1 would choose
    the validation articles' favourite; the loss weighs every first word."""
    scored = {w: t.summary()["loss"] for w, t in curve.items() if t.words}
    return min(scored, key=lambda w: (scored[w], w)) if scored else 0.0


def _total(tallies: Sequence[Tally]) -> Tally:
    total = Tally()
    for tally in tallies:
        total = total.merged(tally)
    return total


FIGURES = ("words", "loss", "perplexity", "top1", "top5", "ksr1", "ksr5")


def _figures(tally: Tally) -> dict:
    summary = tally.summary()
    return {k: summary[k] for k in FIGURES if k in summary}


def fit(first: Scorer, ngram: NgramScorer, valid: Split, max_words: int | None = FIT_WORDS,
        grid: Sequence[float] = WEIGHT_GRID) -> dict:
    """Fit one λ per context-length bucket on (evenly spaced passages of) the validation
    split; the record of mixture.json, with the validation figures of the model alone, of the
    n-gram alone, of the best single λ and of the fitted weights."""
    curves = weight_curves(first, ngram, every_kth_passage(valid, max_words), grid)
    weights = [best_first_word_weight(curves[0]),
               *(best_weight(curve) for curve in curves[1:])]
    single = {w: _total([curve[w] for curve in curves]) for w in grid}
    best_single = best_weight(single)
    compare = {"model alone": single[0.0] if 0.0 in single else None,
               "n-gram alone": single[1.0] if 1.0 in single else None,
               f"one weight, {best_single:g}": single[best_single],
               "weights by context": _total([curve[w] for curve, w in
                                             zip(curves, weights, strict=True)])}
    return {"weights": weights, "order": ngram.order,
            "chosen": "rnn" if not any(weights) else "mixture",
            "buckets": list(BUCKET_LABELS),
            "validation": {name: _figures(t) for name, t in compare.items() if t is not None},
            "by_bucket": {label: {str(w): _figures(t) for w, t in curve.items()}
                          for label, curve in zip(BUCKET_LABELS, curves, strict=True)}}


def save(model_dir: Path, record: dict, ngram: NgramScorer) -> None:
    """mixture.json (with the hash of the weights it was fitted for) and, for a mixture, the
    n-gram; a stop between two writes never leaves a record that names a missing n-gram."""
    record = {**record, "weights_sha256": sha256_file(weights_file(model_dir))}
    if record["chosen"] == "mixture":
        ngram.save(model_dir / NGRAM_FILE)
        write_json(model_dir / MIXTURE_FILE, record)
    else:
        write_json(model_dir / MIXTURE_FILE, record)
        (model_dir / NGRAM_FILE).unlink(missing_ok=True)


def load_scorer(model_dir: str | Path, scorer: Scorer, use_mixture: bool = True) -> Scorer:
    """The model dir's chosen scorer around `scorer` (the model alone when no mixture was
    fitted, or when it is turned off). A record fitted for other weights (the model was
    trained again since `rnn-ime mix`) is refused."""
    model_dir = Path(model_dir)
    path = model_dir / MIXTURE_FILE
    if not use_mixture or not path.is_file():
        return scorer
    record = read_json_object(path, ModelError)
    weights = record.get("weights")
    if record.get("chosen") not in ("rnn", "mixture") or not isinstance(weights, list) \
            or len(weights) != len(CONTEXT_BUCKETS) or not all(
                isinstance(w, int | float) and not isinstance(w, bool) and 0.0 <= w <= 1.0
                for w in weights):
        raise ModelError(f"{path}: not a mixture record; delete it or rerun `rnn-ime mix`")
    if record.get("weights_sha256") != sha256_file(weights_file(model_dir)):
        raise ModelError(f"{path}: fitted for other weights (the model was trained again "
                         "since); rerun `rnn-ime mix`, or pass --no-mixture")
    if record["chosen"] == "rnn":
        return scorer
    ngram = NgramScorer.load(model_dir / NGRAM_FILE, scorer.vocab)
    return MixtureScorer(scorer, ngram, weights)


def describe(scorer: Scorer) -> str:
    """One line saying what scores: the model alone, or the mixture and its weights."""
    if isinstance(scorer, MixtureScorer):
        weights = ", ".join(f"{label}: {w:g}" for label, w in
                            zip(BUCKET_LABELS, scorer.weights, strict=True))
        return (f"{scorer.name}: (1 − λ)·p_model + λ·p_kn, λ by words of context ({weights}; "
                "fitted on validation by `rnn-ime mix`)")
    return f"{scorer.name} alone"
