"""The lexicon: every word the input method can type, with its pinyin, apart from the model's
vocabulary.

Sources, merged:

- every character pypinyin knows (about 42k, each reading; the first is the common one),
- jieba's dictionary (about 349k words with frequencies; the reading of a word comes from
  pypinyin's phrase-aware conversion, so 银行 reads yin hang),
- the model's vocabulary (its words are scored by the model itself),
- the training words the vocabulary left out (`Vocab.outside`, with their counts),
- word lists of the user's (`--lexicon FILE`: a word and an optional frequency per line).

The first two do not depend on the model: they are built once (about 10 s) and cached on disk
(`cache_dir()`), keyed by the versions of pypinyin and of jieba's dictionary; a cold start then
loads them in well under a second. The model's vocabulary is laid over them, and that overlay
is cached too, per vocabulary (`cached_lexicon`); the user's lists are laid over in memory.

Lookup is by the *initials* of a reading (今天 → "j t"): a typed piece — a whole syllable, an
initial, the start of a syllable — always has one initial, so the decoder walks typed pieces
through the keys and then keeps the entries whose syllables fit each piece.

A word outside the model's vocabulary is scored as log p(<unk> | context) + log p(word | <unk>);
`Lexicon.extra` holds the second term (`oov_extra`): the training text's own <unk> words with
their counts, smoothed towards the dictionary's frequencies (Witten-Bell), or the dictionary's
frequencies alone when the training words are not known (see `OOV_SMOOTHING`).
`Lexicon.script` says how each word is written (`script_classes`): this is a simplified-Chinese
input method, and the decoder ranks traditional forms (們 國) and rare characters lower.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import sys
import time
from collections import ChainMap
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib.metadata import version as package_version
from pathlib import Path

import numpy as np

from ..corpus import decode_utf8
from ..errors import RnnImeError
from ..fsutil import KEY_PATTERN, cache_dir, mark_used, prune_cache, sha256_file, write_bytes
from ..vocab import SPECIALS, UNK_ID, Vocab
from .syllables import all_syllables, initial, strip_tone, syllable_ids

CACHE_FORMAT = 3  # 2: the base's WordStarts; 3: its initials' prefixes
MAX_WORD_SYLLABLES = 8  # longer dictionary entries are left out (idioms are ≤ 4–8)
MAX_READINGS = 4  # readings kept per vocabulary word outside the cached lexicon
OOV_SMOOTHING = 1.0  # added to every out-of-vocabulary word's frequency
# how a word is written (Lexicon.script; the decoder's Penalties rank the last two lower)
COMMON, TRADITIONAL, RARE = 0, 1, 2  # GB2312's 6,763 hanzi; Big5 not GB2312 (們 國); others (镕)
USER_WORD_FREQUENCY = 1000  # a user's word listed without a frequency
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


class LexiconError(RnnImeError):
    """A word list that cannot be read (not UTF-8, missing)."""


# ---------------------------------------------------------------- readings
def word_readings(word: str, limit: int = MAX_READINGS) -> list[tuple[str, ...]]:
    """Tone-less readings of a word of Chinese characters: pypinyin's phrase-aware reading
    first, then other combinations of the characters' readings (up to `limit`); [] for
    anything else."""
    if not HAN.fullmatch(word):
        return []
    from itertools import product

    from pypinyin import Style, lazy_pinyin, pinyin

    known = syllable_ids()
    first = tuple(s.replace("ü", "v") for s in lazy_pinyin(word, style=Style.NORMAL,
                                                             errors="ignore"))
    out = [first] if len(first) == len(word) and all(s in known for s in first) else []
    if limit > 1:
        options = pinyin(word, heteronym=True, style=Style.NORMAL, errors="ignore")
        if len(options) == len(word):
            for combination in product(*options):
                if len(out) >= limit:
                    break
                reading = tuple(s.replace("ü", "v") for s in combination)
                if reading not in out and all(s in known for s in reading):
                    out.append(reading)
    return out


def _jieba_dict() -> Path:
    import jieba

    return Path(jieba.__file__).parent / "dict.txt"


# ---------------------------------------------------------------- entries, indexed by initials
@dataclass(frozen=True)
class Entries:
    """Readings of words, sorted by their initials key; `word` indexes a word list."""
    word: np.ndarray  # (E,) int32
    syllables: np.ndarray  # (E, MAX_WORD_SYLLABLES) int16, -1 past the word's end
    rank: np.ndarray  # (E,) int8: 0 for a word's first reading
    keys: tuple[str, ...]  # distinct initials keys ("j t"), sorted
    offsets: np.ndarray  # (K + 1,) int64: entries of keys[i] are offsets[i]:offsets[i+1]

    @cached_property
    def index(self) -> dict[str, tuple[int, int]]:
        bounds = self.offsets.tolist()
        return {key: (bounds[i], bounds[i + 1]) for i, key in enumerate(self.keys)}

    @cached_property
    def prefixes(self) -> frozenset[str]:
        """Every key and every proper prefix of a key (whole initials)."""
        out: set[str] = set()
        for key in self.keys:
            parts = key.split(" ")
            out.update(" ".join(parts[:i]) for i in range(1, len(parts) + 1))
        return frozenset(out)


def key_of(syllable_row: Sequence[int]) -> str:
    names = all_syllables()
    return " ".join(initial(names[s]) for s in syllable_row)


def build_entries(readings: Iterable[tuple[int, tuple[str, ...], int]]) -> Entries:
    """(word index, reading, rank) triples → Entries."""
    ids = syllable_ids()
    rows, words, ranks, keys = [], [], [], []
    for word, reading, rank in readings:
        if not 1 <= len(reading) <= MAX_WORD_SYLLABLES:
            continue
        row = [ids[s] for s in reading]
        rows.append(row + [-1] * (MAX_WORD_SYLLABLES - len(row)))
        words.append(word)
        ranks.append(min(rank, 127))
        keys.append(" ".join(initial(s) for s in reading))
    order = sorted(range(len(keys)), key=keys.__getitem__)
    sorted_keys = [keys[i] for i in order]
    distinct, offsets = [], []
    for position, key in enumerate(sorted_keys):
        if not distinct or distinct[-1] != key:
            distinct.append(key)
            offsets.append(position)
    offsets.append(len(sorted_keys))
    syllables = np.asarray(rows, dtype=np.int16).reshape(-1, MAX_WORD_SYLLABLES)
    return Entries(np.asarray(words, dtype=np.int32)[order], syllables[order],
                   np.asarray(ranks, dtype=np.int8)[order], tuple(distinct),
                   np.asarray(offsets, dtype=np.int64))


@dataclass(frozen=True)
class WordStarts:
    """The longer words each character begins, by the syllable it is read with there (机 read
    ji begins 机会 机场 …): what a character typed as one syllable may be the start of."""
    keys: np.ndarray  # (E,) int64, sorted: first character's word index × syllables + syllable
    words: np.ndarray  # (E,) int64: word indices

    def of(self, chars: np.ndarray, syllable: int) -> tuple[np.ndarray, np.ndarray]:
        """(words, owner): the longer words each of `chars` begins read as `syllable`, and for
        each word the position in `chars` of the character that begins it."""
        keys = chars.astype(np.int64) * len(all_syllables()) + syllable
        first = np.searchsorted(self.keys, keys)
        counts = np.searchsorted(self.keys, keys + 1) - first
        owner = np.repeat(np.arange(len(chars)), counts)
        offsets = np.repeat(first - (np.cumsum(counts) - counts), counts)
        return self.words[offsets + np.arange(len(owner))], owner


def word_starts(entries: Entries, first_char: np.ndarray) -> WordStarts:
    """WordStarts of the words of `entries`, each under `first_char[word]` (the word index of
    its first character; -1 for a single character, or a first character the lexicon lacks)
    and the first syllable of each of its readings (a word counted once per pair)."""
    first = first_char[entries.word]
    keep = first >= 0
    words = entries.word[keep].astype(np.int64)
    keys = first[keep] * len(all_syllables()) + entries.syllables[keep, 0].astype(np.int64)
    pairs = np.unique((keys << _WORD_BITS) | words)  # sorted by key, each pair once
    return WordStarts(pairs >> _WORD_BITS, pairs & ((1 << _WORD_BITS) - 1))


_WORD_BITS = 32


def overlay_starts(entries: Entries, words: Sequence[str],
                   position: Callable[[str], int | None]) -> WordStarts:
    """WordStarts of a part laid over the base: the first characters of its words only."""
    own = np.unique(entries.word)
    first = np.full(len(words), -1, dtype=np.int64)
    first[own] = first_characters([words[i] for i in own.tolist()], position)
    return word_starts(entries, first)


def first_characters(words: Sequence[str], position: Callable[[str], int | None]
                     ) -> np.ndarray:
    """(W,) int64: for each word longer than one character, the word index of its first
    character (-1 when the lexicon lacks it); -1 for a single character."""
    table = {char: position(char) for char in {w[0] for w in words if len(w) > 1}}
    return np.fromiter((-1 if len(w) < 2 or table[w[0]] is None else table[w[0]]
                        for w in words), dtype=np.int64, count=len(words))


# ---------------------------------------------------------------- the cached base
@dataclass(frozen=True)
class BaseLexicon:
    """Characters and jieba's words with their frequencies: independent of any model."""
    words: tuple[str, ...]
    frequency: np.ndarray  # (W,) float64
    entries: Entries
    starts: WordStarts

    @cached_property
    def position(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.words)}


