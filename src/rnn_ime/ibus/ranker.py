"""The language model behind the engine: pinyin decoded and next words suggested after the
text before the caret, read through a context cache as the server does (`server.Engine`), so
a keystroke costs a step or two of the model, not a re-read of the context."""

from __future__ import annotations

from collections.abc import Iterable

from ..context_cache import DEFAULT_ENTRIES
from ..ime import DEFAULT_BEAM, DecoderSettings, Decoding, Lexicon, check_fuzzy, decode
from ..predict import ContextReader, Predictor


class ModelRanker:
    """A Predictor and its pinyin lexicon, with the decoder's settings (fuzzy rules, beam)."""

    def __init__(self, predictor: Predictor, lexicon: Lexicon | None = None,
                 fuzzy: Iterable[str] = (), beam: int = DEFAULT_BEAM,
                 context_cache: int = DEFAULT_ENTRIES) -> None:
        self.predictor = predictor
        self.lexicon = lexicon  # None: the model's (open_lexicon), without a user's word list
        self.fuzzy = check_fuzzy(fuzzy)
        self.beam = beam
        self.reader = ContextReader(predictor, context_cache)

    def decode(self, letters: str, context: str, k: int) -> Decoding:
        read = self.reader.read(context)
        return decode(self.predictor.scorer, letters, read.ids,
                      DecoderSettings(k=k, beam=self.beam, fuzzy=self.fuzzy), self.lexicon,
                      start=(read.state, read.log_probs))

    def suggest(self, context: str, k: int) -> list[str]:
        return [s.word for s in self.reader.suggest(context, k)]
