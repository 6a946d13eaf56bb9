"""Pinyin input: typed letters → ranked Chinese candidates, scored by any Scorer.

Three steps:

1. **Lexicon** (once per vocabulary, cached): every vocabulary word made of Chinese characters
   gets its tone-less readings from pypinyin (heteronyms included, `ü` as `v`), e.g. 今天 →
   (jin, tian). Each reading is indexed under *patterns*: each syllable either in full or as its
   initial (zh/ch/sh, else its first letter), so 今天 is found under (jin, tian), (j, tian),
   (jin, t) and (j, t). A pattern with abbreviated syllables costs a penalty.
2. **Lattice**: the letters (apostrophes are hard syllable boundaries) are cut into *pieces*: a
   full syllable, an initial, or — at the very end of the input only — the start of a longer
   syllable (a partial last syllable: `ti` → tian, tiao, tie, ting …). Words whose pattern
   matches consecutive pieces give edges (start, end, word). A position where no piece starts
   gets a *literal* edge that keeps the letters as typed, up to the next position where one does.

       j  i  n  t  i  a  n  t  i
       0  1  2  3  4  5  6  7  8  9       edges: (0,3 进) (0,7 今天) (3,7 天) (7,9 提 / 天* …)
                                                  * partial last syllable: ti → tian

3. **Search**: a beam over lattice positions, left to right. A hypothesis is a path from 0 to a
   position with its score: the language model's log-probability of its words given the text
   before it (`read` of the context, then one `step` per word), minus the penalties. At each
   position only the `beam` best hypotheses are extended (each costs one `step`, done lazily
   when it is extended; a position's hypotheses are stepped together in one `step_batch`), and
   a position whose best hypothesis, plus an optimistic unigram estimate of the rest, falls far
   behind the best seen is skipped. Works with any Scorer.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from itertools import product
from typing import Any

import numpy as np

from .errors import RnnImeError
from .limits import MAX_LETTERS, PINYIN_MAX_BEAM, PINYIN_MAX_K
from .scoring import Scorer
from .vocab import SPECIALS, UNK_ID, Vocab

MAX_SYLLABLE = 6  # zhuang, chuang, shuang
MAX_READINGS = 4  # readings kept per word (heteronym combinations)
MAX_MIXED = 4  # words of up to this many syllables get every full/initial mix as a pattern
ABBREV_PENALTY = 3.0  # nats per syllable typed as its initial only
PARTIAL_PENALTY = 2.0  # nats for a partial last syllable
HETERONYM_PENALTY = 3.0  # nats for a reading other than pypinyin's first (见 as xian)
LITERAL_PENALTY = 12.0  # nats for a run of letters kept as typed
PRUNE_MARGIN = 10.0  # nats: a position this far behind the best estimate is not extended
DEFAULT_BEAM = 4
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_INPUT = re.compile(r"[a-z']*")


class PinyinError(RnnImeError):
    """Typed pinyin that cannot be decoded (bad characters, too long, bad options)."""


# ---------------------------------------------------------------- syllables
def strip_tone(reading: str) -> str:
    """'lǜ' → 'lv', 'zhōng' → 'zhong'."""
    decomposed = unicodedata.normalize("NFD", reading).replace("u\u0308", "v")
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace("ü", "v")


@lru_cache(maxsize=1)
def all_syllables() -> frozenset[str]:
    """Every tone-less syllable that pypinyin knows for some character (about 420)."""
    from pypinyin.pinyin_dict import pinyin_dict

    found = {strip_tone(r) for readings in pinyin_dict.values() for r in readings.split(",")}
    return frozenset(s for s in found if s.isascii() and s.isalpha())


def initial(syllable: str) -> str:
    """The letters typed for a syllable abbreviated to its initial: zh/ch/sh, else the first."""
    return syllable[:2] if syllable[:2] in ("zh", "ch", "sh") else syllable[:1]


def normalize(raw: str) -> tuple[str, frozenset[int], list[int]]:
    """(letters without apostrophes, positions of apostrophes among them, and for each letter
    position 0..n the number of raw characters up to it, trailing apostrophes included)."""
    text = raw.strip().lower()
    if len(text) > MAX_LETTERS:
        raise PinyinError(f"pinyin is limited to {MAX_LETTERS} characters, not {len(text)}")
    if not _INPUT.fullmatch(text):
        bad = next(c for c in text if not ("a" <= c <= "z" or c == "'"))
        raise PinyinError(f"pinyin may hold only the letters a-z and ', not {bad!r}")
    letters, breaks, consumed = [], set(), [0]
    for index, char in enumerate(text):
        if char == "'":
            breaks.add(len(letters))
            consumed[-1] = index + 1
        else:
            letters.append(char)
            consumed.append(index + 1)
    return "".join(letters), frozenset(breaks), consumed


def segmentations(raw: str, syllables: Iterable[str] | None = None,
                  limit: int = 50) -> list[tuple[str, ...]]:
    """Every way to cut `raw` into whole syllables (apostrophes are cuts), fewest pieces first.

    `xian` → [(xian,), (xi, an)]; `xi'an` → [(xi, an)]; letters that fit no syllable: []."""
    letters, breaks, _ = normalize(raw)
    known = frozenset(syllables) if syllables is not None else all_syllables()
    n = len(letters)

    @cache
    def rest(start: int) -> tuple[tuple[str, ...], ...]:
        if start == n:
            return ((),)
        out = []
        for end in range(start + 1, min(n, start + MAX_SYLLABLE) + 1):
            if any(start < b < end for b in breaks) or letters[start:end] not in known:
                continue
            out.extend((letters[start:end], *tail) for tail in rest(end))
        return tuple(out[:limit])

    return sorted(rest(0), key=len)[:limit] if n else []


# ---------------------------------------------------------------- lexicon
def word_readings(word: str) -> list[tuple[str, ...]]:
    """Tone-less readings of a word of Chinese characters (heteronyms: up to MAX_READINGS,
    pypinyin's preferred first); [] for anything else."""
    if not _HAN.fullmatch(word):
        return []
    from pypinyin import Style, pinyin

    options = pinyin(word, heteronym=True, style=Style.NORMAL, errors="ignore")
    if len(options) != len(word):
        return []
    out = []
    for combination in product(*options):
        reading = tuple(s.replace("ü", "v") for s in combination)
        if all(s.isascii() and s.isalpha() for s in reading) and reading not in out:
            out.append(reading)
        if len(out) == MAX_READINGS:
            break
    return out


def patterns_of(reading: tuple[str, ...]) -> dict[tuple[str, ...], int]:
    """Typed forms of a reading → number of syllables abbreviated to their initial."""
    forms = [(s, initial(s)) for s in reading]
    if len(reading) > MAX_MIXED:
        choices: Iterable[tuple[int, ...]] = [(0,) * len(reading), (1,) * len(reading)]
    else:
        choices = product((0, 1), repeat=len(reading))
    out: dict[tuple[str, ...], int] = {}
    for choice in choices:
        pattern = tuple(form[c] for form, c in zip(forms, choice, strict=True))
        abbreviated = sum(1 for form, c in zip(forms, choice, strict=True)
                          if c and form[1] != form[0])
        out[pattern] = min(abbreviated, out.get(pattern, abbreviated))
    return out


@dataclass(frozen=True)
class Lexicon:
    """Word ids by typed pattern; see the module docstring."""
    patterns: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]]  # → (ids, penalty)
    prefixes: frozenset[tuple[str, ...]]  # proper prefixes of patterns
    syllables: frozenset[str]  # full syllables of the vocabulary's words
    tokens: frozenset[str]  # syllables and initials: what one piece can be
    completions: dict[str, tuple[str, ...]]  # a syllable's start → the syllables it starts
    readings: int = 0  # words with at least one reading

    def lookup(self, pattern: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray] | None:
        return self.patterns.get(pattern)