@lru_cache(maxsize=1)  # asked for by the base's cache file and the readings' (a 5 MB hash)
def _base_fingerprint() -> str:
    # the version from the package's metadata: importing pypinyin costs a cold start 0.4 s
    parts = [str(CACHE_FORMAT), package_version("pypinyin"), sha256_file(_jieba_dict())]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def build_base() -> BaseLexicon:
    """Every character pypinyin knows and every word of jieba's dictionary, with readings."""
    from pypinyin.pinyin_dict import pinyin_dict

    frequency: dict[str, float] = {}
    for line in _jieba_dict().read_text(encoding="utf-8").splitlines():
        parts = line.split(" ")
        if len(parts) >= 2 and HAN.fullmatch(parts[0]) and parts[1].isdigit():
            frequency[parts[0]] = frequency.get(parts[0], 0.0) + float(parts[1])
    return base_of(frequency, (chr(code) for code in sorted(pinyin_dict)))


def base_of(frequency: dict[str, float], characters: Iterable[str] = ()) -> BaseLexicon:
    """A base lexicon of `characters` (every reading of each) and the words of `frequency`
    (their phrase-aware reading); a single character listed in `frequency` counts as one of
    `characters`. Small ones serve tests."""
    from pypinyin.pinyin_dict import pinyin_dict

    known = syllable_ids()
    words: list[str] = []
    readings: list[tuple[int, tuple[str, ...], int]] = []
    singles = dict.fromkeys([*characters, *(w for w in frequency if len(w) == 1)])
    for char in singles:
        if not HAN.fullmatch(char) or ord(char) not in pinyin_dict:
            continue
        found = [strip_tone(r) for r in pinyin_dict[ord(char)].split(",")]
        found = [s for i, s in enumerate(found) if s in known and s not in found[:i]]
        if found:
            readings.extend((len(words), (s,), rank) for rank, s in enumerate(found))
            words.append(char)
    for word in frequency:
        if 1 < len(word) <= MAX_WORD_SYLLABLES:
            reading = word_readings(word, limit=1)
            if reading:
                readings.append((len(words), reading[0], 0))
                words.append(word)
    freq = np.asarray([frequency.get(w, 0.0) for w in words], dtype=np.float64)
    entries = build_entries(readings)
    position = {w: i for i, w in enumerate(words)}
    return BaseLexicon(tuple(words), freq, entries,
                       word_starts(entries, first_characters(words, position.get)))


