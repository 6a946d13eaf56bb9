"""Keystroke costs of words, for the keystroke savings rate (KSR).

Typing a word without prediction costs the letters of its tone-less pinyin (pypinyin, `ü` typed
as `v`; one keystroke per character for whatever is not Chinese: digits, Latin letters,
punctuation) plus one keystroke to commit it. With prediction, a word that is among the k
suggestions shown before it is typed costs one keystroke (its number key); any other word costs
its full price. KSR@k = 1 − keystrokes typed / keystrokes without prediction.

`<unk>`: the id arrays no longer hold the surface word, so an unknown word costs the mean cost of
the vocabulary's words (unweighted over word types: out-of-vocabulary words are rare words, and
the typical type is one, not the typical running word). It is never suggested, so it is always
typed in full, with or without prediction. `<pad>` and `<s>` are never evaluated targets; they
cost nothing.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .vocab import BOS_ID, PAD_ID, SPECIALS, UNK_ID, Vocab

COMMIT_KEYS = 1  # the key that commits a word typed in full
SELECT_KEYS = 1  # the number key that picks a suggestion


def typing_keystrokes(word: str) -> int:
    """Keystrokes to type `word` in a pinyin input method, without its commit key."""
    from pypinyin import Style, lazy_pinyin

    return sum(len(piece) for piece in lazy_pinyin(word, style=Style.NORMAL, errors="default"))


@lru_cache(maxsize=8)
def _costs(words: tuple[str, ...]) -> np.ndarray:
    costs = np.zeros(len(words), dtype=np.float64)
    for index in range(len(SPECIALS), len(words)):
        costs[index] = typing_keystrokes(words[index]) + COMMIT_KEYS
    real = costs[len(SPECIALS):]
    costs[UNK_ID] = real.mean() if len(real) else 1.0 + COMMIT_KEYS
    costs[PAD_ID] = costs[BOS_ID] = 0.0
    costs.setflags(write=False)
    return costs


def keystroke_costs(vocab: Vocab) -> np.ndarray:
    """(V,) keystrokes to type each vocabulary word in full and commit it (computed once)."""
    return _costs(vocab.words)
