"""The hook through which the engine tells the user model what was typed: `ProfileLearner`
(the user's profile, `rnn_ime.user`), or `NoLearning`.

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
    def learn(self, text: str, picks: list[tuple[str, str]] | None = None,
              before: str = "") -> None:
        """Record one commit: its text, the candidates picked for it (see the module), and
        the text before it."""

    def undo(self) -> None:
        """Forget the last `learn`."""


class NoLearning:
    """A learner that keeps nothing."""

    def learn(self, text: str, picks: list[tuple[str, str]] | None = None,
              before: str = "") -> None:
        return None

    def undo(self) -> None:
        return None


class ProfileLearner:
    """Learning into the user's profile (its SQLite file); `lexicon` tells the words it knows
    from new ones."""

    def __init__(self, profile, lexicon) -> None:
        self.profile, self.lexicon = profile, lexicon

    def learn(self, text: str, picks: list[tuple[str, str]] | None = None,
              before: str = "") -> None:
        self.profile.learn(text, picks, before, known=self.lexicon)

    def undo(self) -> None:
        self.profile.undo()