@lru_cache(maxsize=4)
def _build(words: tuple[str, ...]) -> Lexicon:
    found: dict[tuple[str, ...], dict[int, int]] = defaultdict(dict)
    syllables: set[str] = set()
    with_reading = 0
    for word_id in range(len(SPECIALS), len(words)):
        readings = word_readings(words[word_id])
        with_reading += bool(readings)
        for rank, reading in enumerate(readings):
            syllables.update(reading)
            for pattern, abbreviated in patterns_of(reading).items():
                ids = found[pattern]
                cost = abbreviated * ABBREV_PENALTY + (HETERONYM_PENALTY if rank else 0.0)
                ids[word_id] = min(cost, ids.get(word_id, cost))
    patterns = {p: (np.fromiter(ids.keys(), np.int64, len(ids)),
                    np.fromiter(ids.values(), np.float64, len(ids)))
                for p, ids in found.items()}
    prefixes = frozenset(p[:i] for p in patterns for i in range(1, len(p)))
    completions: dict[str, list[str]] = defaultdict(list)
    for s in sorted(syllables):
        for i in range(len(initial(s)) + 1, len(s)):
            completions[s[:i]].append(s)
    return Lexicon(patterns, prefixes, frozenset(syllables),
                   frozenset(syllables | {initial(s) for s in syllables}),
                   {k: tuple(v) for k, v in completions.items()}, with_reading)


