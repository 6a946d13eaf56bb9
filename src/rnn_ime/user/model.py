"""What the user has typed, as counts that fade: a unigram, a bigram and a trigram of committed
words.

Keyed by the words themselves (not vocabulary ids), so words outside the model's vocabulary are
learned too. Counts decay with the words typed since: an occurrence `HALF_LIFE` words ago weighs
half of one just typed. In memory a count is kept in *internal units*, v = c·2^((clock − epoch) /
half-life) for the effective count c; adding an occurrence adds 2^((now − epoch) / half-life);
ratios of counts (the probabilities) need no rescaling, and the epoch moves forward before the
numbers grow large.

    p_uni(w) = c(w) / Σ c,   p_bi(w | prev) = c(prev, w) / c(prev),
    p_tri(w | prev2, prev) = c(prev2, prev, w) / c(prev2, prev)

(how they are mixed with the model's distribution: user/scorer.py)

New words: a run of characters the user assembled from several picks (at least one of them a
single character), or a word of Chinese characters the tokenizer produced that neither the
vocabulary nor the lexicon lists, is kept with its reading and becomes typable at once.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from ..errors import RnnImeError
from ..ime.lexicon import HAN, MAX_WORD_SYLLABLES, word_readings
from ..ime.syllables import segmentations
from .store import (
    KEEP_COMMITS,
    MAX_COUNT,
    UserStore,
    UserStoreBusyError,
    UserStoreError,
    damaged,
    is_number,
)

HALF_LIFE = 20_000.0  # words typed
REBASE_EXPONENT = 500.0  # move the epoch before 2^(Δ/half-life) grows past 2^500
MAX_WORDS = 1_000_000  # words one profile keeps
MAX_COMMIT_CHARS = 10_000
MAX_IMPORT_COUNT = 1e9  # an imported word's count, at most
MAX_KEPT_COUNT = MAX_COUNT / 10  # imports stop adding there (the file's limit, with room)
MAX_CHANGES = 50_000  # unigram changes kept for the scorer's arrays; past it they are rebuilt


class UserLimitError(RnnImeError):
    """A profile that would grow past its limits."""


@dataclass(frozen=True)
class Lesson:
    """What one commit taught: the words counted (with the clock of each), the bigrams and
    trigrams, the words it made; undo takes exactly this back."""
    words: tuple[tuple[str, float], ...]
    bigrams: tuple[tuple[str, str, float], ...]
    made: tuple[tuple[str, str], ...]  # (word, reading "qi'chun")
    trigrams: tuple[tuple[str, str, str, float], ...] = ()

    def to_json(self) -> str:
        return json.dumps({"words": self.words, "bigrams": self.bigrams, "made": self.made,
                           "trigrams": self.trigrams}, ensure_ascii=False)

    @staticmethod
    def from_json(text: str) -> Lesson:
        """The lesson of `to_json`; ValueError when `text` is not one."""
        try:
            data = json.loads(text)
            lesson = Lesson(tuple(tuple(w) for w in data["words"]),
                            tuple(tuple(b) for b in data["bigrams"]),
                            tuple(tuple(m) for m in data["made"]),
                            tuple(tuple(t) for t in data.get("trigrams", ())))
        except (ValueError, TypeError, KeyError):
            raise ValueError("not a lesson") from None
        if not all(len(w) == 2 and type(w[0]) is str and is_number(w[1]) for w in lesson.words) \
                or not all(len(b) == 3 and type(b[0]) is str and type(b[1]) is str
                           and is_number(b[2]) for b in lesson.bigrams) \
                or not all(len(m) == 2 and type(m[0]) is str and type(m[1]) is str
                           for m in lesson.made) \
                or not all(len(t) == 4 and all(type(w) is str for w in t[:3])
                           and is_number(t[3]) for t in lesson.trigrams):
            raise ValueError("not a lesson")
        return lesson


@dataclass(frozen=True)
class _Change:
    """What one learning step changed in memory, for `_write_now` to write."""
    lesson: Lesson | None
    record: bool  # keep it as a commit (for undo)
    drop_commit: int | None = None
    statements: tuple[tuple[str, tuple], ...] = ()


class _Stale(Exception):
    """Another process wrote to the file after this one read it."""


@dataclass
class Counts:
    """The counts in internal units (see the module docstring)."""
    half_life: float = HALF_LIFE
    clock: float = 0.0  # words committed so far
    epoch: float = 0.0
    unigram: dict[str, float] = field(default_factory=dict)
    total: float = 0.0
    bigram: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    following: dict[str, float] = field(default_factory=dict)  # Σ over the bigrams of prev
    trigram: dict[tuple[str, str], dict[str, float]] = field(
        default_factory=lambda: defaultdict(dict))
    following2: dict[tuple[str, str], float] = field(default_factory=dict)  # Σ over a row
    made: dict[str, str] = field(default_factory=dict)  # word → reading
    # the words whose unigram changed, in order, with the change in internal units: the scorer
    # keeps arrays over the vocabulary and the lexicon and updates only these (a commit
    # changes a few of 100,000 words); `generation` moves when they cannot tell (a rebase)
    changes: list[tuple[str, float]] = field(default_factory=list)
    generation: int = 0
    version: int = 0  # changes with every update (callers cache on it)
    made_version: int = 0  # changes when `made` does (the lexicon of made words is cached on it)

    def unit(self, at: float) -> float:
        """The internal weight of one occurrence at clock `at`."""
        return 2.0 ** ((at - self.epoch) / self.half_life)

    def effective(self, value: float) -> float:
        """An internal count → the effective count now."""
        return value / self.unit(self.clock)

    def rebase(self) -> None:
        scale = 1.0 / self.unit(self.clock)
        self.unigram = {w: v * scale for w, v in self.unigram.items()}
        self.bigram = defaultdict(dict, {p: {w: v * scale for w, v in row.items()}
                                         for p, row in self.bigram.items()})
        self.following = {p: v * scale for p, v in self.following.items()}
        self.trigram = defaultdict(dict, {p: {w: v * scale for w, v in row.items()}
                                          for p, row in self.trigram.items()})
        self.following2 = {p: v * scale for p, v in self.following2.items()}
        self.total *= scale
        self.epoch = self.clock
        self._restart_changes()

    def _restart_changes(self) -> None:
        self.changes = []
        self.generation += 1

    def add(self, word: str, at: float, times: float = 1.0) -> None:
        """`times` occurrences at clock `at` (negative: taken back)."""
        weight = times * self.unit(at)
        before = self.unigram.get(word, 0.0)
        value = before + weight
        if value <= 1e-9 * self.unit(self.clock):
            self.unigram.pop(word, None)
            value = 0.0
        else:
            self.unigram[word] = value
        self.total = max(0.0, self.total + weight)
        self._note_change(word, value - before)

    def remove(self, word: str) -> float:
        """Drop `word` from the unigram; its internal value (0 when it was not there)."""
        value = self.unigram.pop(word, 0.0)
        self.total = max(0.0, self.total - value)
        self._note_change(word, -value)
        return value

    def _note_change(self, word: str, delta: float) -> None:
        """Record that `word`'s unigram value moved by `delta` (internal units)."""
        if len(self.changes) >= MAX_CHANGES:
            self._restart_changes()
        self.changes.append((word, delta))
        self.version += 1

    def add_bigram(self, prev: str, word: str, at: float, times: float = 1.0) -> None:
        self._add_pair(self.bigram, self.following, prev, word, at, times)

    def add_trigram(self, prev2: str, prev: str, word: str, at: float, times: float = 1.0
                    ) -> None:
        self._add_pair(self.trigram, self.following2, (prev2, prev), word, at, times)

    def _add_pair(self, rows: dict, following: dict, key, word: str, at: float,
                  times: float) -> None:
        """`times` occurrences of `word` after `key` (a word, or two) into `rows`."""
        weight = times * self.unit(at)
        row = rows[key]
        value = row.get(word, 0.0) + weight
        if value <= 1e-9 * self.unit(self.clock):
            row.pop(word, None)
        else:
            row[word] = value
        total = following.get(key, 0.0) + weight
        if not row:
            rows.pop(key, None)
            following.pop(key, None)
        else:
            following[key] = max(total, 0.0)
        self.version += 1

    def words_typed(self) -> float:
        """The effective number of words in the history (decayed)."""
        return self.effective(self.total)

    def unigram_probability(self, word: str) -> float:
        """c(word) / Σ c: the share of the history that is `word`."""
        return self.unigram.get(word, 0.0) / self.total if self.total > 0 else 0.0

    def bigram_probability(self, word: str, prev: str) -> float:
        """c(prev, word) / c(prev): the share of the words typed after `prev` that are
        `word` (0 when nothing was typed after `prev`)."""
        row = self.bigram.get(prev)
        return row.get(word, 0.0) / self.following[prev] if row else 0.0

    def trigram_probability(self, word: str, prev2: str, prev: str) -> float:
        """c(prev2, prev, word) / c(prev2, prev) (0 when nothing was typed after the two)."""
        row = self.trigram.get((prev2, prev))
        return row.get(word, 0.0) / self.following2[(prev2, prev)] if row else 0.0

    def forget_in_contexts(self, word: str) -> None:
        """Drop `word` from the bigrams and trigrams: the rows after it (or after a pair it is
        part of) and its place in every other row."""
        for rows, following, holds in ((self.bigram, self.following, lambda key: key == word),
                                       (self.trigram, self.following2, lambda key: word in key)):
            for key in list(rows):
                row = rows[key]
                if not holds(key) and word in row:
                    following[key] -= row.pop(word)
                if holds(key) or not row:
                    rows.pop(key)
                    following.pop(key, None)
        self.version += 1

    def after(self, prev: str | None) -> tuple[float, int]:
        """(effective count of the words typed after `prev`, how many distinct ones)."""
        row = self.bigram.get(prev) if prev is not None else None
        if not row:
            return 0.0, 0
        return self.effective(self.following.get(prev, 0.0)), len(row)

    def after_two(self, prev2: str | None, prev: str | None) -> tuple[float, int]:
        """(effective count of the words typed after `prev2 prev`, how many distinct ones)."""
        row = self.trigram.get((prev2, prev)) if prev2 is not None and prev is not None \
            else None
        if not row:
            return 0.0, 0
        return self.effective(self.following2.get((prev2, prev), 0.0)), len(row)


