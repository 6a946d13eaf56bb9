"""What the decoder proposes, and the one order every front end shows it in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SHOWN = 9  # candidates a front end shows at once (keys 1–9)
WHOLE_PHRASES_FIRST = 3  # whole-input phrases ahead of the words the input starts with


@dataclass(frozen=True)
class Candidate:
    """A decoded phrase (or first word): its words, how much of the input it consumes, and its
    scores."""
    words: tuple[str, ...]
    letters: int  # characters of the input it consumes, apostrophes included
    log_prob: float  # the language model's, of its words given the context
    score: float  # log_prob minus the penalties (abbreviations, partial syllable, literals)
    known: bool = True  # every word is in the model's vocabulary
    literal: bool = False  # some letters are kept as typed (they fit no syllable)

    @property
    def text(self) -> str:
        return "".join(self.words)

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "words": list(self.words), "letters": self.letters,
                "log_prob": round(self.log_prob, 4), "score": round(self.score, 4)}


@dataclass
class Decoding:
    phrases: list[Candidate]  # whole input, best first
    first_words: list[Candidate]  # what the input can start with, best first
    steps: int = 0  # scorer steps taken
    letters: str = ""
    literal: bool = False  # some letters fit no syllable
    extra: dict[str, Any] = field(default_factory=dict)

    def ranked(self, limit: int = SHOWN) -> list[Candidate]:
        """The list a person picks from: the best whole-input phrases, then the words the
        input can start with (a pick of one leaves the rest of the letters composing); one
        entry per text (its first, best-ranked reading), `limit` at most."""
        seen: set[str] = set()
        out = []
        for c in [*self.phrases[:WHOLE_PHRASES_FIRST], *self.first_words, *self.phrases]:
            if c.text not in seen:
                seen.add(c.text)
                out.append(c)
        return out[:limit]

    def as_dict(self, limit: int = SHOWN) -> dict[str, Any]:
        return {"letters": self.letters, "phrases": [c.as_dict() for c in self.phrases],
                "first_words": [c.as_dict() for c in self.first_words],
                "candidates": [c.as_dict() for c in self.ranked(limit)]}
