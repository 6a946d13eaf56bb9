"""The language model behind the engine: pinyin decoded and next words suggested after the
text before the caret, read through a context cache as the server does (`server.Engine`), so
a keystroke costs a step or two of the model, not a re-read of the context."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ..context_cache import DEFAULT_ENTRIES
from ..ime import (
    DEFAULT_BEAM,
    DecoderSettings,
    Decoding,
    Lexicon,
    StepMemo,
    StepMemos,
    check_fuzzy,
    decode,
    open_lexicon,
)
from ..predict import ContextReader, Predictor, check_k, suggestions_of
from ..user import Profile, Scoring, UserStoreError, memo_key, scoring

log = logging.getLogger(__name__)


class ModelRanker:
    """A Predictor and its pinyin lexicon, with the decoder's settings (fuzzy rules, beam)."""

    def __init__(self, predictor: Predictor, lexicon: Lexicon | None = None,
                 fuzzy: Iterable[str] = (), beam: int = DEFAULT_BEAM,
                 context_cache: int = DEFAULT_ENTRIES, profile: Profile | None = None) -> None:
        """`profile`: the user's, mixed into every ranking (the base model's context cache
        stays valid as it learns: the mixing is applied to what the cache gives)."""
        self.predictor = predictor
        self.profile = profile
        self.lexicon = lexicon  # None: the model's (open_lexicon), without a user's word list
        self.fuzzy = check_fuzzy(fuzzy)
        self.beam = beam
        self.reader = ContextReader(predictor, context_cache)
        self._refused: str | None = None  # the last refresh error logged (logged once)
        self._memos = StepMemos(1)  # the steps of the composition being typed

    def _refresh(self) -> None:
        """Pick up another process's writes to the profile; a file damaged or locked since
        leaves what was read before in use (typing goes on), with one line in the log."""
        assert self.profile is not None
        try:
            self.profile.refresh()
            self._refused = None
        except UserStoreError as error:
            if str(error) != self._refused:
                log.warning("the profile keeps what it had read: %s", error)
            self._refused = str(error)

    def _scoring(self, context: str) -> tuple[Scoring, list[int]]:
        read = self.reader.read(context)
        if self.profile is not None:
            self._refresh()
        lexicon = self.lexicon or open_lexicon(self.predictor.vocab)
        return scoring(self.profile, self.predictor.scorer, lexicon, read), read.ids

    def decode(self, letters: str, context: str, k: int, followed_by: str = "") -> Decoding:
        ranking, ids = self._scoring(context)
        return decode(ranking.scorer, letters, ids,
                      DecoderSettings(k=k, beam=self.beam, fuzzy=self.fuzzy), ranking.lexicon,
                      start=ranking.start, memo=self._memo_for(ranking, context),
                      followed_by=followed_by)

    def _memo_for(self, ranking: Scoring, context: str) -> StepMemo:
        """The steps kept while one composition is typed: the same context, scorer and user
        counts; anything else (a commit, another context, the profile learned) starts anew."""
        return self._memos.for_key(memo_key(ranking, context, self.profile))

    def suggest(self, context: str, k: int) -> list[str]:
        ranking, _ = self._scoring(context)
        return [s.word for s in suggestions_of(ranking.scorer, *ranking.start, check_k(k))]
