"""The pinyin input method: typed letters → ranked Chinese, for any word a person types.

One module per idea: `syllables` (spellings, fuzzy pinyin, typed letters), `lexicon` (the words
it can type, cached), `lattice` (which words spell which letters), `decoder` (the search,
scored by any Scorer), `candidates` (what is proposed, in one order), `punctuation` (marks typed
in a composition).
"""

from .candidates import Candidate, Decoding
from .decoder import DEFAULT_BEAM, DecoderSettings, StepMemo, StepMemos, decode
from .lattice import Penalties
from .lexicon import Lexicon, LexiconError, open_lexicon
from .punctuation import FULL_WIDTH, Commit, commit_of, commit_text, mark_after, split_mark
from .syllables import FUZZY_RULES, PinyinError, check_fuzzy, normalize, segmentations

__all__ = ["DEFAULT_BEAM", "FULL_WIDTH", "FUZZY_RULES", "Candidate", "Commit", "DecoderSettings",
           "Decoding", "Lexicon", "LexiconError", "Penalties", "PinyinError", "StepMemo",
           "StepMemos", "check_fuzzy", "commit_of", "commit_text", "decode", "mark_after",
           "normalize", "open_lexicon", "segmentations", "split_mark"]