@cache
def _char_readings(char: str) -> frozenset[str]:
    from pypinyin import Style, pinyin

    found = pinyin(char, heteronym=True, style=Style.NORMAL, errors="ignore")
    return frozenset(s.replace("ü", "v") for s in found[0]) if found else frozenset()


def _valid_reading(word: str, reading: str) -> bool:
    """Whether `reading` ("qi'chun") gives each character of `word` one of its readings."""
    syllables = reading.split("'")
    return len(syllables) == len(word) and all(
        s in _char_readings(c) for c, s in zip(word, syllables, strict=True))


def import_entry(line: str) -> tuple[str, float, str | None] | None:
    """(word, count, reading or None) of a non-blank import line, or None when it stores
    nothing or is not ours: no word (only spaces), a count that is not a finite number ≥ 0, a
    reading that does not spell the word, or a count of 0 without a reading (a made word's)."""
    parts = line.rstrip("\n").split("\t") if "\t" in line else line.split()
    word = parts[0].strip() if parts else ""
    try:
        count = float(parts[1]) if len(parts) > 1 else 1.0
    except ValueError:
        return None
    reading = parts[2] if len(parts) > 2 and parts[2].strip() else None
    if reading is not None and not (HAN.fullmatch(word) and _valid_reading(word, reading)):
        return None  # a reading that does not spell the word: the line is not ours
    if not word or not math.isfinite(count) or count < 0 or (count == 0 and reading is None):
        return None
    return word, count, reading