def _text_array(items: Sequence[str]) -> np.ndarray:
    return np.frombuffer("\n".join(items).encode("utf-8"), dtype=np.uint8)


def _array_text(array: np.ndarray) -> tuple[str, ...]:
    text = array.tobytes().decode("utf-8")
    return tuple(text.split("\n")) if text else ()


def save_base(base: BaseLexicon, path: Path) -> None:
    _save_arrays(path, words=_text_array(base.words), frequency=base.frequency,
                 **_index_arrays(base.entries, base.starts))


def _index_arrays(entries: Entries, starts: WordStarts) -> dict[str, np.ndarray]:
    """The arrays of a cache file that `_entries_of_arrays` and `_starts_of_arrays` read."""
    return {"word": entries.word, "syllables": entries.syllables, "rank": entries.rank,
            "keys": _text_array(entries.keys), "offsets": entries.offsets,
            "prefixes": _text_array(sorted(entries.prefixes)), "start_keys": starts.keys,
            "start_words": starts.words}


def _save_arrays(path: Path, **arrays: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes(path, buffer.getvalue())


def load_base_file(path: Path) -> BaseLexicon:
    """The base lexicon cached in `path`; anything wrong with the file raises (what numpy and
    zipfile raise, or ValueError from `base_of_arrays`)."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {name: f[name] for name in CACHE_ARRAYS}  # each read (and CRC-checked) now
    return base_of_arrays(arrays)


CACHE_ARRAYS = {"words": np.uint8, "frequency": np.float64, "word": np.int32,
                "syllables": np.int16, "rank": np.int8, "keys": np.uint8, "offsets": np.int64,
                "start_keys": np.int64, "start_words": np.int64, "prefixes": np.uint8}


def base_of_arrays(arrays: dict[str, np.ndarray]) -> BaseLexicon:
    """The arrays of a cache file → a BaseLexicon, checked so that a damaged file cannot pass
    for a lexicon: dtypes, shapes, and every index within its bounds (ValueError if not)."""
    _check_dtypes(arrays, CACHE_ARRAYS)
    words = _array_text(arrays["words"])
    frequency = arrays["frequency"]
    if frequency.shape != (len(words),):
        raise ValueError("arrays of inconsistent shapes")
    if not np.isfinite(frequency).all() or (frequency < 0).any():
        raise ValueError("a frequency that is not a finite count")
    return BaseLexicon(words, frequency, _entries_of_arrays(arrays, len(words)),
                       _starts_of_arrays(arrays, len(words)))


def _check_dtypes(arrays: dict[str, np.ndarray], expected: dict[str, type]) -> None:
    for name, dtype in expected.items():
        if arrays[name].dtype != dtype:
            raise ValueError(f"{name}: dtype {arrays[name].dtype}, not {np.dtype(dtype)}")


def _entries_of_arrays(arrays: dict[str, np.ndarray], word_count: int) -> Entries:
    """The Entries of a cache file's arrays, their word indices below `word_count`."""
    keys = _array_text(arrays["keys"])
    word, offsets = arrays["word"], arrays["offsets"]
    syllables, rank = arrays["syllables"], arrays["rank"]
    size = len(word)
    if word.shape != (size,) or rank.shape != (size,) \
            or syllables.shape != (size, MAX_WORD_SYLLABLES) \
            or offsets.shape != (len(keys) + 1,):
        raise ValueError("arrays of inconsistent shapes")
    if size and (word.min() < 0 or word.max() >= word_count):
        raise ValueError("a word index out of range")
    if size and (syllables.min() < -1 or syllables.max() >= len(all_syllables())):
        raise ValueError("a syllable id out of range")
    if offsets[0] != 0 or offsets[-1] != size or (np.diff(offsets) < 0).any():
        raise ValueError("offsets out of order")
    prefixes = frozenset(_array_text(arrays["prefixes"]))
    if not prefixes.issuperset(keys):
        raise ValueError("the initials' prefixes leave out a key")
    entries = Entries(word, syllables, rank, keys, offsets)
    entries.__dict__["prefixes"] = prefixes  # as Entries.prefixes would find them, read
    return entries


def _starts_of_arrays(arrays: dict[str, np.ndarray], word_count: int) -> WordStarts:
    start_keys, start_words = arrays["start_keys"], arrays["start_words"]
    if start_keys.shape != start_words.shape or start_keys.ndim != 1:
        raise ValueError("arrays of inconsistent shapes")
    if len(start_keys) and ((np.diff(start_keys) < 0).any() or start_keys.min() < 0
                            or start_keys.max() >= word_count * len(all_syllables())
                            or start_words.min() < 0 or start_words.max() >= word_count):
        raise ValueError("word starts out of order or out of range")
    return WordStarts(start_keys, start_words)


def cached_base(path: Path, build: Callable[[], BaseLexicon]) -> BaseLexicon:
    """The base lexicon cached in `path`, else `build()`, written (atomically) to `path`. A
    cache file that does not load is built again with a note: it is only a cache."""
    if path.is_file():
        try:
            found = load_base_file(path)
            mark_used(path)
            return found
        except Exception as error:  # whatever a damaged file makes zipfile or numpy raise
            reason = (str(error).strip().splitlines() or [""])[0][:80]
            _note(f"note: {path} is damaged ({type(error).__name__}"
                  f"{': ' + reason if reason else ''}); building the lexicon again")
    started = time.perf_counter()
    _note("building the pinyin lexicon (characters and jieba's dictionary), once …")
    base = build()
    try:
        save_base(base, path)
        where = f"cached in {path}"
        prune_cache(path, f"lexicon-{KEY_PATTERN}.npz")
    except OSError as error:
        where = f"not cached ({error.strerror or error})"
    _note(f"lexicon: {len(base.words):,} words, built in "
          f"{time.perf_counter() - started:.1f} s, {where}")
    return base


@lru_cache(maxsize=1)
def base_lexicon() -> BaseLexicon:
    """The cached base lexicon, built (and written to the cache) the first time."""
    return cached_base(cache_dir() / f"lexicon-{_base_fingerprint()}.npz", build_base)


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- a user's word list
@dataclass(frozen=True)
class WordList:
    words: tuple[tuple[str, float], ...]
    skipped: int
    examples: tuple[str, ...]


@lru_cache(maxsize=8)
def _read_word_list(path: str, digest: str) -> WordList:
    text = decode_utf8(Path(path).read_bytes(), path, LexiconError)
    found: dict[str, float] = {}
    skipped, examples = 0, []
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts or line.lstrip().startswith("#"):
            continue
        word = parts[0]
        ok = HAN.fullmatch(word) is not None and len(word) <= MAX_WORD_SYLLABLES
        frequency = USER_WORD_FREQUENCY
        if ok and len(parts) >= 2:
            try:
                frequency = float(parts[1])
                ok = frequency > 0 and np.isfinite(frequency) and len(parts) == 2
            except ValueError:
                ok = False
        if not ok or not word_readings(word, limit=1):
            skipped += 1
            if len(examples) < 3:
                examples.append(f"line {number}: {line[:40]!r}")
            continue
        found[word] = found.get(word, 0.0) + frequency
    return WordList(tuple(found.items()), skipped, tuple(examples))


def read_word_list(path: str | Path) -> WordList:
    """A user's word list: `word [frequency]` per line (# starts a comment); lines that are not
    one word of Chinese characters with an optional positive number are counted and skipped."""
    path = Path(path)
    if not path.is_file():
        raise LexiconError(f"{path}: no such word list")
    return _read_word_list(str(path), sha256_file(path))


# ---------------------------------------------------------------- the lexicon a decoder uses
@dataclass(frozen=True)
class Lexicon:
    """The base lexicon with the model's vocabulary and the user's words laid over it.

    Words are numbered: the base's first, then the overlay's. For each word: the id the scorer
    steps with (its vocabulary id, or <unk>) and `extra`, the log-probability added to the
    scorer's (0 for a vocabulary word, log p(word | <unk>) for the others)."""
    words: tuple[str, ...]
    step_id: np.ndarray  # (W,) int64
    extra: np.ndarray  # (W,) float64
    parts: tuple[Entries, ...]  # the base's entries, then the overlay's
    vocab_sha256: str
    skipped_user_lines: int = 0
    frequency: np.ndarray | None = None  # (W,) the counts `extra` comes from
    script: np.ndarray | None = None  # (W,) int8: COMMON, TRADITIONAL or RARE
    base_starts: WordStarts | None = None  # parts[0]'s, when it is the cached base's
    seen: np.ndarray | None = None  # (W,) training counts of the words outside the vocabulary

    @cached_property
    def memo(self) -> dict:
        """The lattice's memo of matched spans (lattice.MATCH_MEMO)."""
        return {}

    @cached_property
    def prefixes(self) -> Container[str]:
        """Every initials key and proper prefix of one (the lattice's test for going on)."""
        out: frozenset[str] = frozenset()
        for part in self.parts:
            out = out | part.prefixes
        return out

    def lookup(self, key: str) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(word, syllables, rank) arrays of the entries whose initials are `key`."""
        out = []
        for part in self.parts:
            bounds = part.index.get(key)
            if bounds is not None:
                a, b = bounds
                out.append((part.word[a:b], part.syllables[a:b], part.rank[a:b]))
        return out

    @property
    def in_vocab(self) -> np.ndarray:
        return self.step_id != UNK_ID

    def typable(self, vocab_size: int) -> np.ndarray:
        """(vocab_size,) bool: the vocabulary ids some word of the lexicon steps with (not the
        specials, nor punctuation)."""
        found = self.__dict__.get("_typable")
        if found is None or len(found) != vocab_size:
            found = np.zeros(vocab_size, dtype=bool)
            ids = self.step_id[self.step_id != UNK_ID]
            found[ids[ids < vocab_size]] = True
            self.__dict__["_typable"] = found
        return found

    @cached_property
    def starts(self) -> tuple[WordStarts, ...]:
        """The longer words of each part, by first character and syllable."""
        done, parts = ((self.base_starts,), self.parts[1:]) if self.base_starts is not None \
            else ((), self.parts)
        return (*done, *(overlay_starts(part, self.words, self.position.get) for part in parts))

    def longer_words(self, chars: np.ndarray, syllable: int) -> tuple[np.ndarray, np.ndarray]:
        """(words, owner): the words longer than one character that each of `chars` begins,
        read as `syllable` there, and for each the position in `chars` of its first."""
        found = [part.of(chars, syllable) for part in self.starts]
        if len(found) == 1:
            return found[0]
        return np.concatenate([w for w, _ in found]), np.concatenate([o for _, o in found])

    @cached_property
    def single(self) -> np.ndarray:
        """(W,) bool: the word is one character."""
        return np.fromiter(map(len, self.words), dtype=np.int64, count=len(self.words)) == 1

    def oov_log_prob(self, word: str) -> float:
        """log p(word | <unk>) of a word outside the vocabulary: from its frequency when the
        lexicon lists it, else from its characters' (each char's probability times a share for
        strings nobody lists)."""
        position = self.position.get(word)
        if position is not None and self.step_id[position] == UNK_ID:
            return float(self.extra[position])
        chars = [self.position.get(c) for c in word]
        if not word or any(c is None or self.step_id[c] != UNK_ID for c in chars):
            return -np.inf
        return UNLISTED_SHARE_LOG + float(sum(self.extra[c] for c in chars))

    @cached_property
    def position(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.words)}

    def with_words(self, made: dict[str, str]) -> Lexicon:
        """This lexicon and the words the user made (word → reading "qi'chun"), each counted
        as a word of the user's word list (USER_WORD_FREQUENCY); p(word | <unk>) renormalised
        over them all. A made word the lexicon lists already is offered whatever its script.
        Itself when it lists every one already, as offered."""
        ids = syllable_ids()
        new = [(w, tuple(r.split("'"))) for w, r in made.items() if w not in self.position]
        new = [(w, r) for w, r in new if len(r) == len(w) and all(s in ids for s in r)]
        script = self.script if self.script is not None \
            else np.zeros(len(self.words), dtype=np.int8)
        # the user's own words are theirs, whatever their characters
        listed = [self.position[w] for w in made if w in self.position]
        listed = [i for i in listed if script[i] != COMMON]
        if not new and not listed:
            return self
        script = np.concatenate([script, np.full(len(new), COMMON, dtype=np.int8)])
        script[listed] = COMMON
        start = len(self.words)
        entries = build_entries((start + i, r, 0) for i, (_, r) in enumerate(new))
        step_id = np.concatenate([self.step_id, np.full(len(new), UNK_ID)])
        base = self.frequency if self.frequency is not None else np.zeros(len(self.words))
        frequency = np.concatenate([base, np.full(len(new), float(USER_WORD_FREQUENCY))])
        seen = None if self.seen is None else np.concatenate([self.seen, np.zeros(len(new))])
        made_lexicon = Lexicon(self.words + tuple(w for w, _ in new), step_id,
                               oov_extra(frequency, step_id != UNK_ID, seen),
                               (*self.parts, entries) if new else self.parts,
                               self.vocab_sha256, self.skipped_user_lines, frequency, script,
                               self.base_starts, seen)
        # look-ups share this lexicon's tables (a server keeps one such lexicon per profile)
        made_lexicon.__dict__["position"] = ChainMap(
            {w: start + i for i, (w, _) in enumerate(new)}, self.position)
        made_lexicon.__dict__["prefixes"] = Either(self.prefixes, entries.prefixes) if new \
            else self.prefixes
        made_lexicon.__dict__["starts"] = (*self.starts, overlay_starts(
            entries, made_lexicon.words, made_lexicon.position.get)) if new else self.starts
        made_lexicon.__dict__["single"] = np.concatenate(
            [self.single, np.fromiter((len(w) == 1 for w, _ in new), dtype=bool, count=len(new))])
        return made_lexicon


UNLISTED_SHARE_LOG = float(np.log(0.01))


@dataclass(frozen=True)
class Either:
    """Membership in either of two sets, without building their union."""
    first: Container[str]
    second: Container[str]

    def __contains__(self, item: object) -> bool:
        return item in self.first or item in self.second


def skipped_note(lexicon: Lexicon) -> str | None:
    """One line about the user's word-list lines that were skipped, or None when none was."""
    count = lexicon.skipped_user_lines
    if not count:
        return None
    return (f"note: skipped {count} line{'s' if count != 1 else ''} of the word lists that "
            "are not `word [frequency]` (one word of Chinese characters, a positive number)")


