"""Typed letters → a lattice of words: which lexicon words can spell which span of the input.

The letters (apostrophes are hard syllable breaks) are cut into *pieces*: a whole syllable (or
a fuzzy partner of it), an initial (a syllable abbreviated: `j` for jin), or — at the very end
of the input only — the start of a longer syllable (`ti` → tian, tiao, ting …). A word matches
consecutive pieces when its reading's initials are the pieces' initials and each syllable fits
its piece. Within one word, abbreviated pieces only follow whole ones (jin'tian, jin't, j't),
which is how people abbreviate and keeps the search small.

       j  i  n  t  i  a  n  t  i
       0  1  2  3  4  5  6  7  8  9       edges: (0,3 今/金/进 …) (0,7 今天) (3,7 天) (7,9 提/天* …)
                                                  * partial last syllable: ti → tian

A position that no word leaves gets a *literal* edge that keeps its letters as typed, up to the
next position where a word starts.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from functools import cache, cached_property

import numpy as np

from .lexicon import MAX_WORD_SYLLABLES, Lexicon
from .syllables import (
    MAX_SYLLABLE,
    all_syllables,
    by_initial,
    canonical,
    fuzzy_initials,
    fuzzy_variants,
    initial,
    initials,
    syllable_ids,
    typed_syllables,
)

# syllables people do not type as themselves (嗯 n, 呣 m, 哼 hng …): an initial stands for them
_INTERJECTIONS = frozenset({"n", "m", "ng", "hm", "hng"})


@cache
def whole_syllables() -> frozenset[str]:
    """The spellings typed as whole syllables (interjections left out); built on first use."""
    return typed_syllables() - _INTERJECTIONS


@dataclass(frozen=True)
class Penalties:
    """Nats taken off a word's log-probability for each liberty the decoder takes with it."""
    abbreviation: float = 3.0  # per syllable typed as its initial only
    partial: float = 2.0  # a last syllable typed in part
    longer: float = 6.0  # a last syllable typed whole, read as a longer one (xian as xiang)
    split: float = 1.0  # a syllable cut short where a longer one fits (ju'e in jue, xi'an)
    lone_split: float = 4.0  # more when that longer one is all the input (nve: 虐 before 女儿)
    heteronym: float = 6.0  # a reading other than the character's common one (见 as xian)
    traditional: float = math.inf  # a word in traditional characters (們 國): not offered
    rare: float = 3.0  # a word with a character outside GB2312's 6,763 and Big5 (镕 堃)
    fuzzy: float = 1.5  # per syllable read through a fuzzy-pinyin rule
    literal: float = 12.0  # a run of letters kept as typed


@dataclass(frozen=True)
class Piece:
    end: int
    head: str  # the initial it stands for
    allowed: tuple[int, ...] | None  # syllable ids it may be; None: any with this initial
    penalty: float
    abbreviated: bool

    @cached_property
    def mask(self) -> np.ndarray | None:
        """allowed as a lookup table over syllable ids (fancy indexing beats np.isin)."""
        if self.allowed is None:
            return None
        mask = np.zeros(len(all_syllables()), dtype=bool)
        mask[list(self.allowed)] = True
        return mask


@dataclass(frozen=True)
class Edges:
    """Edges leaving one position that end at `end`: lexicon word indices and penalties."""
    end: int
    words: np.ndarray  # (m,) int64; -1 for a literal
    penalty: np.ndarray  # (m,) float64

    @property
    def literal(self) -> bool:
        return bool(self.words[0] < 0)


def _ids(names) -> tuple[int, ...]:
    known = syllable_ids()
    return tuple(sorted({known[s] for s in names}))


@cache
def _abbreviation(head: str) -> tuple[int, ...]:
    """The syllables an initial abbreviates (itself excluded where it is a syllable too)."""
    names = all_syllables()
    return tuple(i for i in by_initial()[head] if names[i] != head)


@cache
def _completions(start: str) -> list[str]:
    """Syllables a partial last syllable may become: ti → tian, tiao, tie, ting …"""
    return sorted({canonical(s) for s in typed_syllables()
                   if s.startswith(start) and len(s) > len(start)})


def pieces_at(letters: str, breaks: frozenset[int], fuzzy: frozenset[str],
              penalties: Penalties) -> list[list[Piece]]:
    """pieces[s]: every piece starting at letter position s."""
    n = len(letters)
    whole = whole_syllables()
    out: list[list[Piece]] = [[] for _ in range(n)]
    for s in range(n):
        ends = _span_ends(s, n, breaks)
        longest = max((e for e in ends if letters[s:e] in whole), default=s)
        for e in ends:
            typed = letters[s:e]
            if typed in whole:
                syllable = canonical(typed)
                cut = 0.0 if e >= longest else penalties.split + (
                    penalties.lone_split if s == 0 and longest == n else 0.0)
                out[s].append(Piece(e, initial(syllable), _ids([syllable]), cut, False))
                for variant in fuzzy_variants(typed, fuzzy):
                    out[s].append(Piece(e, initial(variant), _ids([variant]),
                                        cut + penalties.fuzzy, False))
            if typed in initials():
                out[s].append(Piece(e, typed, _abbreviation(typed), penalties.abbreviation, True))
                if typed in ("z", "c", "s"):  # zg → 中国: one letter abbreviates zh/ch/sh too
                    out[s].append(Piece(e, typed + "h", None, penalties.abbreviation, True))
                for other in fuzzy_initials(typed, fuzzy):
                    out[s].append(Piece(e, other, None, penalties.abbreviation + penalties.fuzzy,
                                        True))
            if e == n and len(typed) > len(initial(typed)):
                completions = _completions(typed)
                if completions:
                    out[s].append(Piece(e, initial(completions[0]), _ids(completions),
                                        penalties.longer if typed in whole
                                        else penalties.partial, False))
    return out


