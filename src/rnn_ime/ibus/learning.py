"""The hook through which the engine tells a user model what was typed (issue 14's
`rnn_ime.user` provides the real one; `NoLearning` is the default).

One composition, one `learn`: the text it put in the document (every candidate picked, and the
letters or the full-width mark that ended it) and `picks`, the (text, letters) of each
candidate picked, in order — 今 (jin), 天 (tian), 气 (qi) picked one by one is how a word the
lexicon lacks (今天气?) shows itself. A commit outside a composition (a suggested word, a mark
typed alone) is learned with `picks=None`. Backspace as the very next key calls `undo`: the
person took the commit back. Nothing is learned in password and PIN fields.
"""

from __future__ import annotations

from typing import Protocol


class Learner(Protocol):
    def learn(self, text: str, picks: list[tuple[str, str]] | None = None) -> None:
        """Record one commit: its text, and the candidates picked for it (see the module)."""

    def undo(self) -> None:
        """Forget the last `learn`."""


class NoLearning:
    """A learner that keeps nothing."""

    def learn(self, text: str, picks: list[tuple[str, str]] | None = None) -> None:
        return None

    def undo(self) -> None:
        return None
