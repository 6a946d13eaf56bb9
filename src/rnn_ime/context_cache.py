"""A scorer's states after contexts it has read, reused: typing costs a step, not a re-read.

A person types by appending to the text, so the words of one request are mostly the words of
the one before: the same prefix and a new or changed last word. `ContextCache.read(ids)` finds
the longest prefix of `ids` whose state it holds, steps only the words after it (each one
`scorer.step`), and keeps the states after `ids[:-1]` and after `ids` — the next keystroke
usually changes the last word, and then starts from `ids[:-1]`:

    request       words (ids)          longest cached prefix    work
    我今天去       我 今天 去            (none)                   read 我 今天, step 去
    我今天去公     我 今天 去 公         我 今天 去               step 公
    我今天去公园   我 今天 去 公园       我 今天 去               step 公园
    我今天去公园玩 我 今天 去 公园 玩    我 今天 去 公园          step 玩

When many words are new (a cold start, an edit far back), one `read` of the whole
context is cheaper than a step per word, and is used instead. Either way the answer is the
scorer's (state, log-probabilities) after <s> and `ids`: the same numbers as reading the whole
context from scratch, to float rounding. Written against the Scorer interface only (start, step,
read), so it serves every scorer.

Entries are keyed by the prefix's word ids and bounded in number (least recently used goes
first); each holds the state and the (V,) log-probabilities after it, about 4·V bytes. Lookups
cost O(len(ids)): each prefix's key is a hash chained from the one before, checked against the
stored ids on a match. The cache's own bookkeeping is thread-safe; the scorer is called outside
its lock (the server serialises inference itself). The log-probabilities handed out are shared:
read them, never write into them. A scorer whose answers change (one that learns) needs
`clear()` after it changes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .scoring import Scorer

DEFAULT_ENTRIES = 256


def steps_worth_it(new_words: int, total_words: int) -> bool:
    """Whether stepping `new_words` beats re-reading all `total_words` in one pass: with the
    default GRU on one thread a step costs ≈0.18 ms and a read ≈0.2 ms + 0.02 ms a word
    (bench/latency.py's model), so a step per word wins up to about 2 + n/9 new words."""
    return new_words <= 2 + total_words // 9


@dataclass(frozen=True)
class _Entry:
    ids: tuple[int, ...]
    state: Any
    log_probs: torch.Tensor


class ContextCache:
    def __init__(self, scorer: Scorer, entries: int = DEFAULT_ENTRIES) -> None:
        if entries < 2:
            raise ValueError("ContextCache: entries must be at least 2")
        self.scorer = scorer
        self.entries = entries
        self._cache: OrderedDict[tuple[int, int], _Entry] = OrderedDict()  # (length, hash)
        self._lock = threading.Lock()
        self.stats = {"hits": 0, "steps": 0, "reads": 0}

    def __len__(self) -> int:
        return len(self._cache)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def read(self, ids: Sequence[int]) -> tuple[Any, torch.Tensor]:
        """The scorer's (state, next-word log-probabilities) after <s> and `ids`."""
        ids = tuple(ids)
        keys = _prefix_keys(ids)
        found = self._longest(ids, keys)
        n = len(ids)
        if found is not None and len(found.ids) == n:
            self._count("hits")
            return found.state, found.log_probs
        if found is not None and steps_worth_it(n - len(found.ids), n):
            state, log_probs = found.state, found.log_probs
            for length in range(len(found.ids) + 1, n + 1):
                state, log_probs = self.scorer.step(state, ids[length - 1])
                self._count("steps")
                if length == n - 1:
                    self._put(keys[length], ids[:length], state, log_probs)
        elif n == 0:
            state, log_probs = self.scorer.read(())
            self._count("reads")
        else:
            state, log_probs = self.scorer.read(ids[:-1])
            self._count("reads")
            self._put(keys[n - 1], ids[:-1], state, log_probs)
            state, log_probs = self.scorer.step(state, ids[-1])
            self._count("steps")
        self._put(keys[n], ids, state, log_probs)
        return state, log_probs

    def _longest(self, ids: tuple[int, ...], keys: list[tuple[int, int]]) -> _Entry | None:
        with self._lock:
            for key in reversed(keys):
                entry = self._cache.get(key)
                if entry is not None and entry.ids == ids[:key[0]]:
                    self._cache.move_to_end(key)
                    return entry
        return None

    def _put(self, key: tuple[int, int], ids: tuple[int, ...], state: Any,
             log_probs: torch.Tensor) -> None:
        with self._lock:
            self._cache[key] = _Entry(ids, state, log_probs)
            self._cache.move_to_end(key)
            while len(self._cache) > self.entries:
                self._cache.popitem(last=False)

    def _count(self, what: str) -> None:
        with self._lock:
            self.stats[what] += 1


def _prefix_keys(ids: tuple[int, ...]) -> list[tuple[int, int]]:
    """(length, hash) of every prefix of `ids`, the empty one first, in one pass."""
    keys = [(0, 0)]
    chained = 0
    for length, word_id in enumerate(ids, 1):
        chained = hash((chained, word_id))
        keys.append((length, chained))
    return keys
