"""The engine's key handling as a plain state machine: a key in, text to commit and what to
show out. No GObject here: `engine.py` feeds it IBus's key events and draws its `View`, and the
unit tests drive it directly.

    idle ──letter──▶ composing ──Space / digit / mark / Enter──▶ idle, next-word suggestions
      ▲                 │  ▲ a pick that leaves letters: the rest, decoded after the pick
      │                 │  └───────────────────────────────┘
      └──Esc / Backspace to empty / focus out────┘

Composing: letters (and apostrophes) build the preedit; the lookup table shows
`Decoding.ranked()` nine at a time (THE candidate order: the first page is exactly
`ranked(9)`; paging past the last page asks the decoder for more and appends what is new).
Space commits the first candidate of the page, 1–9 that one; a candidate that consumes only
some of the letters leaves the rest composing, decoded again with the pick as context. Enter
commits the letters as typed, Esc drops them, a mark (, . ? ! ; : \\) commits the best phrase
with the mark after it (ranked again knowing the mark, p(？ | phrase)) and the mark in full
width (`ime.punctuation.commit_of`). - = PageUp PageDown Up Down page.

Idle, Chinese mode: a letter starts a composition; a mark types its full-width form (not right
after a digit: 3.14 stays as typed); after any commit the table holds next-word suggestions,
a digit picks one, any other key hides them and does what it would have done. Shift pressed
and released alone switches Chinese/English (letters composing go in as typed).

The context the decoder and the suggestions read is the text before the caret: what this
input context committed, or the client's surrounding text when it sends it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Protocol

from ..errors import RnnImeError
from ..ime import FULL_WIDTH, Candidate, Decoding, commit_of
from ..ime.candidates import SHOWN
from ..limits import MAX_LETTERS, PINYIN_MAX_K
from . import keys
from .learning import Learner, NoLearning

log = logging.getLogger(__name__)

PAGE_SIZE = SHOWN  # keys 1–9
CONTEXT_CHARS = 200  # characters before the caret the model reads
MORE_CANDIDATES = 60  # the longest list paging can grow to
MARKS_AFTER_DIGIT = frozenset(".,:")  # 3.14, 1,000, 12:30 stay half-width
CARET_KEYS = frozenset({keys.LEFT, keys.RIGHT, keys.UP, keys.DOWN, keys.HOME, keys.END,
                        keys.PAGE_UP, keys.PAGE_DOWN})
PAGE_BACK = frozenset({keys.MINUS, keys.PAGE_UP, keys.UP})
PAGE_ON = frozenset({keys.EQUAL, keys.PAGE_DOWN, keys.DOWN})


def is_modifier(keyval: int) -> bool:
    """Shift, Control, Caps Lock, Alt, Super, AltGr, Num Lock …: keys that type nothing."""
    return 0xFFE1 <= keyval <= 0xFFEE or 0xFE01 <= keyval <= 0xFE0F or keyval in (0xFF7E,
                                                                                   0xFF7F)


class Ranker(Protocol):
    """What the machine asks of the language model (`ranker.ModelRanker` is the real one)."""

    def decode(self, letters: str, context: str, k: int, followed_by: str = "") -> Decoding:
        """The decoding of pinyin `letters` typed after the text `context` (and before
        `followed_by`, when known)."""

    def suggest(self, context: str, k: int) -> list[str]:
        """The k likeliest next words after `context`."""


@dataclass(frozen=True)
class View:
    """What the front end shows: the letters composing and the lookup table (all its entries;
    `page` is the one on screen)."""
    preedit: str = ""
    entries: tuple[str, ...] = ()
    page: int = 0
    kind: str = ""  # "candidates", "suggestions", or "" when the table is hidden
    chinese: bool = True

    @property
    def shown(self) -> tuple[str, ...]:
        """The entries of the page on screen (keys 1–9)."""
        return self.entries[self.page * PAGE_SIZE:(self.page + 1) * PAGE_SIZE]


@dataclass(frozen=True)
class Reaction:
    """The answer to one event: whether the key was used up (else the application gets it,
    after the commits), the text to commit, in order, and the view after it."""
    handled: bool
    commits: tuple[str, ...] = ()
    view: View = View()


class Machine:
    """One input context's state. `ranker`: the model; `learner`: told of every commit."""

    def __init__(self, ranker: Ranker, learner: Learner | None = None) -> None:
        self.ranker = ranker
        self.learner: Learner = learner or NoLearning()
        self.chinese = True
        self.password = False  # a password or PIN field: no learning, no suggestions
        self.context = ""  # the text before the caret, as far as the engine knows
        self.letters = ""  # composing, as typed
        self._decoding: Decoding | None = None
        self._candidates: list[Candidate] = []
        self._suggestions: list[str] = []
        self._kind = ""
        self._page = 0
        self._extended = False  # the decoder was asked for more candidates
        self._picks: list[tuple[str, str]] = []  # (text, letters) picked in this composition
        self._composed: list[str] = []  # text this composition committed
        self._shift_alone = False
        self._undo_ready = False  # the last key committed something that was learned
        self._after_digit = False

    # ------------------------------------------------------------ what is shown
    def view(self) -> View:
        entries = tuple(c.text for c in self._candidates) if self._kind == "candidates" \
            else tuple(self._suggestions) if self._kind == "suggestions" else ()
        return View(self.letters, entries, self._page, self._kind if entries else "",
                    self.chinese)

    def _react(self, handled: bool = True, commits: tuple[str, ...] = ()) -> Reaction:
        return Reaction(handled, commits, self.view())

    # ------------------------------------------------------------ events from the client
    def key(self, keyval: int, modifiers: int) -> Reaction:
        """A key event (IBus's keyval and modifier state)."""
        if modifiers & keys.RELEASE_MASK:
            if keyval in (keys.SHIFT_L, keys.SHIFT_R) and self._shift_alone:
                self._shift_alone = False
                return self.toggle(handled=False)
            return self._react(False)
        if is_modifier(keyval):
            self._shift_alone = keyval in (keys.SHIFT_L, keys.SHIFT_R) \
                and not modifiers & keys.COMMAND_MASK
            return self._react(False)
        self._shift_alone = False
        undo_ready, self._undo_ready = self._undo_ready, False
        after_digit, self._after_digit = self._after_digit, False
        if modifiers & keys.COMMAND_MASK or not self.chinese:
            self._dismiss_suggestions()
            return self._react(False)
        if self.letters:
            return self._composing_key(keyval)
        return self._idle_key(keyval, undo_ready, after_digit)

    def pick(self, index: int) -> Reaction:
        """The entry `index` of the page on screen, clicked (or its digit typed)."""
        position = self._page * PAGE_SIZE + index
        if self._kind == "candidates" and 0 <= position < len(self._candidates):
            return self._pick_candidate(position)
        if self._kind == "suggestions" and 0 <= position < len(self._suggestions):
            return self._pick_suggestion(position)
        return self._react()

    def page(self, step: int) -> Reaction:
        """Page the lookup table back (-1) or on (+1)."""
        if self._kind == "candidates" and step > 0 and not self._extended \
                and self._page + 1 >= self._pages():
            self._extend()
        self._page = min(max(self._page + step, 0), max(self._pages() - 1, 0))
        return self._react()

    def toggle(self, handled: bool = True) -> Reaction:
        """Chinese ⇄ English; letters composing go in as typed."""
        commits = self._commit_letters() if self.letters else ()
        self.chinese = not self.chinese
        self._dismiss_suggestions()
        return self._react(handled, commits)

    def surrounding(self, text: str, cursor: int, anchor: int | None = None) -> None:
        """The client's text around the caret: what is before the caret (or the selection)
        becomes the context."""
        end = min(cursor, anchor if anchor is not None else cursor)
        self.context = text[:max(end, 0)][-CONTEXT_CHARS:]

    def set_password(self, password: bool) -> None:
        self.password = password
        if password:
            self._dismiss_suggestions()

    def reset(self) -> Reaction:
        """Focus moved, or the client reset us (a click moved the caret): drop what is
        composing (the picks already committed are learned) and forget the context."""
        if self.letters:
            self._end_composition(suggest=False)
        self._dismiss_suggestions()
        self.context = ""
        self._undo_ready = self._shift_alone = self._after_digit = False
        return self._react()

    # ------------------------------------------------------------ composing
    def _composing_key(self, keyval: int) -> Reaction:
        char, digit = keys.char_of(keyval), keys.digit_of(keyval)
        if char.isascii() and char.isalpha() or char == "'":
            if len(self.letters) < MAX_LETTERS:
                self.letters += char.lower()
                self._decode()
            return self._react()
        if keyval == keys.BACKSPACE:
            self.letters = self.letters[:-1]
            if self.letters.strip("'"):
                self._decode()
            else:
                self._end_composition(suggest=False)
            return self._react()
        if keyval == keys.SPACE:
            if not self._candidates:
                return self._react(True, self._commit_letters())
            return self._pick_candidate(self._page * PAGE_SIZE)
        if digit is not None:
            return self.pick(digit - 1)
        if keyval in (keys.RETURN, keys.KP_ENTER):
            return self._react(True, self._commit_letters())
        if keyval == keys.ESCAPE:
            self._end_composition(suggest=False)
            return self._react()
        if char in FULL_WIDTH:
            return self._react(True, self._commit_whole(char))
        if keyval in PAGE_BACK:
            return self.page(-1)
        if keyval in PAGE_ON:
            return self.page(+1)
        if char and char != "0":  # any other character: the best phrase goes in, then it
            return self._react(False, self._commit_whole(""))
        return self._react()  # Tab, Left, Home, 0 …: nothing while composing

    def _decode(self) -> None:
        self._decoding = self.ranker.decode(self.letters, self._model_context(), PAGE_SIZE)
        self._candidates = self._decoding.ranked(PAGE_SIZE)
        self._kind, self._page, self._extended = "candidates", 0, False

    def _extend(self) -> None:
        """More candidates, after those shown (the decoder asked for its most)."""
        self._extended = True
        more = self.ranker.decode(self.letters, self._model_context(), PINYIN_MAX_K)
        seen = {(c.text, c.letters) for c in self._candidates}
        for c in more.ranked(MORE_CANDIDATES):
            if (c.text, c.letters) not in seen and len(self._candidates) < MORE_CANDIDATES:
                seen.add((c.text, c.letters))
                self._candidates.append(c)

    def _pages(self) -> int:
        entries = self._candidates if self._kind == "candidates" else self._suggestions
        return math.ceil(len(entries) / PAGE_SIZE)

    def _pick_candidate(self, position: int) -> Reaction:
        chosen = self._candidates[position]
        typed = self.letters[:chosen.letters]
        self.letters = self.letters[chosen.letters:]
        self._picks.append((chosen.text, typed))
        self._composed.append(chosen.text)
        self._add_context(chosen.text)
        if self.letters.strip("'"):
            self._decode()  # the rest, after the pick
        else:
            self._end_composition(suggest=True)
        return self._react(True, (chosen.text,))

    def _commit_letters(self) -> tuple[str, ...]:
        """The letters as typed go in, and the composition ends."""
        text = self.letters
        self._composed.append(text)
        self._add_context(text)
        self._end_composition(suggest=True)
        return (text,)

    def _commit_whole(self, mark: str) -> tuple[str, ...]:
        """The best phrase for all the letters (the letters, when nothing decodes), and the
        mark in full width when there is one."""
        decoding = self._decoding or Decoding([], [])
        if mark and decoding.phrases:  # ranked again with the mark after them
            decoding = self.ranker.decode(self.letters, self._model_context(), PAGE_SIZE,
                                          followed_by=FULL_WIDTH[mark])
        found = commit_of(decoding, self.letters + mark) if mark else None
        text = found.text if found is not None \
            else decoding.phrases[0].text if decoding.phrases else self.letters
        if decoding.phrases:
            self._picks.append((decoding.phrases[0].text, self.letters))
        self._composed.append(text)
        self._add_context(text)
        self._end_composition(suggest=bool(mark))
        return (text,)

    def _end_composition(self, suggest: bool) -> None:
        """The composition is over: learn what it committed, then show what may come next."""
        text, picks = "".join(self._composed), list(self._picks)
        self.letters, self._decoding, self._candidates = "", None, []
        self._picks, self._composed = [], []
        self._kind, self._page = "", 0
        if text:
            self._learn(text, picks)
            if suggest:
                self._suggest()

    # ------------------------------------------------------------ idle
    def _idle_key(self, keyval: int, undo_ready: bool, after_digit: bool) -> Reaction:
        char, digit = keys.char_of(keyval), keys.digit_of(keyval)
        if self._kind == "suggestions" and digit is not None \
                and digit <= len(self.view().shown):
            return self.pick(digit - 1)
        self._dismiss_suggestions()
        if "a" <= char <= "z":
            self.letters = char
            self._decode()
            return self._react()
        if char in FULL_WIDTH and not (after_digit and char in MARKS_AFTER_DIGIT):
            text = FULL_WIDTH[char]
            self._add_context(text)
            self._learn(text, None)
            self._suggest()
            return self._react(True, (text,))
        if keyval == keys.BACKSPACE:
            if undo_ready:
                self._unlearn()
            self.context = self.context[:-1]
        elif keyval in CARET_KEYS:
            self.context = ""  # the caret moved: unknown until the client says
        elif keyval in (keys.RETURN, keys.KP_ENTER):
            self._add_context("\n")
        elif char:
            self._add_context(char)
            self._after_digit = char.isdigit()
        return self._react(False)

    def _pick_suggestion(self, position: int) -> Reaction:
        word = self._suggestions[position]
        self._add_context(word)
        self._learn(word, None)
        self._suggest()
        return self._react(True, (word,))

    def _suggest(self) -> None:
        """Next-word suggestions in the table (never in a password field)."""
        self._dismiss_suggestions()
        if self.password:
            return
        try:
            self._suggestions = self.ranker.suggest(self._model_context(), PAGE_SIZE)
        except Exception:  # suggestions are a nicety: a failure must not lose the commit
            log.exception("next-word suggestions failed")
            self._suggestions = []
        self._kind, self._page = "suggestions", 0

    def _dismiss_suggestions(self) -> None:
        if self._kind == "suggestions":
            self._kind, self._page = "", 0
        self._suggestions = []

    # ------------------------------------------------------------ context and learning
    def _add_context(self, text: str) -> None:
        self.context = (self.context + text)[-2 * CONTEXT_CHARS:]

    def _model_context(self) -> str:
        return self.context[-CONTEXT_CHARS:]

    def _learn(self, text: str, picks: list[tuple[str, str]] | None) -> None:
        if self.password:
            return
        before = self.context[:-len(text)] if text and self.context.endswith(text) else ""
        try:
            self.learner.learn(text, picks, before)
            self._undo_ready = True
        except RnnImeError as error:  # a damaged or locked file: one line, the text stays typed
            log.warning("learning %r failed: %s", text, error)
        except Exception:  # learning must never lose what was typed
            log.exception("learning %r failed", text)

    def _unlearn(self) -> None:
        try:
            self.learner.undo()
        except Exception:
            log.exception("undoing the last learning failed")
