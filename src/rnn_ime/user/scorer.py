"""Any scorer mixed with what its user typed, behind the Scorer interface:

    p(w | h) = (1 − γ)·{(1 − β)·[(1 − λ)·p_base(w | h) + λ·p_uni(w)] + β·p_bi(w | prev)}
               + γ·p_tri(w | prev2, prev)

λ grows with the history, λ = unigram·n / (n + prior) for n (decayed) words typed, so a new
profile changes nothing. β, the weight of the words the user typed after the previous word,
grows with how often they did and with how few different words followed it (Witten-Bell):
β = bigram·c(prev) / (c(prev) + spread·t(prev)), t(prev) the distinct words after prev; γ, the
weight of the words typed after the previous two, the same with trigram and trigram_spread. Over
vocabulary ids, the user's mass on words outside the vocabulary goes to <unk> (it sums to one);
the pinyin decoder asks `lexicon_log_probs` for the words themselves, where a word outside the
vocabulary gets (1 − β)(1 − λ)·p_base(<unk>)·p(word | <unk>) plus its user part. Over the
vocabulary, the lexicon and the user's words that neither lists (numbers, Latin letters, a word
seen once), that sums to one. Suggestions, beam completion, pinyin and `evaluate` take it as
any scorer.
"""

from __future__ import annotations

import heapq
import math
from collections import ChainMap, defaultdict
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch

from ..limits import MAX_K
from ..scoring import Scorer, WordTable
from ..vocab import BOS_ID, SPECIALS, UNK_ID
from .model import Counts, UserModel

MEMO_SIZE = 4096  # previous words whose mixing is remembered at once


def _positions(position: Mapping[str, int], words: Sequence[str]) -> list[int]:
    """Each word's position in a lexicon (−1: not there); a lexicon with the user's made words
    chains two dicts, looked up here one after the other (ChainMap's own get is ten times
    slower, and a profile may hold 100,000 words)."""
    if isinstance(position, ChainMap):
        found: list[int] = [-1] * len(words)
        for table in reversed(position.maps):  # the first map wins, as in the ChainMap
            get = table.get
            found = [get(w, f) for w, f in zip(words, found, strict=True)]
        return found
    get = position.get
    return [get(w, -1) for w in words]


class _FollowsCounts:
    """Something worked out from the user's unigram, kept in step with it: the changes since
    it last looked (`Counts.changes`) are applied; a new Counts object (a reload), a new
    generation, or changes `_apply` cannot take build it anew."""

    def __init__(self) -> None:
        self._seen: tuple[Any, int, int] = (None, -1, 0)  # counts, generation, changes applied

    def _follow(self, counts: Counts) -> None:
        held, generation, applied = self._seen
        changes = counts.changes
        if held is not counts or generation != counts.generation or applied > len(changes) \
                or not self._apply(counts, changes[applied:]):
            self._build(counts)
        self._seen = (counts, counts.generation, len(changes))

    def _build(self, counts: Counts) -> None:
        raise NotImplementedError

    def _apply(self, counts: Counts, changes: Sequence[tuple[str, float]]) -> bool:
        """Whether the changes could be applied (else it is built anew)."""
        raise NotImplementedError


class WordArray(_FollowsCounts):
    """The user's unigram counts (internal units) at each word's place in an index (the
    vocabulary, or a lexicon): a commit updates the few words it changed."""

    def __init__(self, size: int, places: Callable[[Sequence[str]], list[int]],
                 shared: int | None = None) -> None:
        super().__init__()
        self.size, self.places, self.shared = size, places, shared  # shared: many words' place
        self.array = np.zeros(size)

    def current(self, counts: Counts) -> np.ndarray:
        self._follow(counts)
        return self.array

    def _build(self, counts: Counts) -> None:
        words = list(counts.unigram)
        values = np.fromiter(counts.unigram.values(), dtype=np.float64, count=len(words))
        places = np.asarray(self.places(words), dtype=np.int64)
        listed = places >= 0
        self.array = np.bincount(places[listed], weights=values[listed], minlength=self.size)

    def _apply(self, counts: Counts, changes: Sequence[tuple[str, float]]) -> bool:
        array = self.array
        for (word, delta), place in zip(changes, self.places([w for w, _ in changes]),
                                        strict=True):
            if place < 0:
                continue
            if place == self.shared:  # a sum of many words: moved by the change
                self._set(place, max(0.0, array[place] + delta))
            else:
                self._set(place, counts.unigram.get(word, 0.0))
        return True

    def _set(self, place: int, value: float) -> None:
        self.array[place] = value


