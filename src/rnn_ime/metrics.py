"""Metrics shared by every scorer: cross-entropy, perplexity, top-k accuracy, keystroke savings.

Every word of the evaluated passages counts; a word outside the vocabulary is always a miss,
since <unk> (like <pad> and <s>) is never suggested. Keystroke savings (KSR@k): see keystrokes.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .data import Split
from .keystrokes import SELECT_KEYS, keystroke_costs
from .scoring import Scorer

KS = (1, 3, 5)
CONTEXT_BUCKETS = ((0, 0, "0"), (1, 1, "1"), (2, 2, "2"), (3, 4, "3-4"), (5, 9, "5-9"),
                   (10, None, "10+"))


@dataclass
class Tally:
    words: int = 0
    nll: float = 0.0
    hits: dict[int, int] = field(default_factory=lambda: dict.fromkeys(KS, 0))
    keys: float = 0.0  # keystrokes to type every word in full
    typed: dict[int, float] = field(default_factory=lambda: dict.fromkeys(KS, 0.0))

    def add(self, nll: torch.Tensor, hits: torch.Tensor, where: np.ndarray | None = None,
            cost: torch.Tensor | None = None) -> None:
        """`cost`: (N,) keystrokes of each target typed in full (no cost: no KSR)."""
        if where is not None:
            selector = torch.from_numpy(where)
            nll, hits = nll[selector], hits[selector]
            cost = None if cost is None else cost[selector]
        self.words += int(nll.numel())
        self.nll += float(nll.double().sum())
        for column, k in enumerate(KS):
            self.hits[k] += int(hits[:, column].sum())
        if cost is not None:
            self.keys += float(cost.sum())
            for column, k in enumerate(KS):
                self.typed[k] += float(torch.where(hits[:, column], SELECT_KEYS, cost).sum())

    def merged(self, other: Tally) -> Tally:
        """The tally of both sets of words together."""
        return Tally(self.words + other.words, self.nll + other.nll,
                     {k: self.hits[k] + other.hits[k] for k in KS}, self.keys + other.keys,
                     {k: self.typed[k] + other.typed[k] for k in KS})

    def summary(self) -> dict[str, float]:
        if self.words == 0:
            return {"words": 0}
        loss = self.nll / self.words
        return {"words": self.words, "loss": round(loss, 4),
                "perplexity": round(math.exp(min(loss, 50.0)), 2),
                **{f"top{k}": round(self.hits[k] / self.words, 4) for k in KS},
                **({f"ksr{k}": round(1 - self.typed[k] / self.keys, 4) for k in KS}
                   if self.keys else {})}


@dataclass
class PassageTally:
    """What `Tally` counts, kept per passage and context bucket, so that an interval can
    resample whole passages (the words of one passage are not independent of each other)."""
    words: np.ndarray  # (passages, buckets)
    hits: np.ndarray  # (passages, buckets, len(KS))
    keys: np.ndarray  # (passages, buckets)
    typed: np.ndarray  # (passages, buckets, len(KS))

    @classmethod
    def empty(cls, passages: int) -> PassageTally:
        shape = (passages, len(CONTEXT_BUCKETS))
        return cls(np.zeros(shape), np.zeros((*shape, len(KS))), np.zeros(shape),
                   np.zeros((*shape, len(KS))))

    def add(self, passage: np.ndarray, bucket: np.ndarray, hits: torch.Tensor,
            cost: torch.Tensor) -> None:
        where = (passage, bucket)
        np.add.at(self.words, where, 1.0)
        np.add.at(self.hits, where, hits.numpy().astype(np.float64))
        np.add.at(self.keys, where, cost.numpy().astype(np.float64))
        typed = torch.where(hits, SELECT_KEYS, cost[:, None].float())
        np.add.at(self.typed, where, typed.numpy().astype(np.float64))


INTERVAL_FIGURES = ("top1", "ksr5")
INTERVAL_ROUNDS = 1000  # bootstrap resamplings behind each interval


def figure_of(words: np.ndarray, hits: np.ndarray, keys: np.ndarray, typed: np.ndarray,
              name: str) -> np.ndarray:
    """top-k or KSR@k from summed counts (any leading shape; the last axis of hits/typed is
    KS)."""
    k = int(name[-1])
    column = KS.index(k)
    with np.errstate(invalid="ignore", divide="ignore"):
        if name.startswith("top"):
            return hits[..., column] / words
        return 1.0 - typed[..., column] / keys


def difference_intervals(first: PassageTally, second: PassageTally,
                         rounds: int = INTERVAL_ROUNDS,
                         level: float = 0.95, seed: int = 0) -> dict[str, dict]:
    """first − second for INTERVAL_FIGURES, over all words and in each context bucket, with a
    paired bootstrap interval: the same passages resampled for both, `rounds` times."""
    passages = first.words.shape[0]
    counts = np.random.default_rng(seed).multinomial(
        passages, np.full(passages, 1.0 / passages), size=rounds).astype(np.float64)
    tail = (1.0 - level) / 2.0
    out: dict[str, dict] = {}
    labels = ["all", *(label for _, _, label in CONTEXT_BUCKETS)]
    sums = []  # per side: the counts summed over the passages, and over each resampling
    for tally in (first, second):
        parts = [np.concatenate([p.sum(axis=1, keepdims=True), p], axis=1)  # "all" first
                 for p in (tally.words, tally.hits, tally.keys, tally.typed)]
        sums.append(([p.sum(axis=0) for p in parts],
                     [np.tensordot(counts, p, axes=1) for p in parts]))
    for name in INTERVAL_FIGURES:
        (first_point, first_rounds), (second_point, second_rounds) = sums
        point = figure_of(*first_point, name) - figure_of(*second_point, name)
        spread = figure_of(*first_rounds, name) - figure_of(*second_rounds, name)
        counted = np.flatnonzero(np.isfinite(point))  # a bucket no word fell in has none
        low, high = np.full(len(labels), np.nan), np.full(len(labels), np.nan)
        low[counted], high[counted] = np.nanquantile(spread[:, counted], [tail, 1.0 - tail],
                                                     axis=0)
        for i in counted.tolist():
            out.setdefault(labels[i], {})[name] = {
                "difference": round(float(point[i]), 4), "low": round(float(low[i]), 4),
                "high": round(float(high[i]), 4)}
    return {label: out[label] for label in labels if label in out}


class Judge:
    """What each target of a chunk scores: (nll (N,), hits (N, len(KS)), full cost (N,))."""

    def __init__(self, vocab) -> None:
        self.never = torch.from_numpy(~vocab.suggestable_mask())  # <pad> <unk> <s>
        self.costs = torch.from_numpy(keystroke_costs(vocab).copy())

    def __call__(self, log_probs: torch.Tensor, targets: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        log_probs = log_probs.float().cpu()
        nll = -log_probs.gather(1, targets[:, None])[:, 0]
        top = log_probs.masked_fill(self.never, float("-inf")).topk(max(KS), dim=1).indices
        found = (top == targets[:, None]).cumsum(dim=1) > 0
        hits = torch.stack([found[:, k - 1] for k in KS], dim=1)
        return nll, hits, self.costs[targets]


def context_bucket(lengths: np.ndarray) -> np.ndarray:
    """The index in CONTEXT_BUCKETS of each context length (words since the passage's <s>)."""
    lows = np.asarray([low for low, _, _ in CONTEXT_BUCKETS])
    return np.searchsorted(lows, lengths, side="right") - 1


def context_lengths(split: Split, offsets: np.ndarray) -> np.ndarray:
    """How many words of the same passage precede each target offset."""
    passage = np.searchsorted(split.starts, offsets, side="right") - 1
    return offsets - split.starts[passage] - 1


def evaluate(scorer: Scorer, split: Split, source_names: list[str] | None = None,
             max_words: int | None = None, by_passage: PassageTally | None = None) -> dict:
    """Score every word of `split` (or the first `max_words` chunks' worth) with `scorer`
    (counting into `by_passage` too, when given: PassageTally.empty(len(split.starts)))."""
    judge = Judge(scorer.vocab)
    overall = Tally()
    by_source = {name: Tally() for name in (source_names or [])}
    by_context = {label: Tally() for _, _, label in CONTEXT_BUCKETS}
    for log_probs, targets, offsets in scorer.split_log_probs(split):
        nll, hits, cost = judge(log_probs, targets)
        overall.add(nll, hits, cost=cost)
        if len(by_source) > 1:
            passage = np.searchsorted(split.starts, offsets, side="right") - 1
            sources = split.passages[passage, 1]
            for index, name in enumerate(source_names or []):
                by_source[name].add(nll, hits, sources == index, cost)
        buckets = context_bucket(context_lengths(split, offsets))
        for index, (_, _, label) in enumerate(CONTEXT_BUCKETS):
            by_context[label].add(nll, hits, buckets == index, cost)
        if by_passage is not None:
            by_passage.add(np.searchsorted(split.starts, offsets, side="right") - 1, buckets,
                           hits, cost)
        if max_words is not None and overall.words >= max_words:
            break
    result = overall.summary()
    if len(by_source) > 1:
        result["by_source"] = {name: t.summary() for name, t in by_source.items()}
    result["by_context"] = {label: t.summary() for label, t in by_context.items()}
    return result


def format_table(rows: dict[str, dict], title: str = "") -> str:
    """A plain-text table: one row per named result (KSR columns when the results have them)."""
    ksr = any("ksr1" in r for r in rows.values())
    header = f"{'':<14}{'words':>9}{'loss':>8}{'ppl':>9}{'top-1':>8}{'top-3':>8}{'top-5':>8}"
    header += "".join(f"{f'KSR@{k}':>8}" for k in KS) if ksr else ""
    lines = [title] if title else []
    lines.append(header)
    for name, r in rows.items():
        if not r.get("words"):
            lines.append(f"{name:<14}{0:>9}")
            continue
        lines.append(f"{name:<14}{r['words']:>9}{r['loss']:>8.3f}{r['perplexity']:>9.1f}"
                     f"{r['top1']:>8.1%}{r['top3']:>8.1%}{r['top5']:>8.1%}"
                     + ("".join(f"{r.get(f'ksr{k}', 0):>8.1%}" for k in KS) if ksr else ""))
    return "\n".join(lines)


def format_comparison(results: dict[str, dict], title: str = "") -> str:
    """Models side by side: every figure, then top-1 / top-5 by words of context."""
    width = max(14, *(len(name) + 2 for name in results))
    lines = [title] if title else []
    lines.append(f"{'':<{width}}{'words':>9}{'ppl':>9}"
                 + "".join(f"{f'top-{k}':>8}" for k in KS)
                 + "".join(f"{f'KSR@{k}':>8}" for k in KS))
    for name, r in results.items():
        if not r.get("words"):
            lines.append(f"{name:<{width}}{0:>9}")
            continue
        lines.append(f"{name:<{width}}{r['words']:>9}{r['perplexity']:>9.1f}"
                     + "".join(f"{r[f'top{k}']:>8.1%}" for k in KS)
                     + "".join(f"{r.get(f'ksr{k}', 0):>8.1%}" for k in KS))
    labels = [label for _, _, label in CONTEXT_BUCKETS]
    for k in (1, 5):
        lines.append(f"\ntop-{k} by words of context before the predicted word")
        lines.append(f"{'':<{width}}" + "".join(f"{label:>8}" for label in labels))
        first = next(iter(results.values()), {}).get("by_context", {})
        lines.append(f"{'words':<{width}}" + "".join(
            f"{first.get(label, {}).get('words', 0):>8}" for label in labels))
        for name, r in results.items():
            if "by_context" not in r:
                continue
            buckets = r["by_context"]
            cells = [buckets.get(label, {}).get(f"top{k}") for label in labels]
            lines.append(f"{name:<{width}}" + "".join(
                f"{'-':>8}" if cell is None else f"{cell:>8.1%}" for cell in cells))
    return "\n".join(lines)


def format_intervals(intervals: dict[str, dict], name: str, rounds: int) -> str:
    """The differences of difference_intervals as a table, one row per figure."""
    labels = list(intervals)
    lines = [f"{name}, by words of context (95% interval: {rounds:,} resamplings of the "
             "passages, the same for both)",
             f"{'':<8}" + "".join(f"{label:>22}" for label in labels)]
    for figure in INTERVAL_FIGURES:
        cells = []
        for label in labels:
            cell = intervals[label][figure]
            cells.append(f"{cell['difference'] * 100:+.1f} [{cell['low'] * 100:+.1f}, "
                         f"{cell['high'] * 100:+.1f}]")
        title = f"top-{figure[-1]}" if figure.startswith("top") else f"KSR@{figure[-1]}"
        lines.append(f"{title:<8}" + "".join(f"{cell:>22}" for cell in cells))
    return "\n".join(lines)
