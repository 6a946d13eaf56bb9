"""Text cleaning and segmentation. One tokenizer (jieba), named in every artifact."""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from .fsutil import sha256_file

# Full-width ASCII letters and digits become half-width so that "１２３" and "123" are one word;
# full-width punctuation (，！？：) is kept, since that is what a Chinese writer types.
_FULLWIDTH_ALNUM = {
    **{0xFF10 + i: 0x30 + i for i in range(10)},
    **{0xFF21 + i: 0x41 + i for i in range(26)},
    **{0xFF41 + i: 0x61 + i for i in range(26)},
    0x3000: 0x20,  # ideographic space
}
_WHITESPACE_RUN = re.compile(r"\s+")


def _is_control(char: str) -> bool:
    return unicodedata.category(char) in {"Cc", "Cf", "Cs", "Co"} and char not in "\t\n"


def clean_text(text: str) -> str:
    """Normalise a passage: half-width letters/digits, no control characters, single spaces."""
    text = text.translate(_FULLWIDTH_ALNUM)
    text = "".join(" " if _is_control(c) else c for c in text)
    return _WHITESPACE_RUN.sub(" ", text).strip()


@dataclass(frozen=True)
class TokenizerInfo:
    name: str
    version: str
    dictionary_sha256: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version,
                "dictionary_sha256": self.dictionary_sha256}


class JiebaTokenizer:
    """Segments cleaned text into words with jieba's default dictionary (HMM on)."""

    name = "jieba"

    def __init__(self) -> None:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        self._jieba = jieba
        self._tokenizer = jieba.Tokenizer()

    @cached_property
    def info(self) -> TokenizerInfo:
        dictionary = Path(self._jieba.__file__).with_name("dict.txt")
        return TokenizerInfo(self.name, self._jieba.__version__, sha256_file(dictionary))

    def tokenize(self, text: str) -> list[str]:
        """Words of `text` after cleaning; whitespace is dropped."""
        return [w for w in self._tokenizer.lcut(clean_text(text), HMM=True) if not w.isspace()]


_TOKENIZER: JiebaTokenizer | None = None


def get_tokenizer(name: str = "jieba") -> JiebaTokenizer:
    """The process-wide tokenizer (jieba builds its prefix dictionary once, ~0.5 s)."""
    global _TOKENIZER
    if name != JiebaTokenizer.name:
        from .errors import ConfigError

        raise ConfigError(f"unknown tokenizer {name!r}; this version knows 'jieba'")
    if _TOKENIZER is None:
        _TOKENIZER = JiebaTokenizer()
    return _TOKENIZER


# Characters that end a clause for jieba: it cuts a text into runs of Han characters, letters,
# digits and +#&._%- and segments each run on its own, so no word spans one of these, and a
# text's words are its clauses' words, one clause after another (tests/test_text.py checks it).
CLAUSE_ENDS = "，。！？；：、,!?;:\n "
_ENDS = re.escape(CLAUSE_ENDS)
_CLAUSES = re.compile(f"[^{_ENDS}]*[{_ENDS}]|[^{_ENDS}]+")  # clauses, each with its end


class ClauseCache:
    """`tokenizer.tokenize(text)`, with the words of each clause (the text up to and including
    a CLAUSE_ENDS character) kept in an LRU of `entries` clauses: typing appends to the text,
    so only its last clause is segmented again. Thread-safe; the same words as the tokenizer."""

    def __init__(self, tokenizer: JiebaTokenizer, entries: int = 4096) -> None:
        if entries < 1:
            raise ValueError("ClauseCache: entries must be at least 1")
        self.tokenizer = tokenizer
        self.entries = entries
        self._clauses: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def tokenize(self, text: str) -> list[str]:
        words: list[str] = []
        for clause in _CLAUSES.findall(text):
            words += self._clause(clause)
        return words

    def _clause(self, clause: str) -> tuple[str, ...]:
        with self._lock:
            found = self._clauses.get(clause)
            if found is not None:
                self._clauses.move_to_end(clause)
                return found
        found = tuple(self.tokenizer.tokenize(clause))
        with self._lock:
            self._clauses[clause] = found
            while len(self._clauses) > self.entries:
                self._clauses.popitem(last=False)
        return found