class LogWordArray(WordArray):
    """A WordArray with the log of every count beside it (float32, −inf where there is none):
    mixing over the whole vocabulary then needs no log over it after each commit."""

    def __init__(self, size: int, places: Callable[[Sequence[str]], list[int]],
                 shared: int | None = None) -> None:
        super().__init__(size, places, shared)
        self.logs = torch.full((size,), -math.inf)

    def current_logs(self, counts: Counts) -> torch.Tensor:
        self._follow(counts)
        return self.logs

    def _build(self, counts: Counts) -> None:
        super()._build(counts)
        with np.errstate(divide="ignore"):
            self.logs = torch.from_numpy(np.log(self.array)).float()

    def _set(self, place: int, value: float) -> None:
        self.array[place] = value
        self.logs[place] = math.log(value) if value > 0.0 else -math.inf


class OutsideWords(_FollowsCounts):
    """The user's most frequent words outside the vocabulary (the `KEEP` first): a commit's
    new or grown words enter if they pass the last one kept; a kept word that fell (an undo, a
    forget) builds the list anew."""

    KEEP = 2 * MAX_K  # more than any suggestion asks for

    def __init__(self, inside: Container[str]) -> None:
        super().__init__()
        self.inside = inside
        self.top: dict[str, float] = {}
        self._order: list[str] | None = None  # `top` sorted, most frequent first (None: stale)

    def first(self, counts: Counts, k: int) -> list[str]:
        self._follow(counts)
        if self._order is None:
            self._order = sorted(self.top, key=lambda w: (-self.top[w], w))
        return self._order[:k]

    def _build(self, counts: Counts) -> None:
        outside = (w for w in counts.unigram if w not in self.inside)
        self.top = {w: counts.unigram[w]
                    for w in heapq.nlargest(self.KEEP, outside, key=counts.unigram.__getitem__)}
        self._order = None

    def _apply(self, counts: Counts, changes: Sequence[tuple[str, float]]) -> bool:
        top = self.top
        for word, _ in changes:
            if word in self.inside:
                continue
            value = counts.unigram.get(word, 0.0)
            if word in top:
                if value < top[word]:  # a word not kept may now pass it
                    return False
                top[word] = value
                self._order = None
            elif value > 0.0 and (len(top) < self.KEEP or value > min(top.values())):
                top[word] = value  # below KEEP words, every word outside is kept
                self._order = None
                if len(top) > self.KEEP:
                    del top[min(top, key=top.__getitem__)]
        return True


@dataclass(frozen=True)
class UserWeights:
    """How much the history counts (bench/adaptation.py --fit; docs/adaptation.md)."""
    unigram: float = 0.1  # λ once the history is long
    prior: float = 50.0  # words typed at which λ is half of `unigram`
    bigram: float = 0.6  # β for a previous word always followed by the same word, seen often
    spread: float = 2.0  # Witten-Bell's factor on the distinct words after the previous one
    trigram: float = 0.5  # γ for two previous words always followed by the same word
    trigram_spread: float = 2.0  # the same factor after the previous two
    # words typed at which pairs and triples count half (n / (n + warmup)): early on most pairs
    # seen once do not come back, and at full weight they cost top-1 below the model's own
    warmup: float = 300.0


@dataclass(frozen=True)
class Mixing:
    """The weights after the previous words: the user's unigram gets `unigram`, the user's
    words after the previous word `bigram`, after the previous two `trigram`, and the base
    keeps the rest."""
    unigram: float
    bigram: float
    trigram: float = 0.0

    @property
    def keep(self) -> float:
        return 1.0 - self.unigram - self.bigram - self.trigram