def _reading_of(word: str, letters: str) -> str | None:
    """The syllables of `word` as typed in `letters`, when they cut into one reading of each
    character (a heteronym as the user typed it; not a fuzzy spelling), else pypinyin's
    reading; "qi'chun"."""
    if letters:
        for cut in segmentations(letters.replace("'", "")):
            if len(cut) == len(word) and _valid_reading(word, "'".join(cut)):
                return "'".join(cut)
    found = word_readings(word, limit=1)
    return "'".join(found[0]) if found else None


def made_from_picks(picks: Sequence[tuple[str, str]], known: Container[str]
                    ) -> tuple[str, str] | None:
    """A new word from one composition's picks: ≥ 2 picks, one of them a single character, all
    Chinese characters, 2–8 of them together, not a known word → (word, reading)."""
    if len(picks) < 2 or not any(len(text) == 1 for text, _ in picks):
        return None
    word = "".join(text for text, _ in picks)
    if not HAN.fullmatch(word) or not 2 <= len(word) <= MAX_WORD_SYLLABLES or word in known:
        return None
    reading = _reading_of(word, "".join(letters for _, letters in picks))
    return (word, reading) if reading else None


class UserModel:
    """One profile's counts, in memory, kept in step with its SQLite file (when it has one)."""

    def __init__(self, store: UserStore | None = None, half_life: float = HALF_LIFE,
                 max_words: int = MAX_WORDS) -> None:
        self.store = store
        self.max_words = max_words
        self.counts = Counts(half_life=half_life)
        self._seen_version = -1
        self._own: list[int] = []  # ids of this model's commits in the file (undo takes these)
        self.reloads = 0  # times the file was read again (another process wrote, a failed write)
        if store is not None:
            try:
                self.reload()
            except BaseException:  # a file it cannot read (damaged): not left open
                store.close()
                raise

    # ------------------------------------------------------------ loading
    def reload(self) -> None:
        """Read the whole profile from its file (at open, and when another process wrote)."""
        if self.store is None:
            return
        counts = Counts(half_life=self.counts.half_life)
        counts.clock = counts.epoch = self.store.clock()
        words = self.store.words()
        values = self._internal_values(counts, words, 1, "word")
        for (word, _, _, reading, made), value in zip(words, values, strict=True):
            if value > 0:
                counts.unigram[word] = value
            if made and reading:
                counts.made[word] = reading
        counts.total = math.fsum(counts.unigram.values())
        for rows, following, found, what in (
                (counts.bigram, counts.following, self.store.bigrams(), "pair"),
                (counts.trigram, counts.following2, self.store.trigrams(), "triple")):
            size = 2 if what == "pair" else 3  # words in a row: the context, then the word
            values = self._internal_values(counts, found, size, what)
            for row, value in zip(found, values, strict=True):
                if value > 0:
                    key = row[0] if size == 2 else row[:2]
                    rows[key][row[size - 1]] = value
                    following[key] = following.get(key, 0.0) + value
        if not math.isfinite(counts.total) or not all(map(math.isfinite, [
                *counts.following.values(), *counts.following2.values()])):
            raise damaged(self.store.path, "its counts are too large to add up")
        counts.version = self.counts.version + 1
        counts.made_version = self.counts.made_version + 1
        self.counts = counts
        self.reloads += 1
        self._seen_version = self.store.data_version()

    def _internal_values(self, counts: Counts, rows: list[tuple], at: int, what: str
                         ) -> list[float]:
        """The internal value of each row's (count, seen), at columns `at` and `at + 1` after
        its words, all at once; a value out of range is a one-line error naming the row (a
        `what` and its words)."""
        if not rows:
            return []
        count = np.fromiter((row[at] for row in rows), dtype=np.float64, count=len(rows))
        seen = np.fromiter((row[at + 1] for row in rows), dtype=np.float64, count=len(rows))
        with np.errstate(over="ignore", invalid="ignore"):
            values = count * np.exp2((seen - counts.epoch) / counts.half_life)
        if not np.isfinite(values).all():
            row = rows[int(np.flatnonzero(~np.isfinite(values))[0])]
            raise self._out_of_range(f"{what} {' '.join(map(repr, row[:at]))}", row[at],
                                     row[at + 1])
        return values.tolist()

    @property
    def _where(self) -> str | Path:
        """What messages name: the file, or `user model` for one kept in memory only."""
        return self.store.path if self.store else "user model"

    def _check_room(self, words: Iterable[str]) -> None:
        """Room for `words` within max_words, or UserLimitError."""
        counts = self.counts
        new_words = len(set(words) - counts.unigram.keys())
        if len(counts.unigram) + new_words > self.max_words:
            raise UserLimitError(f"this profile holds {len(counts.unigram):,} words, the "
                                 f"most it may is {self.max_words:,}; forget some first")

    def _out_of_range(self, what: str, count: float, seen: float) -> UserStoreError:
        return damaged(self._where,
                       f"{what} has count {count!r} at time {seen!r}, out of range")

    def refresh(self) -> bool:
        """Reload if another process wrote to the file since; whether it did."""
        if self.store is None or self.store.data_version() == self._seen_version:
            return False
        self.reload()
        return True

    # ------------------------------------------------------------ learning
    def learn_words(self, words: Sequence[str], prev: str | None = None,
                    made: Sequence[tuple[str, str]] = (), bigrams: bool = True,
                    prev2: str | None = None) -> Lesson:
        """Count `words` (in order, after `prev2 prev`; as a sequence when `bigrams`), keep the
        `made` words, and write it all in one transaction."""
        def change() -> _Change:
            self._check_room(words)
            counts = self.counts
            if (counts.clock + len(words) - counts.epoch) / counts.half_life > REBASE_EXPONENT:
                counts.rebase()
            taught_words, taught_bigrams, taught_trigrams = [], [], []
            last2, last = (prev2 if prev is not None else None), prev
            for word in words:
                counts.clock += 1.0
                counts.add(word, counts.clock)
                taught_words.append((word, counts.clock))
                if last is not None and bigrams:
                    counts.add_bigram(last, word, counts.clock)
                    taught_bigrams.append((last, word, counts.clock))
                    if last2 is not None:
                        counts.add_trigram(last2, last, word, counts.clock)
                        taught_trigrams.append((last2, last, word, counts.clock))
                last2, last = last, word
            new = tuple((w, r) for w, r in made if w not in counts.made)
            if new:
                counts.made.update(dict(new))
                counts.version += 1
                counts.made_version += 1
            return _Change(Lesson(tuple(taught_words), tuple(taught_bigrams), new,
                                  tuple(taught_trigrams)), record=True)

        return self._persist(change).lesson

    def add_counts(self, items: Sequence[tuple[str, float]],
                   made: Sequence[tuple[str, str]] = ()) -> None:
        """Counts as they are (an import): each word's count added once, now, without typing
        anything (the clock stays) and with no bigrams; not undoable."""
        def change() -> _Change:
            self._check_room(w for w, _ in items)
            counts = self.counts
            for word, count in items:
                room = MAX_KEPT_COUNT - counts.effective(counts.unigram.get(word, 0.0))
                if min(count, room) > 0:
                    counts.add(word, counts.clock, min(count, room))
            new = tuple((w, r) for w, r in made if w not in counts.made)
            counts.made.update(dict(new))
            counts.version += 1
            counts.made_version += bool(new)
            touched = tuple((w, counts.clock) for w, _ in items)
            return _Change(Lesson(touched, (), new), record=False)

        self._persist(change)

    def undo(self) -> Lesson | None:
        """Take back the learning of this model's last commit (Backspace right after it; again:
        the one before); None when there is none, or when the newest commit in the file is not
        this model's (another process committed since, or a forget took it)."""
        def change() -> _Change | None:
            if self.store is None:
                last = self._last
            else:
                newest = self.store.last_commit()
                mine = self._own[-1] if self._own else None
                last = newest if newest is not None and newest[0] == mine else None
            if last is None:
                return None
            commit_id, _, stored = last
            lesson = stored if isinstance(stored, Lesson) else self._lesson(commit_id, stored)
            counts = self.counts
            try:
                for word, at in lesson.words:
                    counts.add(word, at, -1.0)
                for prev, word, at in lesson.bigrams:
                    counts.add_bigram(prev, word, at, -1.0)
                for prev2, prev, word, at in lesson.trigrams:
                    counts.add_trigram(prev2, prev, word, at, -1.0)
            except OverflowError:
                self.reload()  # memory as the file holds it, nothing half taken back
                raise damaged(self._where,
                              f"commit {commit_id} has a time out of range") from None
            for word, _ in lesson.made:
                counts.made.pop(word, None)
            counts.version += 1
            counts.made_version += bool(lesson.made)
            if lesson.words:  # the clock as it was before the commit (it was the last one)
                counts.clock = max(counts.epoch, min(at for _, at in lesson.words) - 1.0)
            return _Change(lesson, record=False, drop_commit=commit_id)

        done = self._persist(change)
        if done is None:
            return None
        if self._own:
            self._own.pop()
        self._last = None
        return done.lesson

    def _lesson(self, commit_id: int, stored: str) -> Lesson:
        try:
            return Lesson.from_json(stored)
        except ValueError:
            raise damaged(self._where,
                          f"commit {commit_id} is not a lesson of rnn-ime") from None

    def forget(self, word: str) -> bool:
        """Remove a word and everything learned from it (its counts, its bigrams both ways,
        the commits that taught it, the saved adaptation of the model); whether it was
        known."""
        known = False

        def change() -> _Change:
            nonlocal known
            counts = self.counts
            known = word in counts.unigram or word in counts.made or word in counts.bigram
            counts.remove(word)
            counts.made_version += counts.made.pop(word, None) is not None
            counts.forget_in_contexts(word)
            return _Change(None, record=False, statements=(
                ("DELETE FROM words WHERE word = ?", (word,)),
                ("DELETE FROM bigrams WHERE prev = ? OR word = ?", (word, word)),
                ("DELETE FROM trigrams WHERE prev2 = ? OR prev = ? OR word = ?",
                 (word, word, word)),
                ("DELETE FROM commits WHERE instr(lesson, ?) > 0",
                 (json.dumps(word, ensure_ascii=False),)),
                # the model's adaptation cannot tell what the word taught it: all of it goes,
                # here and in every process with the profile open (they watch `forgets`)
                *((("DELETE FROM adaptation", ()),
                   ("INSERT INTO meta VALUES ('forgets', '1') ON CONFLICT(key) DO UPDATE SET "
                    "value = CAST(value AS INTEGER) + 1", ())) if known else ())))

        self._persist(change)
        if self._last is not None and any(w == word for w, _ in self._last[2].words):
            self._last = None
        if known and self.store is not None:
            self.store.scrub()  # nothing of the word left in the log's older pages either
        return known

    _last: tuple[int, float, Lesson] | None = None  # the last commit, without a file

    def _persist(self, change: Callable[[], _Change | None]) -> _Change | None:
        """Apply `change` to the counts in memory and write it in one transaction. If another
        process wrote since the counts were read, read them again and apply it again; if the
        file refuses the write, memory goes back to what the file holds (nothing half-learned)
        and the error is one line."""
        for _ in range(5):
            self.refresh()
            done = change()
            if done is None:
                return None
            try:
                self._write_now(done)
                return done
            except _Stale:
                self.reload()
            except UserStoreError:
                self.reload()
                raise
            except sqlite3.Error as error:
                self.reload()
                raise UserStoreError(f"{self._where}: "
                                     f"could not write ({error}); nothing was learned") from None
        raise UserStoreBusyError("the user file kept changing under this process; try again")

    def _write_now(self, done: _Change) -> None:
        counts, lesson = self.counts, done.lesson
        if self.store is None:
            if done.record and lesson is not None:
                self._last = (0, counts.clock, lesson)
            return
        touched = {w for w, _ in lesson.words} | {w for w, _ in lesson.made} if lesson else set()
        pairs = {(p, w) for p, w, _ in lesson.bigrams} if lesson else set()
        triples = {(p2, p, w) for p2, p, w, _ in lesson.trigrams} if lesson else set()
        now = counts.unit(counts.clock)
        with self.store.transaction() as db:
            version = self.store.data_version()
            if version != self._seen_version:  # another process wrote after our last read
                raise _Stale
            gone, kept = [], []
            for word in touched:
                value = counts.unigram.get(word, 0.0) / now
                reading = counts.made.get(word)
                if value <= 0 and reading is None:
                    gone.append((word,))
                else:
                    kept.append((word, value, counts.clock, reading, int(reading is not None)))
            db.executemany("DELETE FROM words WHERE word = ?", gone)
            db.executemany("INSERT INTO words (word, count, seen, reading, made) "
                           "VALUES (?, ?, ?, ?, ?) ON CONFLICT(word) DO UPDATE SET "
                           "count = excluded.count, seen = excluded.seen, "
                           "reading = excluded.reading, made = excluded.made", kept)
            for table, columns, rows, entries in (
                    ("bigrams", ("prev", "word"), counts.bigram, pairs),
                    ("trigrams", ("prev2", "prev", "word"), counts.trigram, triples)):
                names, marks = ", ".join(columns), ", ".join("?" * len(columns))
                gone, kept = [], []
                for entry in entries:
                    key = entry[0] if len(entry) == 2 else entry[:2]
                    value = rows.get(key, {}).get(entry[-1], 0.0) / now
                    if value <= 0:
                        gone.append(entry)
                    else:
                        kept.append((*entry, value, counts.clock))
                db.executemany(f"DELETE FROM {table} WHERE ({names}) = ({marks})", gone)
                db.executemany(f"INSERT INTO {table} VALUES ({marks}, ?, ?) ON CONFLICT"
                               f"({names}) DO UPDATE SET count = excluded.count, "
                               "seen = excluded.seen", kept)
            for statement, parameters in done.statements:
                db.execute(statement, parameters)
            db.execute("UPDATE meta SET value = ? WHERE key = 'clock'", (repr(counts.clock),))
            if done.record and lesson is not None:
                cursor = db.execute("INSERT INTO commits (clock, lesson) VALUES (?, ?)",
                                    (counts.clock, lesson.to_json()))
                self._own = [*self._own, cursor.lastrowid][-KEEP_COMMITS:]
                db.execute("DELETE FROM commits WHERE id <= (SELECT MAX(id) FROM commits) - ?",
                           (KEEP_COMMITS,))
            if done.drop_commit is not None:
                db.execute("DELETE FROM commits WHERE id = ?", (done.drop_commit,))
        self._seen_version = version  # our own commit does not change it

    # ------------------------------------------------------------ reading
    def stats(self) -> dict:
        counts = self.counts
        return {"words": len(counts.unigram), "made_words": len(counts.made),
                "bigrams": sum(len(row) for row in counts.bigram.values()),
                "trigrams": sum(len(row) for row in counts.trigram.values()),
                "words_typed": int(counts.clock),
                "effective_words": round(counts.words_typed(), 1),
                "half_life": counts.half_life,
                "model_steps": self.store.adaptation_steps() if self.store is not None else 0,
                "file": str(self.store.path) if self.store is not None else None}

    def export_lines(self) -> list[str]:
        """`word<TAB>count[<TAB>reading]` per word, most used first."""
        counts = self.counts
        out = []
        for word, value in sorted(counts.unigram.items(), key=lambda kv: -kv[1]):
            reading = counts.made.get(word)
            line = f"{word}\t{counts.effective(value):.3f}"
            out.append(line + (f"\t{reading}" if reading else ""))
        for word, reading in counts.made.items():
            if word not in counts.unigram:
                out.append(f"{word}\t0\t{reading}")
        return out

    def import_lines(self, lines: Sequence[str]) -> tuple[int, int]:
        """Words from `export` lines (`word<TAB>count[<TAB>reading]`) or `word [count]` lines,
        each count added to the word's count already there: (imported, skipped). Blank lines
        and `#` comments are passed over; a line that would store nothing (no word, a count
        that is not a number or not above 0, unless it carries a made word's reading, as
        `export` writes `word<TAB>0<TAB>reading`) is skipped."""
        imported = skipped = 0
        made: list[tuple[str, str]] = []
        items: dict[str, float] = {}
        for line in lines:
            if not line.strip() or line.startswith("#"):
                continue
            entry = import_entry(line)
            if entry is None:
                skipped += 1
                continue
            word, count, reading = entry
            if reading is not None:
                made.append((word, reading))
            if count > 0:
                items[word] = items.get(word, 0.0) + min(count, MAX_IMPORT_COUNT)
            imported += 1
        if items or made:
            self.add_counts(list(items.items()), made)
        return imported, skipped