def _span_ends(s: int, n: int, breaks: frozenset[int]) -> list[int]:
    """The ends of the spans a piece starting at s may cover: at most MAX_SYLLABLE letters,
    never across an apostrophe."""
    ends = []
    for e in range(s + 1, min(n, s + MAX_SYLLABLE) + 1):
        if any(s < b < e for b in breaks):
            break
        ends.append(e)
    return ends


MATCH_MEMO = 50_000  # spans remembered per lexicon: typing one more letter reuses the rest


def _matches(lexicon: Lexicon, key: str, path: list[Piece], penalties: Penalties
             ) -> tuple[np.ndarray, np.ndarray] | None:
    """Words whose reading has initials `key` and fits every piece of `path`: (word indices,
    heteronym penalties), memoised per lexicon."""
    memo = lexicon.memo
    signature = (key, tuple(piece.allowed for piece in path), penalties.heteronym,
                 penalties.traditional, penalties.rare)
    if signature in memo:
        return memo[signature]
    found_words, found_penalty = [], []
    for words, syllables, rank in lexicon.lookup(key):
        keep = np.ones(len(words), dtype=bool)
        for column, piece in enumerate(path):
            if piece.mask is not None:
                keep &= piece.mask[syllables[:, column]]
        if keep.any():
            found_words.append(words[keep].astype(np.int64))
            found_penalty.append(np.where(rank[keep] > 0, penalties.heteronym, 0.0))
    found = (np.concatenate(found_words), np.concatenate(found_penalty)) if found_words \
        else None
    if found is not None and lexicon.script is not None:
        by_script = np.asarray([0.0, penalties.traditional, penalties.rare])
        penalty = found[1] + by_script[lexicon.script[found[0]]]
        keep = np.isfinite(penalty)
        found = (found[0][keep], penalty[keep]) if keep.any() else None
    if len(memo) >= MATCH_MEMO:
        memo.clear()
    memo[signature] = found
    return found


def build_lattice(letters: str, breaks: frozenset[int], lexicon: Lexicon,
                  fuzzy: frozenset[str] = frozenset(), penalties: Penalties = Penalties()
                  ) -> list[list[Edges]]:
    """lattice[s]: the edges leaving position s (0 ≤ s < n), by end position."""
    n = len(letters)
    pieces = pieces_at(letters, breaks, fuzzy, penalties)
    prefixes = lexicon.prefixes
    lattice: list[list[Edges]] = []
    for s in range(n):
        by_end: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = defaultdict(
            lambda: ([], []))
        stack: list[tuple[int, str, list[Piece], float, bool]] = [(s, "", [], 0.0, False)]
        while stack:
            position, key, path, cost, abbreviated = stack.pop()
            if position == n or len(path) == MAX_WORD_SYLLABLES:
                continue
            for piece in pieces[position]:
                if abbreviated and not piece.abbreviated:
                    continue  # jin't, j't — not j'tian
                longer = f"{key} {piece.head}" if key else piece.head
                if longer not in prefixes:
                    continue
                route = [*path, piece]
                penalty = cost + piece.penalty
                match = _matches(lexicon, longer, route, penalties)
                if match is not None:
                    by_end[piece.end][0].append(match[0])
                    by_end[piece.end][1].append(match[1] + penalty)
                stack.append((piece.end, longer, route, penalty, piece.abbreviated))
        lattice.append([_merge(end, *by_end[end]) for end in sorted(by_end)])
    _add_literals(lattice, n, penalties.literal)
    return lattice


def _merge(end: int, words: list[np.ndarray], penalties: list[np.ndarray]) -> Edges:
    """One edge per word: the smallest penalty among its matches."""
    all_words, all_pen = np.concatenate(words), np.concatenate(penalties)
    order = np.lexsort((all_pen, all_words))
    all_words, all_pen = all_words[order], all_pen[order]
    first = np.ones(len(all_words), dtype=bool)
    first[1:] = all_words[1:] != all_words[:-1]
    return Edges(end, all_words[first], all_pen[first])


def _add_literals(lattice: list[list[Edges]], n: int, penalty: float) -> None:
    """A position no word leaves gets a literal edge to the next position one does (or n)."""
    for s in range(n):
        if not lattice[s]:
            end = next((e for e in range(s + 1, n) if lattice[e]), n)
            lattice[s].append(Edges(end, np.array([-1]), np.array([penalty])))