@dataclass(frozen=True)
class UserState:
    base: Any  # the base scorer's state
    base_unk: float  # the base's log p(<unk> | history)
    prev: str | None  # the previous word (None at the start, or after <s>)
    prev2: str | None = None  # the word before it
    unmixed: bool = False  # it came with the base's log-probabilities (step_words_for_lexicon)


class UserScorer(Scorer[UserState]):
    def __init__(self, base: Scorer, model: UserModel, weights: UserWeights = UserWeights()
                 ) -> None:
        self.base, self.model, self.weights = base, model, weights
        self.vocab = base.vocab
        self.name = f"{base.name}+user"
        self._outside = OutsideWords(self.vocab)
        self._memo: tuple[int, dict[tuple, Any]] = (-1, {})
        self._arrays: dict[int | None, tuple[WordTable | None, WordArray]] = {}
        self._extras: tuple[WordTable | None, tuple[np.ndarray, np.ndarray]] = (None, ())

    def _memoised(self) -> dict[tuple, Any]:
        """What was worked out for these counts (mixing weights, context rows by id), emptied
        when they change; a decoding asks for the same previous words many times."""
        version = self.model.counts.version
        if self._memo[0] != version or len(self._memo[1]) > MEMO_SIZE:
            self._memo = (version, {})
        return self._memo[1]

    def mixing(self, prev: str | None, prev2: str | None = None) -> Mixing:
        memo = self._memoised()
        found = memo.get(("mixing", prev, prev2))
        if found is None:
            found = memo[("mixing", prev, prev2)] = self._mixing(prev, prev2)
        return found

    def _mixing(self, prev: str | None, prev2: str | None) -> Mixing:
        counts, weights = self.model.counts, self.weights
        typed = counts.words_typed()
        unigram = weights.unigram * typed / (typed + weights.prior) if typed > 0 else 0.0
        grown = typed / (typed + weights.warmup) if weights.warmup > 0 else 1.0
        after, distinct = counts.after(prev)
        bigram = grown * weights.bigram * after / (after + weights.spread * distinct) \
            if distinct else 0.0
        after, distinct = counts.after_two(prev2, prev)
        trigram = grown * weights.trigram * after / (after + weights.trigram_spread * distinct) \
            if distinct else 0.0
        rest = 1.0 - trigram
        return Mixing(rest * (1.0 - bigram) * unigram, rest * bigram, trigram)

    def user_probability(self, word: str, prev: str | None, mixing: Mixing | None = None,
                         prev2: str | None = None) -> float:
        """The user's part of p(word | …, prev2, prev): unigram·p_uni(word) +
        bigram·p_bi(word | prev) + trigram·p_tri(word | prev2, prev) (the base's part is the
        rest); `mixing`: the weights after them, when known."""
        mixing, counts = mixing or self.mixing(prev, prev2), self.model.counts
        found = mixing.unigram * counts.unigram_probability(word)
        if mixing.bigram > 0.0:
            found += mixing.bigram * counts.bigram_probability(word, prev)
        if mixing.trigram > 0.0:
            found += mixing.trigram * counts.trigram_probability(word, prev2, prev)
        return found

    def _vocabulary_counts(self) -> LogWordArray:
        """The user's unigram counts over the vocabulary (internal units, <unk> holding the
        words outside it) and their logs, updated at the words each commit changed: p_uni is
        a count's share of `total`, taken where it is used."""
        return cast(LogWordArray, self._word_array(None))

    def _word_array(self, lexicon: WordTable | None) -> WordArray:
        """The user's unigram counts over the vocabulary (words outside it at <unk>) or, with
        a lexicon, over its positions, one kept per lexicon a decoding used."""
        key = id(lexicon) if lexicon is not None else None
        held = self._arrays.get(key)
        if held is None or held[0] is not lexicon:
            if len(self._arrays) > 4:
                self._arrays.clear()
            if lexicon is None:
                def places(words: Sequence[str]) -> list[int]:
                    ids = [self.vocab.id(w) for w in words]
                    return [i if i >= len(SPECIALS) else UNK_ID for i in ids]

                array = LogWordArray(len(self.vocab), places, shared=UNK_ID)
            else:
                position = lexicon.position
                array = WordArray(len(lexicon.words), lambda words: _positions(position, words))
            held = self._arrays[key] = (lexicon, array)  # held: its id is not reused
        return held[1]

    # ------------------------------------------------------------ the Scorer interface
    def start(self) -> UserState:
        return UserState(self.base.start(), 0.0, None)

    def step_batch(self, states: Sequence[UserState], word_ids: Sequence[int]
                   ) -> list[tuple[UserState, torch.Tensor]]:
        names = [None if i < len(SPECIALS) else self.vocab.word(i) for i in word_ids]
        return self._step(states, word_ids, names)

    def step_words(self, states: Sequence[UserState], words: Sequence[str]
                   ) -> list[tuple[UserState, torch.Tensor]]:
        """Steps as step_batch, remembering a word outside the vocabulary by its text (the
        user's bigrams after it count)."""
        return self._step(states, [self.vocab.id(w) for w in words], list(words))

    def step_words_for_lexicon(self, states: Sequence[UserState], words: Sequence[str]
                               ) -> list[tuple[UserState, np.ndarray]]:
        """The base's log-probabilities, unmixed: lexicon_log_probs mixes them at the few words
        the decoder looks up, instead of over the whole vocabulary at every step."""
        return [(state, log_probs.float().cpu().numpy()) for state, log_probs in
                self._step(states, [self.vocab.id(w) for w in words], list(words), mix=False)]

    def word_log_prob(self, state: UserState, log_probs: np.ndarray, word_id: int) -> float:
        """The word's probability mixed with the user's, also after step_words_for_lexicon
        (which hands back the base's unmixed)."""
        if not state.unmixed:
            return float(log_probs[word_id])
        return float(self.mix(torch.from_numpy(np.asarray(log_probs)), state.prev,
                              state.prev2)[word_id])

    def _step(self, states: Sequence[UserState], word_ids: Sequence[int],
              names: Sequence[str | None], mix: bool = True
              ) -> list[tuple[UserState, torch.Tensor]]:
        if not states:
            return []
        stepped = self.base.step_batch([s.base for s in states], word_ids)
        out = []
        for (state, log_probs), word_id, name, before in zip(stepped, word_ids, names, states,
                                                              strict=True):
            prev = None if word_id == BOS_ID else name
            prev2 = before.prev if prev is not None else None
            unk = float(log_probs[UNK_ID])
            out.append((UserState(state, unk, prev, prev2, unmixed=not mix),
                        self.mix(log_probs, prev, prev2) if mix else log_probs))
        return out

    def mix(self, log_probs: torch.Tensor, prev: str | None, prev2: str | None = None
            ) -> torch.Tensor:
        """The base's (V,) log-probabilities mixed with the user's distribution after `prev2
        prev`: over the whole vocabulary with the user's unigram (dense tensor arithmetic, tens
        of microseconds whatever the profile), then again at the words typed after `prev` or
        `prev2 prev` with their part added."""
        mixing = self.mixing(prev, prev2)
        if mixing.keep >= 1.0:
            return log_probs
        kept = log_probs.float() + math.log(mixing.keep)
        share = self._unigram_share(mixing)
        if share > 0.0:
            logs = self._vocabulary_counts().current_logs(self.model.counts)
            mixed = torch.logaddexp(kept, logs + math.log(share))
        else:
            mixed = kept
        context = self._context_part(prev, prev2, mixing)
        if context is not None:
            ids, part = context
            mixed[ids] = torch.log(kept[ids].exp() + part)
        return mixed.to(log_probs.dtype)

    def _context_part(self, prev: str | None, prev2: str | None, mixing: Mixing
                      ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(vocabulary ids, the user's whole part at them: unigram, bigram and trigram) after
        `prev2 prev`, the words outside the vocabulary at <unk>; None when neither the bigram
        nor the trigram weighs anything."""
        if mixing.bigram <= 0.0 and mixing.trigram <= 0.0:
            return None
        memo = self._memoised()
        found = memo.get(("context", prev, prev2))
        if found is None:
            def vocabulary_id(word: str) -> int:
                word_id = self.vocab.id(word)
                return word_id if word_id >= len(SPECIALS) else UNK_ID

            ids, part = self._context_by_index(prev, prev2, mixing, vocabulary_id)
            unigram = self._vocabulary_counts().current(self.model.counts)[ids]
            found = memo[("context", prev, prev2)] = (
                torch.tensor(ids, dtype=torch.long),
                torch.from_numpy(np.asarray(part) + self._unigram_share(mixing) * unigram
                                 ).float())
        return found

    def _context_by_index(self, prev: str | None, prev2: str | None, mixing: Mixing,
                          index_of: Callable[[str], int | None]
                          ) -> tuple[list[int], list[float]]:
        """(sorted indices, the user's bigram and trigram part there) of the words typed after
        `prev` and `prev2 prev`, each at `index_of(word)` (words at one index summed; a word
        at None left out)."""
        part: dict[int, float] = defaultdict(float)
        for scale, row in self._context_rows(prev, prev2, mixing):
            for word, value in row.items():
                if (i := index_of(word)) is not None:
                    part[i] += scale * value
        indices = sorted(part)
        return indices, [part[i] for i in indices]

    def _context_rows(self, prev: str | None, prev2: str | None, mixing: Mixing
                      ) -> list[tuple[float, dict[str, float]]]:
        """(scale, counts row) of the words typed after `prev` and after `prev2 prev` that the
        mixing weighs: a row's count times its scale is the word's share of the user's part."""
        counts, rows = self.model.counts, []
        if mixing.bigram > 0.0:
            rows.append((mixing.bigram / counts.following[prev], counts.bigram[prev]))
        if mixing.trigram > 0.0:
            key = (prev2, prev)
            rows.append((mixing.trigram / counts.following2[key], counts.trigram[key]))
        return rows

    def suggest(self, state: UserState, log_probs: torch.Tensor, k: int
                ) -> list[tuple[str, float]]:
        """The vocabulary's best words and the user's own words outside it, together: such a
        word's probability is its user part (its share of the base's <unk>, unknown without a
        lexicon, is left out)."""
        found = super().suggest(state, log_probs, k)
        mixing = self.mixing(state.prev, state.prev2)
        if mixing.keep >= 1.0:
            return found
        outside = [(w, self.user_probability(w, state.prev, mixing, state.prev2))
                   for w in self._outside_words(k, state.prev, state.prev2)]
        return sorted(found + outside, key=lambda pair: -pair[1])[:k]

    def _outside_words(self, k: int, prev: str | None, prev2: str | None = None) -> list[str]:
        """The user's k most frequent words outside the vocabulary, and those after `prev` and
        after `prev2 prev`."""
        counts = self.model.counts
        words = self._outside.first(counts, k)
        rows = [counts.bigram.get(prev), counts.trigram.get((prev2, prev))] \
            if prev is not None else []
        for row in filter(None, rows):
            words += [w for w in sorted(row, key=lambda w: -row[w])[:k]
                      if w not in self.vocab and w not in words]
        return words

    def lexicon_log_probs(self, state: UserState, log_probs: np.ndarray, lexicon: WordTable,
                          words: np.ndarray) -> np.ndarray:
        step = lexicon.step_id[words]
        mixing = self.mixing(state.prev, state.prev2)
        if mixing.keep >= 1.0:
            return log_probs[step] + lexicon.extra[words]
        if state.unmixed:  # the base's own: mixed here, at these words only
            return self.lexicon_log_probs_batch([state], [log_probs], lexicon, words)[0]
        extra = lexicon.extra[words]
        outside = step == UNK_ID
        if not outside.any():  # mixed already, over the vocabulary
            return log_probs[step] + extra
        # a word outside the vocabulary: its share of the base's <unk>, and the user's part
        user = self._lexicon_part(lexicon, words, state.prev, state.prev2, mixing)
        out = np.where(outside, math.log(mixing.keep) + state.base_unk, log_probs[step]) + extra
        typed = np.flatnonzero(outside & (user > 0.0))
        if len(typed):
            out[typed] = np.logaddexp(out[typed], np.log(user[typed]))
        return out

    def lexicon_log_probs_batch(self, states: Sequence[UserState],
                                log_probs: Sequence[np.ndarray], lexicon: WordTable,
                                words: np.ndarray) -> np.ndarray:
        """As lexicon_log_probs after each state, the work they share done once (the decoder's
        hypotheses at one position, stepped with step_words_for_lexicon)."""
        if not all(state.unmixed for state in states):
            return super().lexicon_log_probs_batch(states, log_probs, lexicon, words)
        unigram, extra_outside, extra_inside = self._lexicon_arrays(lexicon)
        step = lexicon.step_id[words]
        # a word outside the vocabulary: its share of the base's <unk>, and the user's part
        base = np.stack([lp[step] for lp in log_probs]) + extra_outside[words]
        mixings = [self.mixing(state.prev, state.prev2) for state in states]
        keep = np.array([m.keep for m in mixings])[:, None]
        share = np.array([self._unigram_share(m) for m in mixings])
        user = share[:, None] * unigram[words]
        for row, state, mixing in zip(user, states, mixings, strict=True):
            self._add_context(row, lexicon, words, state.prev, state.prev2, mixing)
        return np.log(keep * np.exp(base) + user) + extra_inside[words]

    def _lexicon_part(self, lexicon: WordTable, words: np.ndarray, prev: str | None,
                      prev2: str | None, mixing: Mixing) -> np.ndarray:
        """The user's part of p(word | prev2, prev) for lexicon words (0 for a word the user
        never typed), vectorised: the unigram over the lexicon kept per lexicon and version of
        the counts, the words typed after `prev` and `prev2 prev` looked up by position."""
        found = self._lexicon_arrays(lexicon)[0][words] * self._unigram_share(mixing)
        self._add_context(found, lexicon, words, prev, prev2, mixing)
        return found

    def _add_context(self, found: np.ndarray, lexicon: WordTable, words: np.ndarray,
                     prev: str | None, prev2: str | None, mixing: Mixing) -> None:
        """Add to `found` (one per word) the user's part from the words typed after `prev` and
        `prev2 prev`."""
        context = self._lexicon_context(lexicon, prev, prev2, mixing)
        if context is not None:
            positions, part = context
            where = np.minimum(np.searchsorted(positions, words), len(positions) - 1)
            hit = positions[where] == words
            found[hit] += part[where[hit]]

    def _unigram_share(self, mixing: Mixing) -> float:
        """What a word's count (`_lexicon_arrays`, internal units) is multiplied by for its
        unigram part: the unigram's weight over the counts' total."""
        total = self.model.counts.total
        return mixing.unigram / total if total > 0 else 0.0

    def _lexicon_arrays(self, lexicon: WordTable) -> tuple[np.ndarray, ...]:
        """Over the lexicon: p_uni of every word (kept as counts: its share of `total` is
        taken at the words looked up, so a commit updates only its words), and its `extra`
        split into the words outside the vocabulary's and the others'."""
        counts = self.model.counts
        if self._extras[0] is not lexicon:  # the lexicon's own: kept while it is
            outside = lexicon.step_id == UNK_ID
            self._extras = (lexicon, (np.where(outside, lexicon.extra, 0.0),
                                      np.where(outside, 0.0, lexicon.extra)))
        return (self._word_array(lexicon).current(counts), *self._extras[1])

    def _lexicon_context(self, lexicon: WordTable, prev: str | None, prev2: str | None,
                         mixing: Mixing) -> tuple[np.ndarray, np.ndarray] | None:
        """(sorted lexicon positions, the user's bigram and trigram part there) of the words
        typed after `prev2 prev`; None when there are none."""
        if mixing.bigram <= 0.0 and mixing.trigram <= 0.0:
            return None
        memo = self._memoised()
        found = memo.get(("lexicon", prev, prev2))
        if found is None or found[0] is not lexicon:
            positions, part = self._context_by_index(prev, prev2, mixing, lexicon.position.get)
            found = memo[("lexicon", prev, prev2)] = (lexicon, (
                np.array(positions, dtype=np.int64), np.array(part)) if positions else None)
        return found[1]