def lexicon_for(vocab: Vocab) -> Lexicon:
    """The vocabulary's lexicon, built once per vocabulary (about a second for 50k words)."""
    return _build(vocab.words)


# ---------------------------------------------------------------- lattice
@dataclass(frozen=True)
class Edges:
    """Edges leaving one position, grouped by where they end."""
    end: int
    ids: np.ndarray  # (m,) word ids; UNK_ID for a literal
    penalty: np.ndarray  # (m,) nats
    literal: bool = False


def _pieces(letters: str, breaks: frozenset[int], lexicon: Lexicon
            ) -> list[list[tuple[int, str, bool]]]:
    """pieces[s]: (end, token, partial) for each piece starting at s."""
    n = len(letters)
    pieces: list[list[tuple[int, str, bool]]] = [[] for _ in range(n)]
    for s in range(n):
        for e in range(s + 1, min(n, s + MAX_SYLLABLE) + 1):
            if any(s < b < e for b in breaks):
                break
            piece = letters[s:e]
            if piece in lexicon.tokens:
                pieces[s].append((e, piece, False))
            if e == n:
                pieces[s].extend((e, full, True) for full in lexicon.completions.get(piece, ()))
    return pieces


def build_lattice(letters: str, breaks: frozenset[int], lexicon: Lexicon) -> list[list[Edges]]:
    """lattice[s]: the edges leaving position s (0 ≤ s < n), by end position."""
    n = len(letters)
    pieces = _pieces(letters, breaks, lexicon)
    lattice: list[list[Edges]] = []
    for s in range(n):
        by_end: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = defaultdict(
            lambda: ([], []))
        stack: list[tuple[int, tuple[str, ...], float]] = [(s, (), 0.0)]
        while stack:
            position, pattern, partial = stack.pop()
            if position == n:
                continue
            for end, token, is_partial in pieces[position]:
                longer = (*pattern, token)
                extra = partial + (PARTIAL_PENALTY if is_partial else 0.0)
                match = lexicon.lookup(longer)
                if match is not None:
                    ids, penalty = match
                    by_end[end][0].append(ids)
                    by_end[end][1].append(penalty + extra)
                if longer in lexicon.prefixes:
                    stack.append((end, longer, extra))
        lattice.append([_merge(end, *by_end[end]) for end in sorted(by_end)])
    _add_literals(lattice, n)
    return lattice


def _merge(end: int, ids: list[np.ndarray], penalties: list[np.ndarray]) -> Edges:
    """One edge per word: the smallest penalty among its matches."""
    all_ids, all_pen = np.concatenate(ids), np.concatenate(penalties)
    order = np.lexsort((all_pen, all_ids))
    all_ids, all_pen = all_ids[order], all_pen[order]
    first = np.ones(len(all_ids), dtype=bool)
    first[1:] = all_ids[1:] != all_ids[:-1]
    return Edges(end, all_ids[first], all_pen[first])