@lru_cache(maxsize=1)
def _script_table() -> np.ndarray:
    """(0x110000,) int8 over code points: COMMON in GB2312, TRADITIONAL in Big5 only, RARE for
    any other character."""
    table = np.full(0x110000, RARE, dtype=np.int8)
    for encoding, value in (("big5", TRADITIONAL), ("gb2312", COMMON)):
        for high in range(0x81, 0xFF):
            for low in range(0x40, 0xFF):
                try:
                    table[ord(bytes((high, low)).decode(encoding))] = value
                except (UnicodeDecodeError, TypeError):
                    continue
    return table


def script_classes(words: Sequence[str]) -> np.ndarray:
    """(W,) int8: how each word is written, by its least common character (COMMON,
    TRADITIONAL, RARE); vectorised over the joined text."""
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    if not len(words) or lengths.min() == 0:
        table = _script_table()
        return np.asarray([max((table[ord(c)] for c in w), default=COMMON) for w in words],
                          dtype=np.int8)
    codes = np.frombuffer("".join(words).encode("utf-32-le"), dtype=np.uint32)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return np.maximum.reduceat(_script_table()[codes], starts).astype(np.int8)


def oov_extra(frequency: np.ndarray, in_vocab: np.ndarray, seen: np.ndarray | None = None
              ) -> np.ndarray:
    """log p(word | <unk>) for each word outside the vocabulary, 0 for the vocabulary's; they
    sum to one over the words outside it.

    The dictionary's frequencies (smoothed) give a prior q; `seen`, the counts of these words
    among the training text's <unk> tokens, is what <unk> actually stood for, and where known
    p(word | <unk>) = (seen(word) + T·q(word)) / (N + T), N the tokens and T the distinct words
    seen (Witten-Bell: the more distinct words <unk> was, the more a new one is likely)."""
    weights = np.where(in_vocab, 0.0, frequency + OOV_SMOOTHING)
    total = weights.sum()
    if total <= 0:
        return np.where(in_vocab, 0.0, -np.inf)
    probability = weights / total
    if seen is not None:
        counts = np.where(in_vocab, 0.0, seen)
        tokens, types = float(counts.sum()), float(np.count_nonzero(counts))
        if tokens > 0:
            probability = (counts + types * probability) / (tokens + types)
    with np.errstate(divide="ignore"):
        extra = np.log(probability)
    return np.where(in_vocab, 0.0, extra)


