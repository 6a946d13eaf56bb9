"""Punctuation typed in a composition, as Chinese input methods treat it.

While letters are composing, typing one of these marks commits the first candidate followed by
the mark's full-width form (`nihao,` → 你好，); with nothing composing, a Chinese-mode front
end types the full-width form alone. `FULL_WIDTH` is the one table: the server sends it to the
page (`GET /api/pinyin/options`), which builds nothing of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .candidates import Decoding

FULL_WIDTH: dict[str, str] = {",": "，", ".": "。", "?": "？", "!": "！", ";": "；", ":": "：",
                              "\\": "、"}


def mark_class() -> str:
    """A regular-expression character class of the marks: `[,.?!;:\\\\]`."""
    return "[" + "".join("\\" + m if m in "\\]^-" else m for m in FULL_WIDTH) + "]"


def split_mark(typed: str) -> tuple[str, str]:
    """(letters, mark): `nihao,` → (`nihao`, `,`); `nihao` → (`nihao`, ``)."""
    if typed and typed[-1] in FULL_WIDTH:
        return typed[:-1], typed[-1]
    return typed, ""


def mark_after(typed: str) -> str:
    """The full-width form of the mark `typed` ends with (what its phrase is followed by: the
    decoder ranks with it), or ""."""
    _, mark = split_mark(typed)
    return FULL_WIDTH[mark] if mark else ""


def commit_text(candidate_text: str, mark: str) -> str:
    """What typing `mark` after a composition inserts: its first candidate, then the mark in
    full width (你好 + `,` → 你好，)."""
    return candidate_text + FULL_WIDTH[mark]


@dataclass(frozen=True)
class Commit:
    """Text to insert, and how many characters of the typed input (the mark included) it
    stands for."""
    text: str
    letters: int

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "letters": self.letters}


def commit_of(decoding: Decoding, typed: str) -> Commit | None:
    """The commit of `typed` (letters ending in a mark), given the decoding of its letters: the
    best whole-input phrase, or the letters as typed when there is none; None without a
    mark."""
    letters, mark = split_mark(typed)
    if not mark:
        return None
    best = decoding.phrases[0].text if decoding.phrases else letters.strip()
    return Commit(commit_text(best, mark), len(typed))
