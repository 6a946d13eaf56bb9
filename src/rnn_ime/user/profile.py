"""A user's profile as the front ends use it: learn from what is committed, and score with it.

    profile = Profile.open(predictor, path)            # or Profile.in_memory(predictor)
    profile.learn("我们明天去蕲春", picks=[("蕲", "qi"), ("春", "chun")])
    profile.undo()                                     # Backspace right after the commit
    scorer, lexicon = profile.scorer, profile.lexicon(base_lexicon)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..ime.lexicon import HAN, MAX_WORD_SYLLABLES, Lexicon, word_readings
from ..scoring import Scorer
from ..text import get_tokenizer
from ..vocab import UNK_ID, Vocab
from .model import MAX_COMMIT_CHARS, Lesson, UserLimitError, UserModel, made_from_picks
from .scorer import UserScorer, UserState
from .store import UserStore


@dataclass(frozen=True)
class LearnOptions:
    use: bool = True  # score with the profile (--no-user: False)
    learn: bool = True  # update it from commits (--no-learn: False)


class Profile:
    def __init__(self, base: Scorer, model: UserModel, options: LearnOptions = LearnOptions()
                 ) -> None:
        self.model, self.options = model, options
        self.vocab: Vocab = base.vocab
        self.scorer: Scorer = UserScorer(base, model) if options.use else base
        self._lexicon: tuple[tuple[int, frozenset], Lexicon] | None = None
        self.tokenizer = get_tokenizer()

    @classmethod
    def open(cls, base: Scorer, path: str | Path, options: LearnOptions = LearnOptions()
             ) -> Profile:
        return cls(base, UserModel(UserStore(path)), options)

    @classmethod
    def in_memory(cls, base: Scorer, options: LearnOptions = LearnOptions()) -> Profile:
        return cls(base, UserModel(None), options)

    def lexicon(self, base: Lexicon) -> Lexicon:
        """`base` with the words the user made (typable at once)."""
        # keyed on the words themselves, not their number: forget one and make another
        key = (id(base), frozenset(self.model.counts.made.items()))
        if self._lexicon is None or self._lexicon[0] != key:
            self._lexicon = (key, base.with_words(self.model.counts.made))
        return self._lexicon[1]

    def start_after(self, state: Any, log_probs: torch.Tensor, last_word: str | None
                    ) -> tuple[Any, torch.Tensor]:
        """The profile scorer's (state, log_probs) after a context that the base scorer has
        read (its state and log-probabilities, e.g. from a shared context cache) and that ends
        in `last_word`: the base's, mixed with the user's distribution after that word. The
        same as the profile's scorer reading the context, without stepping the base again."""
        if not isinstance(self.scorer, UserScorer):
            return state, log_probs
        prev = last_word if last_word and last_word.strip() else None
        return (UserState(state, float(log_probs[UNK_ID]), prev),
                self.scorer.mix(log_probs, prev))

    def refresh(self) -> None:
        """Pick up what another process (the CLI, another server) wrote to the same file."""
        self.model.refresh()

    def learn(self, text: str, picks: Sequence[tuple[str, str]] | None = None,
              before: str = "", known: Lexicon | None = None) -> Lesson | None:
        """Learn a commit: its words (after the last word of `before`), and new words — from
        several picks of one composition, or words no dictionary lists. None when learning is
        off or there is nothing to learn."""
        if not self.options.learn or not text.strip():
            return None
        if len(text) > MAX_COMMIT_CHARS:
            raise UserLimitError(f"a commit of {len(text):,} characters; learn at most "
                                 f"{MAX_COMMIT_CHARS:,} at once")
        self.model.refresh()
        listed = known.position if known is not None else {}

        def is_known(word: str) -> bool:
            return word in self.vocab or word in listed

        made = []
        assembled = made_from_picks(picks or [], _Known(is_known))
        words = [w for w in self.tokenizer.tokenize(text) if w.strip()]
        if assembled is not None:
            made.append(assembled)
            if assembled[0] == text.strip():
                words = [assembled[0]]
        counts = self.model.counts
        for word in words:
            # a word no dictionary lists becomes typable once it comes back: jieba's guesses
            # at unknown text (一抱, 很响 …) rarely do, names and terms do
            if HAN.fullmatch(word) and 2 <= len(word) <= MAX_WORD_SYLLABLES \
                    and not is_known(word) and word in counts.unigram \
                    and word not in counts.made and all(word != m for m, _ in made):
                reading = word_readings(word, limit=1)
                if reading:
                    made.append((word, "'".join(reading[0])))
        before_words = [w for w in self.tokenizer.tokenize(before[-32:]) if w.strip()] \
            if before else []
        prev = before_words[-1] if before_words else None
        return self.model.learn_words(words, prev, made)

    def undo(self) -> Lesson | None:
        return self.model.undo() if self.options.learn else None


@dataclass(frozen=True)
class _Known:
    test: object

    def __contains__(self, word: object) -> bool:
        return bool(self.test(word))  # type: ignore[operator]