def _add_literals(lattice: list[list[Edges]], n: int) -> None:
    """A position no word leaves gets a literal edge to the next position one does (or n)."""
    for s in range(n):
        if not lattice[s]:
            end = next((e for e in range(s + 1, n) if lattice[e]), n)
            lattice[s].append(Edges(end, np.array([UNK_ID]), np.array([LITERAL_PENALTY]), True))


# ---------------------------------------------------------------- search
@dataclass(frozen=True)
class Segment:
    word_id: int
    start: int  # letter positions (apostrophes not counted)
    end: int
    literal: bool


@dataclass(frozen=True)
class Candidate:
    """A decoded phrase (or first word): its words, where they came from, and its scores."""
    words: tuple[str, ...]
    letters: int  # characters of the input it consumes, apostrophes included
    log_prob: float  # the language model's, of its words given the context
    score: float  # log_prob minus the penalties (abbreviations, partial syllable, literals)

    @property
    def text(self) -> str:
        return "".join(self.words)

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "words": list(self.words), "letters": self.letters,
                "log_prob": round(self.log_prob, 4), "score": round(self.score, 4)}


@dataclass
class _Hyp:
    score: float
    log_prob: float
    path: tuple[Segment, ...]
    parent: Any  # the state before the last word (stepped lazily)
    state: Any = None
    log_probs: np.ndarray | None = None


def _expand(hyps: Sequence[_Hyp], scorer: Scorer) -> int:
    """Step every hypothesis not yet stepped, in one batched call; returns how many."""
    pending = [hyp for hyp in hyps if hyp.log_probs is None]
    stepped = scorer.step_batch([hyp.parent for hyp in pending],
                                [hyp.path[-1].word_id for hyp in pending])
    for hyp, (state, log_probs) in zip(pending, stepped, strict=True):
        hyp.state, hyp.log_probs = state, log_probs.double().cpu().numpy()
    return len(pending)


@dataclass
class Decoding:
    phrases: list[Candidate]  # whole input, best first
    first_words: list[Candidate]  # what the input can start with, best first
    steps: int = 0  # scorer steps taken
    letters: str = ""
    literal: bool = False  # some letters fit no syllable
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"letters": self.letters, "phrases": [c.as_dict() for c in self.phrases],
                "first_words": [c.as_dict() for c in self.first_words]}


def _unigram(vocab: Vocab) -> np.ndarray:
    counts = np.asarray(vocab.counts, dtype=np.float64) + 0.5
    counts[: len(SPECIALS)] = 0.5
    return np.log(counts / counts.sum())


def _estimates(lattice: list[list[Edges]], unigram: np.ndarray, n: int) -> np.ndarray:
    """best[s]: the best unigram score from s to the end (an optimistic guess of the rest)."""
    best = np.full(n + 1, -math.inf)
    best[n] = 0.0
    for s in range(n - 1, -1, -1):
        for edges in lattice[s]:
            word = float(np.max(unigram[edges.ids] - edges.penalty)) if not edges.literal \
                else -LITERAL_PENALTY
            best[s] = max(best[s], word + best[edges.end])
    return best


def _candidate(path: Sequence[Segment], letters: str, vocab: Vocab, consumed: list[int],
               log_prob: float, score: float) -> Candidate:
    words = tuple(letters[seg.start:seg.end] if seg.literal else vocab.word(seg.word_id)
                  for seg in path)
    return Candidate(words, consumed[path[-1].end], log_prob, score)


def check_options(k: int, beam: int) -> None:
    if not 1 <= k <= PINYIN_MAX_K:
        raise PinyinError(f"-k must be between 1 and {PINYIN_MAX_K}")
    if not 1 <= beam <= PINYIN_MAX_BEAM:
        raise PinyinError(f"--beam must be between 1 and {PINYIN_MAX_BEAM}")


