"""A user's profile as the front ends use it: learn from what is committed, and score with it.

    profile = Profile.open(predictor, path)            # or Profile.in_memory(predictor)
    profile.learn("我们明天去蕲春", picks=[("蕲", "qi"), ("春", "chun")])
    profile.undo()                                     # Backspace right after the commit
    scorer, lexicon = profile.scorer, profile.lexicon(base_lexicon)
    profile.close()                                    # the model's adaptation saved

With a recurrent model run by torch, the profile also adapts its own copy of the model to what
is committed (adaptation.py); its scorer is the user's counts over that copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..ime.lexicon import HAN, MAX_WORD_SYLLABLES, Either, Lexicon, word_readings
from ..scoring import Scorer
from ..text import ClauseCache, get_tokenizer
from ..vocab import UNK_ID, Vocab
from .adaptation import ModelAdaptation
from .model import MAX_COMMIT_CHARS, Lesson, UserLimitError, UserModel, made_from_picks
from .scorer import UserScorer, UserState
from .store import UserStore

TOKENIZED_CLAUSES = 64


@dataclass(frozen=True)
class LearnOptions:
    use: bool = True  # score with the profile (--no-user: False)
    learn: bool = True  # update it from commits (--no-learn: False)
    adapt: bool = True  # adapt the model too, not only the counts (--no-adapt: False)


class Profile:
    def __init__(self, base: Scorer, model: UserModel, options: LearnOptions = LearnOptions()
                 ) -> None:
        self.model, self.options = model, options
        self.vocab: Vocab = base.vocab
        self.adaptation = ModelAdaptation.of(base, model.store) \
            if options.use and options.adapt else None
        adapted = self.adaptation.scorer if self.adaptation is not None else base
        self.scorer: Scorer = UserScorer(adapted, model) if options.use else base
        self._lexicon: tuple[Lexicon, int, Lexicon] | None = None
        # the text before a commit is mostly the commits before it: their clauses are kept
        self.tokenizer = ClauseCache(get_tokenizer(), TOKENIZED_CLAUSES)
        self._reloads = model.reloads  # the file read again: a forget there may be why

    @classmethod
    def open(cls, base: Scorer, path: str | Path, options: LearnOptions = LearnOptions(),
             make_dirs: bool = True) -> Profile:
        """The profile in the file at `path` (made when missing; `make_dirs`: with the
        directories above it)."""
        return cls(base, UserModel(UserStore(path, make_dirs=make_dirs)), options)

    @classmethod
    def in_memory(cls, base: Scorer, options: LearnOptions = LearnOptions()) -> Profile:
        return cls(base, UserModel(None), options)

    def lexicon(self, base: Lexicon) -> Lexicon:
        """`base` with the words the user made (typable at once)."""
        counts = self.model.counts
        cached = self._lexicon
        if cached is None or cached[0] is not base or cached[1] != counts.made_version:
            cached = self._lexicon = (base, counts.made_version, base.with_words(counts.made))
        return cached[2]

    def start_after(self, context: Any) -> tuple[Any, torch.Tensor]:
        """The profile scorer's (state, log_probs) after a context the base scorer has read
        (a `predict.Context`, e.g. from a shared context cache: its state, log-probabilities and
        last word): the base's, mixed with the user's distribution after that word. The same as
        the profile's scorer reading the context, without stepping the base again. Once the
        model adapted, its copy reads the context instead (the base never does)."""
        if not isinstance(self.scorer, UserScorer):
            return context.state, context.log_probs
        if self.adaptation is not None:
            self.adaptation.touch()
        if self.adaptation is not None and self.adaptation.active:
            state, log_probs = self.adaptation.read(context.ids)
        else:
            state, log_probs = context.state, context.log_probs
        last = [w if w.strip() else None for w in context.last_words]  # a space: no word
        prev = last[-1] if last else None
        prev2 = last[-2] if prev is not None and len(last) > 1 else None
        return (UserState(state, float(log_probs[UNK_ID]), prev, prev2),
                self.scorer.mix(log_probs, prev, prev2))

    def refresh(self) -> None:
        """Pick up what another process (the CLI, another server) wrote to the same file (a
        forget there takes back the model's adaptation here too)."""
        self.model.refresh()
        self._check_forgotten()

    def _check_forgotten(self) -> None:
        """After the file was read again (another process wrote): a forget there takes back
        the model's adaptation here too."""
        if self.model.reloads != self._reloads:  # else nothing was written from outside
            self._reloads = self.model.reloads
            if self.adaptation is not None:
                self.adaptation.forgotten()

    @property
    def notes(self) -> list[str]:
        """What a front end should say about the profile (an adaptation not loaded or not
        saved), one line each."""
        found = self.adaptation
        return [n for n in (found.load_problem, found.save_problem) if n] if found else []

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
        # what another process wrote is read by learn_words before it learns (the counts
        # looked at here may be a commit behind); its forget reaches the adaptation after
        known_words = Either(self.vocab, known.position if known is not None else {})
        made = []
        assembled = made_from_picks(picks or [], known_words)
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
                    and word not in known_words and word in counts.unigram \
                    and word not in counts.made and all(word != m for m, _ in made):
                reading = word_readings(word, limit=1)
                if reading:
                    made.append((word, "'".join(reading[0])))
        before_words = [w for w in self.tokenizer.tokenize(before[-32:]) if w.strip()] \
            if before else []
        prev = before_words[-1] if before_words else None
        prev2 = before_words[-2] if len(before_words) > 1 else None
        lesson = self.model.learn_words(words, prev, made, prev2=prev2)
        self._check_forgotten()
        if lesson is not None and self.adaptation is not None:
            self.adaptation.learn(self.vocab.encode(before_words), self.vocab.encode(words))
        return lesson

    def undo(self) -> Lesson | None:
        if not self.options.learn:
            return None
        lesson = self.model.undo()
        if lesson is not None and self.adaptation is not None:
            self.adaptation.undo()
        return lesson

    def forget(self, word: str) -> bool:
        """Remove a word and everything learned from it (the counts' forget); the model's
        adaptation cannot tell what the word taught it, so it starts again from the base
        model. Whether the word was known."""
        known = self.model.forget(word)
        if known and self.adaptation is not None:
            self.adaptation.reset()
        return known

    def stats(self) -> dict:
        found = self.model.stats()
        if self.adaptation is not None:
            found["model_steps"] = self.adaptation.steps
            # commits it could not train on: the queue overflowed, or a step failed
            found["model_skipped"] = self.adaptation.dropped + self.adaptation.failed
        return found

    def close(self) -> None:
        """Train the model's adaptation on what waits, save it (a save the file refuses is in
        `notes`), and close the file."""
        try:
            if self.adaptation is not None:
                self.adaptation.close()
        finally:
            if self.model.store is not None:
                self.model.store.close()


@dataclass(frozen=True)
class Scoring:
    """What to rank with after a context: a scorer, its lexicon, its (state, log_probs), and
    the versions of the user's counts and adapted model it was read with."""
    scorer: Scorer
    lexicon: Lexicon
    start: tuple[Any, torch.Tensor]
    version: Any = None


def versions(profile: Profile | None) -> Any:
    if profile is None:
        return None
    return (profile.model.counts.version,
            profile.adaptation.version if profile.adaptation is not None else 0)


def memo_key(ranking: Scoring, context: str, profile: Profile | None, user: str = "") -> tuple:
    """What a decoder's StepMemo is valid for: the context's text, the scorer, and the versions
    of the user's counts and adapted model (a profile that learned ranks anew)."""
    return (user, context, id(ranking.scorer),
            ranking.version if ranking.version is not None else versions(profile))


def scoring(profile: Profile | None, base: Scorer, lexicon: Lexicon, context: Any) -> Scoring:
    """The plain model's scoring after a context the base scorer has read (a
    `predict.Context`), or, with a profile, the user's on top of it."""
    if profile is None:
        return Scoring(base, lexicon, (context.state, context.log_probs))
    version = versions(profile)  # before start_after: a step may land while it reads
    return Scoring(profile.scorer, profile.lexicon(lexicon), profile.start_after(context),
                   version)
