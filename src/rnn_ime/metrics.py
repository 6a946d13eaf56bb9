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
             max_words: int | None = None) -> dict:
    """Score every word of `split` (or the first `max_words` chunks' worth) with `scorer`."""
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