def decode(scorer: Scorer, raw: str, context: Sequence[int] = (), k: int = 5,
           beam: int = DEFAULT_BEAM, lexicon: Lexicon | None = None,
           start: tuple[Any, Any] | None = None, margin: float = PRUNE_MARGIN) -> Decoding:
    """Ranked candidates for the typed pinyin `raw` after the word ids `context`.

    `start`: the scorer's (state, log_probs) after the context, when the caller has it."""
    check_options(k, beam)
    vocab = scorer.vocab
    lexicon = lexicon or lexicon_for(vocab)
    letters, breaks, consumed = normalize(raw)
    n = len(letters)
    if n == 0:
        return Decoding([], [], letters=letters)
    lattice = build_lattice(letters, breaks, lexicon)
    state, log_probs = start if start is not None else scorer.read(context)
    root = _Hyp(0.0, 0.0, (), None, state, log_probs.double().cpu().numpy())
    estimate = _estimates(lattice, _unigram(vocab), n)
    width = max(beam, k)
    at: dict[int, list[_Hyp]] = defaultdict(list)
    at[0].append(root)
    steps, reference = 0, -math.inf
    for s in range(n):
        if not at[s]:
            continue
        hyps = sorted(at.pop(s), key=lambda h: -h.score)[:beam]
        best = hyps[0].score + estimate[s]
        reference = max(reference, best)
        if best < reference - margin:
            continue
        steps += _expand(hyps, scorer)
        for hyp in hyps:
            for edges in lattice[s]:
                _extend(hyp, edges, hyp.log_probs, s, width if edges.end == n else beam, at)
    if not at.get(n) and margin != math.inf:  # pruned every way to the end: search again
        return decode(scorer, raw, context, k, beam, lexicon, (state, log_probs), math.inf)
    finals = sorted(at.get(n, []), key=lambda h: -h.score)
    phrases = _unique(_candidate(h.path, letters, vocab, consumed, h.log_prob, h.score)
                      for h in finals)[:k]
    first = _first_words(lattice[0], root.log_probs, phrases, letters, vocab, consumed, k)
    literal = any(e.literal for edges in lattice for e in edges)
    return Decoding(phrases, first, steps, letters, literal)


def _extend(hyp: _Hyp, edges: Edges, lp: np.ndarray, s: int, width: int,
            at: dict[int, list[_Hyp]]) -> None:
    if edges.literal:
        word_lp = np.zeros(1)
    else:
        word_lp = lp[edges.ids]
    scores = hyp.score + word_lp - edges.penalty
    if len(scores) > width:
        keep = np.argpartition(-scores, width - 1)[:width]
    else:
        keep = np.arange(len(scores))
    for i in keep:
        if not np.isfinite(scores[i]):
            continue
        segment = Segment(int(edges.ids[i]), s, edges.end, edges.literal)
        at[edges.end].append(_Hyp(float(scores[i]), hyp.log_prob + float(word_lp[i]),
                                  (*hyp.path, segment), hyp.state))


def _unique(candidates: Iterable[Candidate]) -> list[Candidate]:
    seen: set[tuple[str, int]] = set()
    out = []
    for c in candidates:
        if (c.text, c.letters) not in seen:
            seen.add((c.text, c.letters))
            out.append(c)
    return out


def _first_words(edges_at_0: list[Edges], log_probs: np.ndarray, phrases: list[Candidate],
                 letters: str, vocab: Vocab, consumed: list[int], k: int) -> list[Candidate]:
    """The first words of the best phrases, then the words the input can start with: exact
    matches (no abbreviation, partial syllable or literal) consuming more letters first, then
    the others by score. One entry per text."""
    found: list[Candidate] = []
    for edges in edges_at_0:
        word_lp = np.zeros(1) if edges.literal else log_probs[edges.ids]
        scores = word_lp - edges.penalty
        for i in np.argsort(-scores)[:k]:
            if not np.isfinite(scores[i]):
                continue
            path = (Segment(int(edges.ids[i]), 0, edges.end, edges.literal),)
            found.append(_candidate(path, letters, vocab, consumed, float(word_lp[i]),
                                    float(scores[i])))
    found.sort(key=lambda c: (c.score < c.log_prob, -c.letters if c.score >= c.log_prob else 0,
                              -c.score))
    best_of: dict[str, Candidate] = {}
    for c in found:
        best_of.setdefault(c.text, c)
    leading = [best_of[c.words[0]] for c in phrases if c.words[0] in best_of]
    out, seen = [], set()
    for c in [*leading, *found]:
        if c.text not in seen:
            seen.add(c.text)
            out.append(c)
    return out[:k]