def build_lexicon(vocab: Vocab, base: BaseLexicon, word_lists: Sequence[WordList] = ()
                  ) -> Lexicon:
    """The base with the vocabulary's words (those the base lacks get their readings here), the
    training words outside the vocabulary (`vocab.outside`) and the user's words laid over
    it."""
    words = list(base.words)
    frequency = list(base.frequency.tolist())
    position = dict(base.position)
    extra_readings: list[tuple[int, tuple[str, ...], int]] = []
    readings_of = _ReadingsCache(cache_dir() / f"readings-{_overlay_key(vocab)}.json")

    def add(word: str, limit: int) -> int | None:
        if word in position:
            return position[word]
        readings = readings_of(word, limit)
        if not readings:
            return None
        position[word] = len(words)
        extra_readings.extend((len(words), r, rank) for rank, r in enumerate(readings))
        words.append(word)
        frequency.append(0.0)
        return position[word]

    for word in vocab.words[len(SPECIALS):]:
        add(word, MAX_READINGS)
    seen_at: dict[int, int] = {}
    for word, count in vocab.outside:
        index = add(word, 1) if len(word) <= MAX_WORD_SYLLABLES else None
        if index is not None:
            seen_at[index] = seen_at.get(index, 0) + count
    skipped = 0
    listed: list[int] = []
    for word_list in word_lists:
        skipped += word_list.skipped
        for word, count in word_list.words:
            index = add(word, 1)
            if index is not None:
                frequency[index] += count
                listed.append(index)
    step_id = np.full(len(words), UNK_ID, dtype=np.int64)
    for word_id, word in enumerate(vocab.words):
        if word_id >= len(SPECIALS) and word in position:
            step_id[position[word]] = word_id
    counts = np.asarray(frequency)
    seen = None
    if vocab.outside:
        seen = np.zeros(len(words))
        seen[list(seen_at)] = list(seen_at.values())
    script = script_classes(words)
    script[listed] = COMMON  # a word the user listed is theirs, whatever its characters
    extra = oov_extra(counts, step_id != UNK_ID, seen)
    readings_of.save()
    parts = (base.entries,) + ((build_entries(extra_readings),) if extra_readings else ())
    lexicon = Lexicon(tuple(words), step_id, extra, parts, vocab.sha256, skipped, counts,
                      script, base.starts, seen)
    lexicon.__dict__["position"] = position  # word → index, built above: not built again
    return lexicon


