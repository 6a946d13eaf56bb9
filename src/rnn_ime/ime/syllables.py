"""Pinyin syllables as people type them: the syllable set, spelling variants, fuzzy pinyin,
initials, and the typed letters cleaned into letters plus hard syllable breaks (apostrophes).

Spellings: pypinyin writes ü as `v` (绿 lv, 略 lve, 女 nv). People also type `lue`/`nue`, and
after j/q/x/y the ü is written `u` (学 xue, 去 qu); some type `v` there too (xve, qv). All of
these are accepted as the same syllable (`ALIASES`).

Fuzzy pinyin (模糊音): for speakers who do not separate some sounds, a typed syllable may also
stand for its partner (z ↔ zh, an ↔ ang …). Each rule is off by default and costs a small
penalty when used, so the exact reading still wins when both fit.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from functools import cache, lru_cache
from importlib.metadata import version as package_version

from ..errors import RnnImeError
from ..fsutil import cache_dir, write_text
from ..limits import MAX_LETTERS

MAX_SYLLABLE = 6  # zhuang, chuang, shuang
_INPUT = re.compile(r"[a-z']*")


class PinyinError(RnnImeError):
    """Typed pinyin that cannot be decoded (bad characters, too long, bad options)."""


def strip_tone(reading: str) -> str:
    """'lǜ' → 'lv', 'zhōng' → 'zhong'."""
    decomposed = unicodedata.normalize("NFD", reading).replace("u\u0308", "v")
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace("ü", "v")


@lru_cache(maxsize=1)
def all_syllables() -> tuple[str, ...]:
    """Every tone-less syllable that pypinyin knows for some character (about 420), sorted:
    a syllable's index in this tuple is its id. Kept in the cache dir per pypinyin version:
    importing pypinyin and reading its table would cost a cold start over half a second. Only
    a cache: a file that does not read is ignored and written again."""
    path = cache_dir() / f"syllables-{package_version('pypinyin')}.json"
    try:
        found = tuple(json.loads(path.read_text(encoding="utf-8")))
        if _syllable_table(found) == found and len(found) > 300:
            return found
    except (OSError, ValueError, TypeError):
        pass
    found = _syllables_of_pypinyin()
    try:
        write_text(path, json.dumps(found))
    except OSError:
        pass  # an unwritable cache dir costs only time
    return found


def _syllables_of_pypinyin() -> tuple[str, ...]:
    from pypinyin.pinyin_dict import pinyin_dict

    return _syllable_table(strip_tone(r) for readings in pinyin_dict.values()
                           for r in readings.split(","))


def _syllable_table(found: Iterable[object]) -> tuple[str, ...]:
    """The distinct syllables among `found`, sorted (anything else left out)."""
    return tuple(sorted({s for s in found if isinstance(s, str) and s.isascii() and s.isalpha()
                         and s.islower() and len(s) <= MAX_SYLLABLE}))


@lru_cache(maxsize=1)
def syllable_ids() -> dict[str, int]:
    return {s: i for i, s in enumerate(all_syllables())}


@lru_cache(maxsize=1)
def aliases() -> dict[str, str]:
    """Other spellings people type → the syllable: lue → lve, nue → nve, xve → xue, qv → qu."""
    known = set(all_syllables())
    out = {}
    for s in known:
        if s[:1] in ("l", "n") and "v" in s:
            out[s.replace("v", "u")] = s  # lve ← lue (lv ← lu is a syllable of its own: kept)
        if s[:1] in ("j", "q", "x", "y") and s[1:2] == "u":
            out[s[0] + "v" + s[2:]] = s  # xue ← xve, qu ← qv
    return {typed: s for typed, s in out.items() if typed not in known}


@lru_cache(maxsize=1)
def typed_syllables() -> frozenset[str]:
    """Every letter string that is one whole syllable as typed."""
    return frozenset(all_syllables()) | frozenset(aliases())


def canonical(typed: str) -> str:
    """The syllable a whole typed syllable spells (an alias resolved)."""
    return aliases().get(typed, typed)


def initial(syllable: str) -> str:
    """The letters typed for a syllable abbreviated to its initial: zh/ch/sh, else the first."""
    return syllable[:2] if syllable[:2] in ("zh", "ch", "sh") else syllable[:1]


@lru_cache(maxsize=1)
def initials() -> frozenset[str]:
    return frozenset(initial(s) for s in all_syllables())


@lru_cache(maxsize=1)
def by_initial() -> dict[str, tuple[int, ...]]:
    """Initial → ids of the syllables it abbreviates."""
    out: dict[str, list[int]] = {}
    for i, s in enumerate(all_syllables()):
        out.setdefault(initial(s), []).append(i)
    return {k: tuple(v) for k, v in out.items()}


# ---------------------------------------------------------------- fuzzy pinyin
INITIAL_RULES = {"z-zh": ("z", "zh"), "c-ch": ("c", "ch"), "s-sh": ("s", "sh"),
                 "n-l": ("n", "l"), "f-h": ("f", "h"), "r-l": ("r", "l")}
FINAL_RULES = {"an-ang": ("an", "ang"), "en-eng": ("en", "eng"), "in-ing": ("in", "ing"),
               "ian-iang": ("ian", "iang"), "uan-uang": ("uan", "uang")}
FUZZY_RULES = (*INITIAL_RULES, *FINAL_RULES)


def check_fuzzy(rules: Iterable[str]) -> frozenset[str]:
    rules = frozenset(rules)
    unknown = sorted(rules - set(FUZZY_RULES))
    if unknown:
        raise PinyinError(f"unknown fuzzy pinyin rule {unknown[0]!r}; the rules: "
                          + ", ".join(FUZZY_RULES))
    return rules


def _split(syllable: str) -> tuple[str, str]:
    """(initial consonant, final); the initial is '' for a, e, o, er … ."""
    head = initial(syllable)
    return (head, syllable[len(head):]) if head not in "aeo" else ("", syllable)


def _partner(part: str, pairs: Iterable[tuple[str, str]], final: bool) -> list[str]:
    out = []
    for a, b in pairs:
        if final:
            # the longer final first: "ian" is not the final "an" of another rule
            if part.endswith(b):
                out.append(part[: -len(b)] + a)
            elif part.endswith(a):
                out.append(part[: -len(a)] + b)
        elif part == a:
            out.append(b)
        elif part == b:
            out.append(a)
    return out


@cache
def fuzzy_variants(typed: str, rules: frozenset[str]) -> tuple[str, ...]:
    """Other syllables a whole typed syllable may stand for under the fuzzy `rules` (not
    itself): zi → zhi with z-zh, zhan → zhang with an-ang, zan → zhang with both."""
    if not rules:
        return ()
    syllable = canonical(typed)
    head, final = _split(syllable)
    heads = {head, *_partner(head, (INITIAL_RULES[r] for r in rules if r in INITIAL_RULES),
                             final=False)}
    finals = {final, *_partner(final, (FINAL_RULES[r] for r in rules if r in FINAL_RULES),
                               final=True)}
    known = syllable_ids()
    return tuple(sorted(h + f for h in heads for f in finals
                        if h + f != syllable and h + f in known))


@cache
def fuzzy_initials(typed: str, rules: frozenset[str]) -> tuple[str, ...]:
    """Other initials a typed initial may stand for: z → zh with z-zh."""
    pairs = [INITIAL_RULES[r] for r in rules if r in INITIAL_RULES]
    return tuple(p for p in _partner(typed, pairs, final=False) if p in initials())


# ---------------------------------------------------------------- typed letters
def normalize(raw: str) -> tuple[str, frozenset[int], list[int]]:
    """(letters without apostrophes, positions of apostrophes among them, and for each letter
    position 0..n the number of raw characters up to it, trailing apostrophes included)."""
    text = raw.strip().lower()
    if len(text) > MAX_LETTERS:
        raise PinyinError(f"pinyin is limited to {MAX_LETTERS} characters, not {len(text)}")
    if not _INPUT.fullmatch(text):
        bad = next(c for c in text if not ("a" <= c <= "z" or c == "'"))
        raise PinyinError(f"pinyin may hold only the letters a-z and ', not {bad!r}")
    letters, breaks, consumed = [], set(), [0]
    for index, char in enumerate(text):
        if char == "'":
            breaks.add(len(letters))
            consumed[-1] = index + 1
        else:
            letters.append(char)
            consumed.append(index + 1)
    return "".join(letters), frozenset(breaks), consumed


def segmentations(raw: str, syllables: Iterable[str] | None = None,
                  limit: int = 50) -> list[tuple[str, ...]]:
    """Every way to cut `raw` into whole syllables (apostrophes are cuts), fewest pieces first;
    aliases are given as the syllable they spell.

    `xian` → [(xian,), (xi, an)]; `xi'an` → [(xi, an)]; letters that fit no syllable: []."""
    letters, breaks, _ = normalize(raw)
    known = frozenset(syllables) if syllables is not None else typed_syllables()
    n = len(letters)

    @cache
    def rest(start: int) -> tuple[tuple[str, ...], ...]:
        if start == n:
            return ((),)
        out = []
        for end in range(start + 1, min(n, start + MAX_SYLLABLE) + 1):
            if any(start < b < end for b in breaks) or letters[start:end] not in known:
                continue
            out.extend((canonical(letters[start:end]), *tail) for tail in rest(end))
        return tuple(out[:limit])

    return sorted(rest(0), key=len)[:limit] if n else []
