"""Vocabulary: special tokens first, then words by descending count (ties by the word itself).

The frequency order matters: the adaptive softmax puts the most frequent ids in its head.

The training words the vocabulary leaves out (below --min-count, past --max-vocab) all become
<unk>; which words those were, with their counts, is kept beside it (`Vocab.outside`, the file
`outside.txt` next to `vocab.txt`): the pinyin lexicon spreads p(<unk>) over words with it.
It is not part of the vocabulary's identity (its hash, equality).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from .errors import DataDirError
from .fsutil import write_text

PAD, UNK, BOS = "<pad>", "<unk>", "<s>"
SPECIALS = (PAD, UNK, BOS)
PAD_ID, UNK_ID, BOS_ID = 0, 1, 2
OUTSIDE_FILE = "outside.txt"  # beside vocab.txt: the training words that became <unk>


@dataclass(frozen=True)
class Vocab:
    words: tuple[str, ...]
    counts: tuple[int, ...]
    # the training words outside the vocabulary (word, count), by descending count; () unknown
    outside: tuple[tuple[str, int], ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {w: i for i, w in enumerate(self.words)})

    def __len__(self) -> int:
        return len(self.words)

    def id(self, word: str) -> int:
        return self._index.get(word, UNK_ID)  # type: ignore[attr-defined]

    def encode(self, words: Iterable[str]) -> list[int]:
        index = self._index  # type: ignore[attr-defined]
        return [index.get(w, UNK_ID) for w in words]

    def word(self, word_id: int) -> str:
        return self.words[word_id]

    def __contains__(self, word: str) -> bool:
        return word in self._index  # type: ignore[attr-defined]

    @cached_property
    def sha256(self) -> str:  # once per vocabulary: the decoder and the lexicon ask per keystroke
        return hashlib.sha256("\n".join(self.words).encode("utf-8")).hexdigest()

    @cached_property
    def outside_sha256(self) -> str:
        """The hash of the outside words and their counts (what the pinyin lexicon keys on)."""
        text = "".join(f"{w}\t{c}\n" for w, c in self.outside)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    @cached_property
    def log_unigram(self) -> np.ndarray:
        """log of the training counts (+½, the specials ½, <unk> its own count), normalised:
        the pinyin decoder's optimistic estimate of the words still to type, once per
        vocabulary rather than per keystroke."""
        counts = np.asarray(self.counts, dtype=np.float64) + 0.5
        counts[: len(SPECIALS)] = 0.5
        counts[UNK_ID] = max(float(self.counts[UNK_ID]), 0.5)
        out = np.log(counts / counts.sum())
        out.flags.writeable = False
        return out

    def to_text(self) -> str:
        return "".join(f"{w}\t{c}\n" for w, c in zip(self.words, self.counts, strict=True))

    def save(self, path: str | Path) -> None:
        """vocab.txt, and outside.txt beside it when the outside words are known (a stale one
        is removed when they are not: it would belong to another vocabulary)."""
        path = Path(path)
        write_text(path, self.to_text())
        beside = path.with_name(OUTSIDE_FILE)
        if self.outside:
            write_text(beside, "".join(f"{w}\t{c}\n" for w, c in self.outside))
        else:
            beside.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        """vocab.txt, with the outside words of outside.txt beside it when there is one."""
        path = Path(path)
        words, counts = _read_counts(path, "no vocabulary file")
        if tuple(words[: len(SPECIALS)]) != SPECIALS:
            raise DataDirError(f"{path}: must start with {', '.join(SPECIALS)}")
        beside = path.with_name(OUTSIDE_FILE)
        outside: tuple[tuple[str, int], ...] = ()
        if beside.is_file():
            names, numbers = _read_counts(beside, "no file")
            outside = tuple(zip(names, numbers, strict=True))
        return cls(tuple(words), tuple(counts), outside)

    def suggestable_mask(self) -> np.ndarray:
        """True for ids that may be shown to a user (never <pad>, <unk> or <s>)."""
        mask = np.ones(len(self.words), dtype=bool)
        mask[: len(SPECIALS)] = False
        return mask


def _read_counts(path: Path, missing: str) -> tuple[list[str], list[int]]:
    """The `word<TAB>count` lines of a file, each word once."""
    if not path.is_file():
        raise DataDirError(f"{path}: {missing}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataDirError(f"{path}: not UTF-8 text (invalid byte at offset {exc.start})"
                           ) from None
    except OSError as exc:
        raise DataDirError(f"{path}: cannot read ({exc.strerror or exc})") from None
    words, counts, seen = [], [], set()
    for number, line in enumerate(text.splitlines(), start=1):
        word, tab, count = line.rpartition("\t")
        if not tab or not word or not count.isascii() or not count.isdigit():
            raise DataDirError(f"{path}:{number}: expected 'word<TAB>count'")
        if word in seen:
            raise DataDirError(f"{path}:{number}: {word!r} is listed twice")
        seen.add(word)
        words.append(word)
        counts.append(int(count))
    return words, counts


def build_vocab(token_lists: Iterable[Sequence[str]], min_count: int = 1,
                max_size: int | None = None) -> Vocab:
    """Vocabulary of the words seen at least `min_count` times, at most `max_size` ids in all;
    the words left out are its `outside` words."""
    counter: Counter[str] = Counter()
    for tokens in token_lists:
        counter.update(tokens)
    unknown = 0
    kept = sorted(((w, c) for w, c in counter.items() if w not in SPECIALS),
                  key=lambda wc: (-wc[1], wc[0]))
    limit = None if max_size is None else max(0, max_size - len(SPECIALS))
    for position, (_, count) in enumerate(kept):
        if count < min_count or (limit is not None and position >= limit):
            unknown += count
    inside = [c >= min_count and (limit is None or i < limit) for i, (_, c) in enumerate(kept)]
    outside = tuple(pair for pair, keep in zip(kept, inside, strict=True) if not keep)
    kept = [pair for pair, keep in zip(kept, inside, strict=True) if keep]
    words = SPECIALS + tuple(w for w, _ in kept)
    counts = (0, unknown, 0) + tuple(c for _, c in kept)
    return Vocab(words, counts, outside)