# ---------------------------------------------------------------- the cached overlay
OVERLAY_FORMAT = 1  # the file's layout (the code that fills it is fingerprinted as well)
OVERLAY_ARRAYS = {"words": np.uint8, "step_id": np.int64, "extra": np.float64,
                  "frequency": np.float64, "script": np.int8, "seen": np.float64,
                  "word": np.int32, "syllables": np.int16, "rank": np.int8, "keys": np.uint8,
                  "offsets": np.int64, "prefixes": np.uint8, "start_keys": np.int64,
                  "start_words": np.int64}


def cached_lexicon(vocab: Vocab, base: BaseLexicon) -> Lexicon:
    """build_lexicon(vocab, base), kept in the cache dir per vocabulary (laying 30k words and
    the training's outside words over the base takes most of a second; reading them back, a
    tenth). Only a cache: a file that does not load is built and written again."""
    path = cache_dir() / f"overlay-{OVERLAY_FORMAT}-{_overlay_key(vocab)}.npz"
    if path.is_file():
        try:
            found = load_overlay_file(path, vocab, base)
            mark_used(path)
            return found
        except Exception:  # whatever a damaged file makes zipfile or numpy raise
            pass
    lexicon = build_lexicon(vocab, base)
    try:
        save_overlay(lexicon, base, path)
        prune_cache(path, f"overlay-[0-9]*-{KEY_PATTERN}.npz")  # every format
    except OSError:
        pass  # an unwritable cache dir costs only time
    return lexicon


