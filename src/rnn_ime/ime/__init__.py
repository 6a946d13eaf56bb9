"""The pinyin input method: typed letters → ranked Chinese, for any word a person types.

One module per idea: `syllables` (spellings, fuzzy pinyin, typed letters), `lexicon` (the words
it can type, cached), `lattice` (which words spell which letters), `decoder` (the search,
scored by any Scorer), `candidates` (what is proposed, in one order), `punctuation` (marks typed
in a composition).
"""

from .candidates import Candidate, Decoding
from .decoder import DEFAULT_BEAM, DecoderSettings, decode
from .lattice import Penalties
from .lexicon import Lexicon, LexiconError, open_lexicon
from .syllables import FUZZY_RULES, PinyinError, normalize, segmentations

__all__ = ["DEFAULT_BEAM", "FUZZY_RULES", "Candidate", "DecoderSettings", "Decoding", "Lexicon",
           "LexiconError", "Penalties", "PinyinError", "decode", "normalize", "open_lexicon",
           "segmentations"]
