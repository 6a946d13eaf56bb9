"""The n-gram baseline: interpolated modified Kneser-Ney (Chen & Goodman 1998), in NumPy.

Trained on the training split of a data dir, with its vocabulary, and scored through the same
Scorer interface as the recurrent model, so every metric compares the two by construction.

Counting. Every token after a passage's <s> is a target, including the <s> that follows the
passage's last word (the end of the passage: the recurrent model, trained on the passage
stream, predicts it too); a history never reaches back past the passage's own <s>.

Tables, one per order j = 1..n: a trie stored as sorted int64 keys, no Python object per n-gram,

    order 1: key = word id (every id of the vocabulary)
    order j: key = (id of its first j-1 words in table j-1) · V + its last word

so the extensions of one history are one contiguous run of table j (CSR offsets `begin`).

Probabilities, for a history h (the last n-1 ids of <s> + context) and h' = h minus its first id:

    p_j(w|h) = (a_j(hw) − D_j(a_j(hw))) / A_j(h)  +  γ_j(h) · p_{j−1}(w|h')
    A_j(h) = Σ_w a_j(hw)     γ_j(h) = (D_j1·N1(h·) + D_j2·N2(h·) + D_j3+·N3+(h·)) / A_j(h)
    p_1(w) = (a_1(w) − D_1(a_1(w))) / A_1  +  γ_1 / (V − 1)        (uniform: every id but <pad>)

a_j is the raw count at the highest order and for n-grams that begin with <s> (nothing can
precede them), else the continuation count N1+(·g), the number of distinct words seen before g.
Discounts come from each order's counts of counts: Y = n1/(n1+2n2), D_r = r − (r+1)·Y·n_{r+1}/n_r.
A history never seen at order j, or longer than what was typed since <s>, passes p_{j−1} on
unchanged (γ = 1). Unrolled, one context's distribution is one dense vector plus sparse runs:

    p_n(·|h) = Γ · p_1 + Σ_{j=2..n} W_j · S_j(h_j)     W_j = Π_{i>j} γ_i,  Γ = Π_{j≥2} γ_j

where S_j(h_j) is the discounted run of h_j's extensions. It sums to 1 by telescoping; <pad>
gets 0.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from .data import DataDir, Split, target_positions, windows
from .errors import ConfigError, DataDirError, ModelError
from .fsutil import write_with
from .scoring import Chunk, Scorer
from .vocab import BOS_ID, PAD_ID, Vocab

MIN_ORDER, MAX_ORDER, DEFAULT_ORDER = 2, 5, 4
MISSING = -1  # a history slot before the passage's <s>: nothing was typed there
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # D1, D2, D3+ where counts of counts are too few


def check_order(order: int) -> int:
    if not MIN_ORDER <= order <= MAX_ORDER:
        raise ConfigError(f"--order must be between {MIN_ORDER} and {MAX_ORDER}")
    return order


@dataclass
class OrderTable:
    """The j-grams of one order, sorted by key, with what scoring needs of them."""
    keys: np.ndarray  # (G,) int64, sorted: prefix id · V + last word (order 1: word id)
    words: np.ndarray  # (G,) int64, the last word of each j-gram
    weight: np.ndarray  # (G,) float64, (a − D(a)) / A(prefix): the discounted probability
    begin: np.ndarray  # (H + 1,) int64: the extensions of history i are keys[begin[i]:begin[i+1]]
    gamma: np.ndarray  # (H,) float64: each history's back-off weight (1 where never seen)


# ---------------------------------------------------------------- counting

def history_lengths(starts: np.ndarray, length: int) -> np.ndarray:
    """For each position t ≥ 1, how many tokens of its passage precede it (0 at position 0).

    Target t belongs to the passage holding t − 1, so a final <s> closes the passage before it.
    """
    t = np.arange(length)
    passage = np.searchsorted(starts, np.maximum(t - 1, 0), side="right") - 1
    available = t - starts[np.maximum(passage, 0)]
    available[0] = 0
    return available


@dataclass
class RawCounts:
    keys: np.ndarray  # (G,) sorted int64 keys of one order
    counts: np.ndarray  # (G,) raw counts
    suffix: np.ndarray  # (G,) id of the j-gram minus its first word, in table j − 1
    first: np.ndarray  # (G,) first word of the j-gram


def count_ngrams(tokens: np.ndarray, starts: np.ndarray, order: int, vocab_size: int
                 ) -> list[RawCounts]:
    """Raw counts of every order 1..order, by index arithmetic over positions.

    ids[j][t] is the id (in table j) of the j-gram ending at position t, where it exists.
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    available = history_lengths(starts, len(tokens))
    unigram_counts = np.bincount(tokens[1:], minlength=vocab_size)
    everything = np.arange(vocab_size, dtype=np.int64)
    tables = [RawCounts(everything, unigram_counts, np.zeros(vocab_size, np.int64), everything)]
    previous_ids = tokens  # unigram ids are word ids
    for j in range(2, order + 1):
        positions = np.flatnonzero(available >= j - 1)
        prefix = previous_ids[positions - 1]
        keys, inverse = np.unique(prefix * vocab_size + tokens[positions], return_inverse=True)
        suffix = np.empty(len(keys), dtype=np.int64)
        suffix[inverse] = previous_ids[positions]  # the (j-1)-gram ending at the same position
        first = tables[-1].first[keys // vocab_size]
        tables.append(RawCounts(keys, np.bincount(inverse, minlength=len(keys)), suffix, first))
        ids = np.full(len(tokens), MISSING, dtype=np.int64)
        ids[positions] = inverse
        previous_ids = ids
    return tables


def adjusted_counts(raw: list[RawCounts]) -> list[np.ndarray]:
    """Raw counts at the top order and for n-grams opening with <s>; else continuation counts."""
    adjusted = []
    for j, table in enumerate(raw, start=1):
        if j == len(raw):
            adjusted.append(table.counts.astype(np.int64))
            continue
        continuation = np.bincount(raw[j].suffix, minlength=len(table.keys))
        if j == 1:  # the unigram <s> is the end of a passage, which has words before it
            adjusted.append(continuation)
        else:
            adjusted.append(np.where(table.first == BOS_ID, table.counts, continuation))
    return adjusted


def discounts(counts: np.ndarray) -> np.ndarray:
    """[0, D1, D2, D3+] from counts of counts (Chen & Goodman); a fallback where undefined."""
    n = np.array([np.count_nonzero(counts == r) for r in range(1, 5)], dtype=np.float64)
    result = np.array([0.0, *FALLBACK_DISCOUNTS])
    if n[0] > 0 and n[1] > 0:
        y = n[0] / (n[0] + 2 * n[1])
        for r in (1, 2, 3):
            if n[r - 1] > 0:
                d = r - (r + 1) * y * n[r] / n[r - 1]
                if 0 < d <= r:
                    result[r] = d
    return result


def order_table(keys: np.ndarray, adjusted: np.ndarray, discount: np.ndarray, n_histories: int,
                vocab_size: int) -> OrderTable:
    """Discounted weights and back-off weights of one order j ≥ 2 (histories: table j − 1)."""
    prefix = keys // vocab_size
    cut = discount[np.minimum(adjusted, 3)]
    total = np.bincount(prefix, weights=adjusted, minlength=n_histories)
    removed = np.bincount(prefix, weights=cut, minlength=n_histories)
    seen = total > 0
    gamma = np.ones(n_histories)
    gamma[seen] = removed[seen] / total[seen]
    weight = (adjusted - cut) / np.where(seen, total, 1.0)[prefix]
    begin = np.searchsorted(prefix, np.arange(n_histories + 1))
    return OrderTable(keys, keys % vocab_size, weight, begin, gamma)


def unigram_distribution(adjusted: np.ndarray, discount: np.ndarray) -> np.ndarray:
    """p_1 over the whole vocabulary: discounted continuation counts + uniform (not <pad>)."""
    cut = discount[np.minimum(adjusted, 3)]
    total = adjusted.sum()
    uniform = np.full(len(adjusted), 1.0 / (len(adjusted) - 1))
    uniform[PAD_ID] = 0.0
    if total == 0:
        return uniform
    return (adjusted - cut) / total + cut.sum() / total * uniform


# ---------------------------------------------------------------- lookup and scoring

def lookup(keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Index of each query in the sorted `keys`, or MISSING."""
    where = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return np.where(keys[where] == query, where, MISSING)


def expand_ranges(begin: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows with ranges [begin, end): (row of each element, index of each element)."""
    lengths = end - begin
    rows = np.repeat(np.arange(len(begin)), lengths)
    skip = np.repeat(begin - (np.cumsum(lengths) - lengths), lengths)
    return rows, np.arange(len(rows)) + skip


class NgramScorer(Scorer[tuple[int, ...]]):
    """Interpolated modified Kneser-Ney of order 2..5, behind the Scorer interface.

    State: a tuple of the last (at most) order − 1 ids read since the last <s>, that <s>
    included; () before anything was read. `read`, `log_probs` and `split_log_probs` compute
    every distribution at once instead of stepping.
    """

    def __init__(self, vocab: Vocab, order: int, unigram: np.ndarray,
                 tables: list[np.ndarray], orders: list[OrderTable], discount: np.ndarray,
                 rows_per_chunk: int = 512) -> None:
        self.vocab = vocab
        self.order = order
        self.name = f"kn-{order}gram"
        self.unigram = unigram  # (V,) p_1
        self.tables = tables  # keys of orders 1..n (tables[j - 1] is order j)
        self.orders = orders  # OrderTable of orders 2..n (orders[j - 2] is order j)
        self.discount = discount  # (n, 4): [0, D1, D2, D3+] per order
        self.rows_per_chunk = rows_per_chunk
        self.train_seconds = 0.0

    # ------------------------------------------------------------ training
    @classmethod
    def train(cls, split: Split, vocab: Vocab, order: int = DEFAULT_ORDER) -> NgramScorer:
        check_order(order)
        began = time.perf_counter()
        tokens = np.asarray(split.tokens)
        if len(split.starts) == 0 or len(tokens) < 2:
            raise DataDirError("the training split is empty: no n-gram can be counted")
        raw = count_ngrams(tokens, split.starts, order, len(vocab))
        adjusted = adjusted_counts(raw)
        discount = np.stack([discounts(a) for a in adjusted])
        unigram = unigram_distribution(adjusted[0], discount[0])
        orders = [order_table(raw[j].keys, adjusted[j], discount[j], len(raw[j - 1].keys),
                              len(vocab)) for j in range(1, order)]
        scorer = cls(vocab, order, unigram, [r.keys for r in raw], orders, discount)
        scorer.train_seconds = time.perf_counter() - began
        return scorer

    @classmethod
    def from_data_dir(cls, path: str | Path, order: int = DEFAULT_ORDER) -> NgramScorer:
        data = DataDir(path)
        return cls.train(data.split("train"), data.vocab, order)

    # ------------------------------------------------------------ scoring
    def _history_ids(self, histories: np.ndarray, length: int) -> np.ndarray:
        """Id in table `length` of the last `length` ids of each history, or MISSING."""
        part = histories[:, histories.shape[1] - length:]
        ids = part[:, 0].copy()
        ok = ids != MISSING
        for column in range(1, length):
            query = np.where(ok, ids, 0) * len(self.vocab) + part[:, column]
            ids = lookup(self.tables[column], query)
            ok &= (ids != MISSING) & (part[:, column] != MISSING)
        return np.where(ok, ids, MISSING)

    def probabilities(self, histories: np.ndarray, dtype: type = np.float64) -> np.ndarray:
        """(N, V) next-word distributions for (N, order − 1) histories (float64, or float32
        where that is enough: a mixture's step).

        A history holds the last order − 1 ids up to and including the passage's <s>,
        right-aligned, MISSING where the passage had not begun.
        """
        n_rows, size = len(histories), len(self.vocab)
        gammas, runs = [], []
        for j, table in enumerate(self.orders, start=2):
            history = self._history_ids(histories, j - 1)
            seen = history != MISSING
            safe = np.where(seen, history, 0)
            gammas.append(np.where(seen, table.gamma[safe], 1.0))
            runs.append((np.where(seen, table.begin[safe], 0),
                         np.where(seen, table.begin[safe + 1], 0)))
        # W_j = product of the γ of the orders above j; Γ = that product over all orders ≥ 2
        above = np.ones(n_rows)
        scale = [np.ones(n_rows)] * len(self.orders)
        for index in range(len(self.orders) - 1, -1, -1):
            scale[index] = above.copy()
            above *= gammas[index]
        unigram = self._unigram32 if dtype == np.float32 else self.unigram.astype(dtype, copy=False)
        out = above.astype(dtype)[:, None] * unigram[None, :]
        flat = out.reshape(-1)
        for table, (begin, end), weight in zip(self.orders, runs, scale, strict=True):
            rows, entries = expand_ranges(begin, end)
            flat[rows * size + table.words[entries]] += weight[rows] * table.weight[entries]
        return out

    @cached_property
    def _unigram32(self) -> np.ndarray:
        return self.unigram.astype(np.float32)

    def _log_probs(self, histories: np.ndarray) -> torch.Tensor:
        return _log_of(self.probabilities(histories))

    def _histories(self, contexts: Sequence[Sequence[int]]) -> np.ndarray:
        width = self.order - 1
        out = np.full((len(contexts), width), MISSING, dtype=np.int64)
        for row, context in enumerate(contexts):
            ids = list(context)[-width:]
            out[row, width - len(ids):] = ids
        return out

    def log_probs(self, contexts: Sequence[Sequence[int]]) -> torch.Tensor:
        """(batch, V) next-word log-probabilities; a context is the ids typed after <s>."""
        return self._log_probs(self._histories([(BOS_ID, *c) for c in contexts]))

    def start(self) -> tuple[int, ...]:
        return ()

    def _next_state(self, state: tuple[int, ...], word_id: int) -> tuple[int, ...]:
        """The state is the last order − 1 ids; <s> begins a new passage."""
        return (BOS_ID,) if word_id == BOS_ID else (*state, word_id)[-(self.order - 1):]

    def _next_states(self, states: Sequence[tuple[int, ...]], word_ids: Sequence[int]
                     ) -> list[tuple[int, ...]]:
        return [self._next_state(s, w) for s, w in zip(states, word_ids, strict=True)]

    def read(self, context: Sequence[int]) -> tuple[tuple[int, ...], torch.Tensor]:
        """The state and log-probabilities after <s> and `context`, in one computation (as
        stepping word by word would leave them)."""
        ids = (BOS_ID, *context)
        since_bos = ids[max(i for i, word_id in enumerate(ids) if word_id == BOS_ID):]
        state = since_bos[-(self.order - 1):]
        return state, self._log_probs(self._histories([state]))[0]

    def step_batch(self, states: Sequence[tuple[int, ...]], word_ids: Sequence[int]
                   ) -> list[tuple[tuple[int, ...], torch.Tensor]]:
        """The new states, their distributions computed together."""
        new = self._next_states(states, word_ids)
        if not new:
            return []
        log_probs = self._log_probs(self._histories(new))
        return [(state, log_probs[i]) for i, state in enumerate(new)]

    def step_probabilities(self, states: Sequence[tuple[int, ...]], word_ids: Sequence[int]
                           ) -> tuple[list[tuple[int, ...]], torch.Tensor]:
        new = self._next_states(states, word_ids)
        if not new:
            return [], torch.empty(0, len(self.vocab))
        return new, torch.from_numpy(self.probabilities(self._histories(new), np.float32))

    def log_probs_at(self, split: Split, positions: np.ndarray) -> torch.Tensor:
        """(N, V) log-probabilities of the words at `positions` of the split, each read from its
        passage's <s> (any positions, in any order: a mixture asks for another scorer's)."""
        parts = []
        for begin in range(0, len(positions), self.rows_per_chunk):  # (rows, V) float64 each
            context = windows(split, positions[begin:begin + self.rows_per_chunk],
                              self.order - 1)  # <pad> before the passage
            parts.append(self._log_probs(np.where(context == PAD_ID, MISSING, context)))
        return torch.cat(parts) if len(parts) != 1 else parts[0]

    def split_log_probs(self, split: Split) -> Iterator[Chunk]:
        """Every word of the split, each passage read from its <s>, in chunks of rows."""
        tokens = np.asarray(split.tokens)
        positions = target_positions(split)
        for begin in range(0, len(positions), self.rows_per_chunk):
            chosen = positions[begin:begin + self.rows_per_chunk]
            yield (self.log_probs_at(split, chosen),
                   torch.from_numpy(tokens[chosen].astype(np.int64)), chosen)

    # ------------------------------------------------------------ files
    def save(self, path: Path) -> None:
        """Every table in one .npz (no pickles), written atomically."""
        arrays = {"order": np.asarray(self.order), "unigram": self.unigram,
                  "discount": self.discount, "vocab_sha256": np.asarray(self.vocab.sha256),
                  "table_1": self.tables[0]}
        for j, table in enumerate(self.orders, start=2):
            for name in ("keys", "words", "weight", "begin", "gamma"):
                arrays[f"order_{j}_{name}"] = getattr(table, name)
        write_with(path, lambda tmp: _save_npz(tmp, arrays))

    @classmethod
    def load(cls, path: Path, vocab: Vocab) -> NgramScorer:
        """A saved n-gram, checked against `vocab`; anything else is one ModelError."""
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
            if str(arrays["vocab_sha256"]) != vocab.sha256:
                raise ModelError(f"{path}: the n-gram was counted with another vocabulary; "
                                 "rerun `rnn-ime mix`")
            order = int(arrays["order"])
            if not MIN_ORDER <= order <= MAX_ORDER or arrays["unigram"].shape != (len(vocab),) \
                    or len(arrays["discount"]) != order:
                raise ValueError("tables of the wrong shape")
            orders = [OrderTable(**{name: arrays[f"order_{j}_{name}"] for name in
                                    ("keys", "words", "weight", "begin", "gamma")})
                      for j in range(2, order + 1)]
            tables = [arrays["table_1"], *(table.keys for table in orders)]
            return cls(vocab, order, arrays["unigram"], tables, orders, arrays["discount"])
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            raise ModelError(f"{path}: not a saved n-gram ({exc}); rerun `rnn-ime mix`"
                             ) from None


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def _log_of(probabilities: np.ndarray) -> torch.Tensor:
    """float32 log-probabilities of float64 probabilities (−inf where 0)."""
    with np.errstate(divide="ignore"):
        return torch.from_numpy(np.log(probabilities).astype(np.float32))