def save_overlay(lexicon: Lexicon, base: BaseLexicon, path: Path) -> None:
    """What `lexicon` lays over `base`, for load_overlay_file."""
    entries = lexicon.parts[1] if len(lexicon.parts) > 1 else build_entries(())
    starts = lexicon.starts[1] if len(lexicon.starts) > 1 \
        else WordStarts(np.zeros(0, np.int64), np.zeros(0, np.int64))
    _save_arrays(path, words=_text_array(lexicon.words[len(base.words):]),
                 step_id=lexicon.step_id, extra=lexicon.extra, frequency=lexicon.frequency,
                 script=lexicon.script, seen=np.zeros(0) if lexicon.seen is None else lexicon.seen,
                 **_index_arrays(entries, starts))


def load_overlay_file(path: Path, vocab: Vocab, base: BaseLexicon) -> Lexicon:
    """The lexicon of `vocab` over `base` from a file of save_overlay, checked as the base's
    cache is (ValueError, or what numpy and zipfile raise, for a damaged one)."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {name: f[name] for name in OVERLAY_ARRAYS}
    _check_dtypes(arrays, OVERLAY_ARRAYS)
    words = base.words + _array_text(arrays["words"])
    count = len(words)
    step_id, extra, script = arrays["step_id"], arrays["extra"], arrays["script"]
    frequency, seen = arrays["frequency"], arrays["seen"]
    if step_id.shape != (count,) or extra.shape != (count,) or script.shape != (count,) \
            or frequency.shape != (count,) or seen.shape not in ((0,), (count,)):
        raise ValueError("arrays of inconsistent shapes")
    if step_id.min() < 0 or step_id.max() >= len(vocab) or np.isnan(extra).any() \
            or (extra > 0).any() or script.min() < COMMON or script.max() > RARE:
        raise ValueError("a vocabulary id, log-probability or script out of range")
    if not np.isfinite(frequency).all() or (frequency < 0).any() \
            or not np.isfinite(seen).all() or (seen < 0).any():
        raise ValueError("a frequency that is not a finite count")
    entries = _entries_of_arrays(arrays, count)
    starts = _starts_of_arrays(arrays, count)
    has_overlay = len(entries.word) > 0
    lexicon = Lexicon(words, step_id, extra, (base.entries, entries) if has_overlay
                      else (base.entries,), vocab.sha256, 0, frequency, script, base.starts,
                      seen if len(seen) else None)
    lexicon.__dict__["starts"] = (base.starts, starts) if has_overlay else (base.starts,)
    return lexicon


@lru_cache(maxsize=1)
def _code_fingerprint() -> str:
    """The source of the code that lays a vocabulary over the base (this module, the
    syllables'): a change to it makes new overlay files, so a tuned constant never meets a file
    built with the old one."""
    from . import syllables

    digest = hashlib.sha256()
    for module in (__file__, syllables.__file__):
        try:
            digest.update(Path(module).read_bytes())
        except OSError:
            digest.update(module.encode())
    return digest.hexdigest()[:16]


def _overlay_key(vocab: Vocab) -> str:
    parts = [_base_fingerprint(), _code_fingerprint(), vocab.sha256, vocab.outside_sha256]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


class _ReadingsCache:
    """`word_readings` of the words a lexicon lays over the base (the vocabulary's and the
    training's outside words no dictionary lists: thousands, half a second of pypinyin), kept
    in a small file of the cache dir per vocabulary. Only a cache: a file that does not read
    is ignored and written again."""

    def __init__(self, path: Path) -> None:
        self.path, self.changed = path, False
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
            mark_used(path)
            self.known = {key: [tuple(r) for r in readings] for key, readings in found.items()}
            syllables = syllable_ids()
            if not all(isinstance(key, str) and isinstance(s, str) and s in syllables
                       for key, readings in self.known.items() for r in readings for s in r):
                raise ValueError("not readings")
        except (OSError, ValueError, TypeError, AttributeError):
            self.known = {}

    def __call__(self, word: str, limit: int) -> list[tuple[str, ...]]:
        key = f"{word}\t{limit}"
        if key not in self.known:
            self.known[key], self.changed = word_readings(word, limit=limit), True
        return self.known[key]

    def save(self) -> None:
        if self.changed:
            try:
                write_bytes(self.path, json.dumps(self.known, ensure_ascii=False).encode())
                prune_cache(self.path, f"readings-{KEY_PATTERN}.json")
            except OSError:
                pass  # an unwritable cache dir costs only time


def open_lexicon(vocab: Vocab, word_lists: Sequence[str | Path] = ()) -> Lexicon:
    """The lexicon for a model's vocabulary and the user's word lists (memoised)."""
    lists = [read_word_list(p) for p in word_lists]
    # word lists are memoised by content
    key = (vocab.sha256, vocab.outside_sha256, tuple(id(w) for w in lists))
    found = _OPENED.get(key)
    if found is None:
        found = build_lexicon(vocab, base_lexicon(), lists) if lists \
            else cached_lexicon(vocab, base_lexicon())
        found.prefixes  # noqa: B018 — built now, not on the first keystroke
        found.starts, found.single  # noqa: B018
        while len(_OPENED) >= 4:
            _OPENED.pop(next(iter(_OPENED)))
        _OPENED[key] = found
    return found


_OPENED: dict[tuple, Lexicon] = {}
