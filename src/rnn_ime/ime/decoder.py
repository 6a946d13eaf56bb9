"""Search a pinyin lattice for the phrases the language model likes best.

A beam over lattice positions, left to right. A hypothesis is a path from 0 to a position with
its score: the language model's log-probability of its words given the text before it (`read`
of the context, then one `step` per word), minus the lattice's penalties. A word outside the
model's vocabulary scores log p(<unk> | history) + log p(word | <unk>) (the lexicon's `extra`),
and the scorer then steps with <unk>. At each position only the `beam` best hypotheses are
extended (each costs one `step`, done lazily when it is extended; a position's hypotheses are
stepped together in one `step_batch`), and a position whose best hypothesis, plus an
optimistic unigram estimate of the rest, falls far behind the best seen is skipped. Works with
any Scorer: the recurrent model, the n-gram, their mixture, ONNX.

A mark typed after the letters (`nihaoma?`) says that the phrase ends a clause: the whole-input
phrases are then ranked with p(？ | phrase) as well, as a language model scores a sentence with
its end (`followed_by`).

The context's own words count too (a cache model, Kuhn & De Mori 1990: a text uses its words
again): each word's probability is (1 − μ)·p(word | history) + μ·c(word)/N, c counting the
context's words the lexicon can type and N their sum (`DecoderSettings.context_weight`, μ).
"""

from __future__ import annotations

import math
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..limits import PINYIN_MAX_BEAM, PINYIN_MAX_K
from ..scoring import Scorer
from ..vocab import SPECIALS, UNK_ID
from .candidates import Candidate, Decoding
from .lattice import Edges, Penalties, build_lattice, whole_syllables
from .lexicon import Lexicon, open_lexicon
from .syllables import PinyinError, canonical, check_fuzzy, normalize, syllable_ids

DEFAULT_BEAM = 4
# nats: a position this far behind the best estimate is not extended. 6 on 500 validation
# pieces per source: the same top-1, top-5 and characters as 10 but for one piece's top-5 (news,
# no context), about a fifth less time (bench/pinyin.py's inputs of 20 and 40 letters)
PRUNE_MARGIN = 6.0
STEP_MEMO = 256  # paths a StepMemo keeps (4 bytes a word each: 32 MB with 31k words), then cleared
# μ: the share of a word's probability given by how often the context used it (validation
# pieces, 500 per source: 0.02 / 0.05 / 0.1 all help, 0.05 a little more)
CONTEXT_WEIGHT = 0.05
# whole-input hypotheses kept for a mark typed after the letters to rank: a word that ends
# clauses (吗 of `ma?`) may stand low before the mark is known
MARK_END_WIDTH = 16
# nats by which a phrase must beat, with the mark, the one ranked first without it to take its
# place: the user saw that one first (validation pieces followed by a mark: at 0, 37 fixed and
# 23 right ones changed; at 0.5, 17 and 5)
MARK_MARGIN = 0.5


@dataclass(frozen=True)
class DecoderSettings:
    """Everything that shapes a decoding, in one place (the CLI, the API and the page set it)."""
    k: int = 5  # candidates of each kind
    beam: int = DEFAULT_BEAM  # hypotheses kept per lattice position
    fuzzy: frozenset[str] = frozenset()  # fuzzy-pinyin rules (syllables.FUZZY_RULES)
    penalties: Penalties = field(default_factory=Penalties)
    margin: float = PRUNE_MARGIN
    context_weight: float = CONTEXT_WEIGHT  # μ of the context's words (0: the scorer alone)

    def __post_init__(self) -> None:
        if not 1 <= self.k <= PINYIN_MAX_K:
            raise PinyinError(f"-k must be between 1 and {PINYIN_MAX_K}")
        if not 0.0 <= self.context_weight < 1.0:
            raise PinyinError("--context-weight must be in [0, 1)")
        if not 1 <= self.beam <= PINYIN_MAX_BEAM:
            raise PinyinError(f"--beam must be between 1 and {PINYIN_MAX_BEAM}")
        object.__setattr__(self, "fuzzy", check_fuzzy(self.fuzzy))


@dataclass(frozen=True)
class Segment:
    word: int  # lexicon word index; -1 for letters kept as typed
    start: int  # letter positions (apostrophes not counted)
    end: int


class StepMemo:
    """The scorer's steps of one composition: the state and log-probabilities after each path
    of words decoded from one root, so that the next keystroke re-steps only the words its new
    letters brought (typing a 20th letter steps what the 19th did not). `key` names the root
    (the context, the scorer, the version of a user's counts): a memo serves one key only."""

    def __init__(self, key: Any, limit: int = STEP_MEMO) -> None:
        self.key, self.limit = key, limit
        self.steps: dict[tuple[str, ...], tuple[Any, np.ndarray]] = {}

    def get(self, words: tuple[str, ...]) -> tuple[Any, np.ndarray] | None:
        return self.steps.get(words)

    def put(self, words: tuple[str, ...], stepped: tuple[Any, np.ndarray]) -> None:
        if len(self.steps) >= self.limit:
            self.steps.clear()
        self.steps[words] = stepped


class StepMemos:
    """The StepMemo of each of the `size` compositions typed last (one per typist: the IBus
    engine keeps one, the server a few), least recently used dropped first."""

    def __init__(self, size: int = 1, limit: int = STEP_MEMO) -> None:
        self.size, self.limit = size, limit
        self._memos: OrderedDict[Any, StepMemo] = OrderedDict()

    def for_key(self, key: Any) -> StepMemo:
        memo = self._memos.pop(key, None) or StepMemo(key, self.limit)
        self._memos[key] = memo
        while len(self._memos) > self.size:
            self._memos.popitem(last=False)
        return memo


@dataclass
class _Hyp:
    score: float
    log_prob: float
    path: tuple[Segment, ...]
    words: tuple[str, ...]  # the path's words ("" for letters kept as typed: steps as <unk>)
    parent: Any  # the state before the last word (stepped lazily)
    state: Any = None
    log_probs: np.ndarray | None = None


def _expand(hyps: Sequence[_Hyp], scorer: Scorer, memo: StepMemo | None) -> int:
    """Step every hypothesis not yet stepped (or found in `memo`), in one batched call;
    returns how many were stepped."""
    pending = []
    for hyp in hyps:
        if hyp.log_probs is None:
            found = memo.get(hyp.words) if memo is not None else None
            if found is None:
                pending.append(hyp)
            else:
                hyp.state, hyp.log_probs = found
    if not pending:
        return 0
    stepped = scorer.step_words_for_lexicon([hyp.parent for hyp in pending],
                                            [hyp.words[-1] for hyp in pending])
    for hyp, (state, log_probs) in zip(pending, stepped, strict=True):
        hyp.state, hyp.log_probs = state, log_probs
        if memo is not None:
            memo.put(hyp.words, (hyp.state, hyp.log_probs))
    return len(pending)


class ContextWords:
    """The context's words as a distribution, mixed into every word's probability:
    (1 − μ)·p(word | history) + μ·c(word)/N. Only the words of the context the lexicon can type
    count (not punctuation or <unk>), so the mixture still sums to one over the vocabulary and
    the lexicon. One per decoding, held over vocabulary ids ((V,) arrays)."""

    def __init__(self, context: Sequence[int], lexicon: Lexicon, vocab_size: int,
                 weight: float) -> None:
        ids = np.asarray(context, dtype=np.int64)
        ids, counts = np.unique(ids[(ids >= len(SPECIALS)) & (ids < vocab_size)],
                                return_counts=True)
        typable = lexicon.typable(vocab_size)[ids]
        ids, counts = ids[typable], counts[typable]
        self.has = np.zeros(vocab_size, dtype=bool)  # the context's words, by vocabulary id
        self.has[ids] = True
        self.log_share = np.zeros(vocab_size)  # log(μ·c/N) where `has`
        if len(ids):
            self.log_share[ids] = np.log(weight * counts / counts.sum())
        self.log_keep = math.log1p(-weight)
        self.active = bool(len(ids))

    @classmethod
    def of(cls, context: Sequence[int], lexicon: Lexicon, vocab_size: int, weight: float
           ) -> ContextWords | None:
        """The context's words, or None when there are none to mix (or μ is 0)."""
        if weight <= 0.0 or not len(context):
            return None
        found = cls(context, lexicon, vocab_size, weight)
        return found if found.active else None

    def mix(self, word_lp: np.ndarray, lexicon: Lexicon, words: np.ndarray) -> np.ndarray:
        """log((1 − μ)·p + μ·share) for lexicon `words`, given their log p `word_lp`
        ((words,), or (hypotheses, words))."""
        ids = lexicon.step_id[words]
        hit = self.has[ids]
        out = word_lp + self.log_keep
        if hit.any():
            at = np.flatnonzero(hit)
            out[..., at] = np.logaddexp(out[..., at], self.log_share[ids[at]])
        return out


def _estimates(lattice: list[list[Edges]], unigram: np.ndarray, lexicon: Lexicon,
               n: int, literal: float) -> np.ndarray:
    """best[s]: the best unigram score from s to the end (an optimistic guess of the rest)."""
    best = np.full(n + 1, -math.inf)
    best[n] = 0.0
    for s in range(n - 1, -1, -1):
        for edges in lattice[s]:
            word = -literal if edges.literal else \
                float(np.max(unigram[lexicon.step_id[edges.words]]
                             + lexicon.extra[edges.words] - edges.penalty))
            best[s] = max(best[s], word + best[edges.end])
    return best


def decode(scorer: Scorer, raw: str, context: Sequence[int] = (),
           settings: DecoderSettings = DecoderSettings(), lexicon: Lexicon | None = None,
           start: tuple[Any, Any] | None = None, memo: StepMemo | None = None,
           followed_by: str = "") -> Decoding:
    """Ranked candidates for the typed pinyin `raw` after the word ids `context`.

    `start`: the scorer's (state, log_probs) after the context, when the caller has it.
    `memo`: steps kept from the composition's earlier keystrokes (same context and scorer).
    `followed_by`: a word known to come next (the full-width mark typed after the letters):
    whole-input phrases (MARK_END_WIDTH of them) are ranked with its probability after them,
    and a single character gets no bonus for the longer words it may begin."""
    vocab = scorer.vocab
    lexicon = lexicon or open_lexicon(vocab)
    if lexicon.vocab_sha256 != vocab.sha256:
        raise PinyinError("the lexicon was built for another vocabulary")
    letters, breaks, consumed = normalize(raw)
    n = len(letters)
    if n == 0:
        return Decoding([], [], letters=letters)
    lattice = build_lattice(letters, breaks, lexicon, settings.fuzzy, settings.penalties)
    state, log_probs = start if start is not None else scorer.read(context)
    root_lp = log_probs.float().cpu().numpy()
    recent = ContextWords.of(context, lexicon, len(vocab), settings.context_weight)
    # the first search's steps are kept for a second one (this decoding's own memo if the
    # caller keeps none)
    memo = memo if memo is not None else StepMemo(key=None)
    end_width = MARK_END_WIDTH if followed_by else 0
    found = _search(scorer, lattice, n, state, root_lp, lexicon, settings, memo, recent,
                    end_width)
    if found is None:  # pruned every way to the end: search again without pruning
        found = _search(scorer, lattice, n, state, root_lp, lexicon,
                        replace(settings, margin=math.inf), memo, recent, end_width)
    finals, steps = found or ([], 0)
    if followed_by and finals:
        finals, more = _followed_by(finals, scorer, memo, followed_by)
        steps += more
    make = _Maker(letters, lexicon, consumed)
    starts = _Starts(scorer, state, root_lp, lexicon, letters, breaks, recent)
    phrases = _unique(make(h.path, h.log_prob, h.score) for h in finals)
    if any(not c.literal for c in phrases):  # letters kept as typed only when nothing else fits
        phrases = [c for c in phrases if not c.literal]
    if followed_by:  # the text ends here: no bonus for the words a character may begin
        phrases = phrases[:settings.k]
    else:
        phrases = _with_characters(phrases, [e for e in lattice[0] if e.end == n], starts,
                                   make, settings.k)
    first = _first_words(lattice[0], starts, phrases, make, settings.k)
    literal = any(e.literal for edges in lattice for e in edges)
    return Decoding(phrases, first, steps, letters, literal)


def _search(scorer: Scorer, lattice: list[list[Edges]], n: int, state: Any,
            root_lp: np.ndarray, lexicon: Lexicon, settings: DecoderSettings,
            memo: StepMemo | None = None, recent: ContextWords | None = None,
            end_width: int = 0) -> tuple[list[_Hyp], int] | None:
    estimate = _estimates(lattice, scorer.vocab.log_unigram, lexicon, n,
                          settings.penalties.literal)
    beam, width = settings.beam, max(settings.beam, settings.k, end_width)
    root = _Hyp(0.0, 0.0, (), (), None, state, root_lp)
    at: dict[int, list[_Hyp]] = defaultdict(list)
    at[0].append(root)
    steps, reference = 0, -math.inf
    for s in range(n):
        if not at[s]:
            continue
        hyps = sorted(at.pop(s), key=lambda h: -h.score)[:beam]
        best = hyps[0].score + estimate[s]
        reference = max(reference, best)
        if best < reference - settings.margin:
            continue
        steps += _expand(hyps, scorer, memo)
        for edges, word_lp in zip(lattice[s], _position_log_probs(scorer, hyps, lattice[s],
                                                                  lexicon, recent), strict=True):
            _extend(hyps, edges, word_lp, s, lexicon, width if edges.end == n else beam, at)
    if not at.get(n):
        return None if settings.margin != math.inf else ([], steps)
    return sorted(at[n], key=lambda h: -h.score), steps


def _followed_by(finals: list[_Hyp], scorer: Scorer, memo: StepMemo | None, word: str
                 ) -> tuple[list[_Hyp], int]:
    """The whole-input hypotheses (given best first) with log p(word | hypothesis) added to
    their scores and ranked by them, except that the first stays first unless beaten by more
    than MARK_MARGIN; and the steps that took (a word outside the vocabulary, such as a mark
    the training text never had, adds nothing)."""
    word_id = scorer.vocab.id(word)
    if word_id < len(SPECIALS):
        return finals, 0
    steps = _expand(finals, scorer, memo)
    for hyp in finals:
        hyp.score += scorer.word_log_prob(hyp.state, hyp.log_probs, word_id)
    shown = finals[0]
    ranked = sorted(finals, key=lambda h: -h.score)
    if ranked[0] is not shown and ranked[0].score - shown.score <= MARK_MARGIN:
        ranked.remove(shown)
        ranked.insert(0, shown)
    return ranked, steps


def _position_log_probs(scorer: Scorer, hyps: Sequence[_Hyp], edges_at: list[Edges],
                        lexicon: Lexicon, recent: ContextWords | None) -> list[np.ndarray]:
    """(hypotheses, words) log p(word | history) for each group of edges leaving a position,
    the context's words mixed in: every group's words looked up in one call (a scorer's work
    per call, like the user model's per hypothesis, is then done once per position)."""
    groups = [edges for edges in edges_at if not edges.literal]
    if groups:
        words = np.concatenate([edges.words for edges in groups]) if len(groups) > 1 \
            else groups[0].words
        word_lp = scorer.lexicon_log_probs_batch([h.state for h in hyps],
                                                 [h.log_probs for h in hyps], lexicon, words)
        if recent is not None:  # every hypothesis at once
            word_lp = recent.mix(word_lp, lexicon, words)
        bounds = np.cumsum([len(edges.words) for edges in groups])[:-1]
        parts = iter(np.split(word_lp, bounds, axis=1))
    # letters kept as typed: 0 for each hypothesis
    return [np.zeros((len(hyps), 1)) if edges.literal else next(parts) for edges in edges_at]


def _edge_log_probs(scorer: Scorer, state: Any, log_probs: np.ndarray, lexicon: Lexicon,
                    edges: Edges, recent: ContextWords | None = None) -> np.ndarray:
    """log p(word | history) of each word of `edges` (0 for letters kept as typed), the
    context's words mixed in when there are any."""
    if edges.literal:
        return np.zeros(1)
    word_lp = scorer.lexicon_log_probs(state, log_probs, lexicon, edges.words)
    return word_lp if recent is None else recent.mix(word_lp, lexicon, edges.words)


def _extend(hyps: Sequence[_Hyp], edges: Edges, word_lp: np.ndarray, s: int,
            lexicon: Lexicon, width: int, at: dict[int, list[_Hyp]]) -> None:
    """The `width` best extensions of any of `hyps` by one word of `edges` (only these can
    survive at edges.end, which keeps at most that many); word_lp (hyps, words)."""
    totals = (np.asarray([hyp.score for hyp in hyps])[:, None] + word_lp
              - edges.penalty[None, :]).ravel()
    keep = np.argpartition(-totals, width - 1)[:width] if len(totals) > width \
        else np.arange(len(totals))
    m = word_lp.shape[1]
    for flat in keep.tolist():
        if not np.isfinite(totals[flat]):
            continue
        hyp, i = hyps[flat // m], flat % m
        word = int(edges.words[i])
        text = lexicon.words[word] if word >= 0 else ""
        at[edges.end].append(_Hyp(float(totals[flat]), hyp.log_prob + float(word_lp[flat // m, i]),
                                  (*hyp.path, Segment(word, s, edges.end)), (*hyp.words, text),
                                  hyp.state))


@dataclass(frozen=True)
class _Maker:
    letters: str
    lexicon: Lexicon
    consumed: list[int]

    def __call__(self, path: Sequence[Segment], log_prob: float, score: float) -> Candidate:
        words = tuple(self.letters[seg.start:seg.end] if seg.word < 0
                      else self.lexicon.words[seg.word] for seg in path)
        known = all(seg.word >= 0 and self.lexicon.step_id[seg.word] != UNK_ID for seg in path)
        literal = any(seg.word < 0 for seg in path)
        return Candidate(words, self.consumed[path[-1].end], log_prob, score, known, literal)


def _unique(candidates: Iterable[Candidate]) -> list[Candidate]:
    seen: set[tuple[str, int]] = set()
    out = []
    for c in candidates:
        if (c.text, c.letters) not in seen:
            seen.add((c.text, c.letters))
            out.append(c)
    return out


class _Starts:
    """For the edges leaving position 0: each word's log-probability, and how likely the text
    is to start with it. A single character typed as one whole syllable may be the first of a
    longer word the user goes on to type character by character (机 of 机会, 机场 …), so it
    starts the text with its own probability plus theirs; any other word, with its own. Typed
    alone, `ji` then offers 机 记 几 基 first, the characters text starts with, not those
    that stand alone most (及 既 即). Each group of edges is scored once."""

    def __init__(self, scorer: Scorer, state: Any, root_lp: np.ndarray, lexicon: Lexicon,
                 letters: str, breaks: frozenset[int], recent: ContextWords | None = None
                 ) -> None:
        self.scorer, self.state, self.root_lp, self.lexicon = scorer, state, root_lp, lexicon
        self.letters, self.breaks, self.recent = letters, breaks, recent
        self.done: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, edges: Edges) -> tuple[np.ndarray, np.ndarray]:
        """(own log-probabilities, start log-probabilities) of the words of `edges`."""
        if edges.end not in self.done:
            own = _edge_log_probs(self.scorer, self.state, self.root_lp, self.lexicon, edges,
                                  self.recent)
            self.done[edges.end] = own, self._start(edges, own)
        return self.done[edges.end]

    def _start(self, edges: Edges, own: np.ndarray) -> np.ndarray:
        typed = self.letters[:edges.end]
        if edges.literal or typed not in whole_syllables() \
                or any(0 < b < edges.end for b in self.breaks):
            return own
        singles, longer, owner = self._longer_words(edges, syllable_ids()[canonical(typed)])
        if not len(longer):
            return own
        log_probs = self.scorer.lexicon_log_probs(self.state, self.root_lp, self.lexicon,
                                                  longer)
        if self.recent is not None:
            log_probs = self.recent.mix(log_probs, self.lexicon, longer)
        top = float(np.max(log_probs))
        if not np.isfinite(top):
            return own
        mass = np.bincount(owner, weights=np.exp(log_probs - top), minlength=len(singles))
        start = own.astype(np.float64, copy=True)
        with np.errstate(divide="ignore"):  # a character that begins no word adds nothing
            start[singles] = np.logaddexp(own[singles], np.log(mass) + top)
        return start

    def _longer_words(self, edges: Edges, syllable: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(positions of the single characters in edges, the longer words they begin, and the
        position of each one's first), memoised with the lattice's matches."""
        memo = self.lexicon.memo
        key = ("starts", syllable, edges.words.tobytes())
        if key not in memo:
            singles = np.flatnonzero(self.lexicon.single[edges.words])
            memo[key] = (singles, *self.lexicon.longer_words(edges.words[singles], syllable))
        return memo[key]


def _best_words(edges: Edges, starts: _Starts, make: _Maker, k: int
                ) -> list[tuple[bool, Candidate]]:
    """The k best words of a group of edges leaving position 0, by how likely the text is to
    start with them less their penalties, each with whether it is an exact match (no
    penalty)."""
    own, start = starts(edges)
    total = start - edges.penalty
    return [(bool(edges.penalty[i] == 0),
             make((Segment(int(edges.words[i]), 0, edges.end),), float(own[i]), float(total[i])))
            for i in np.argsort(-total)[:k] if np.isfinite(total[i])]


def _with_characters(phrases: list[Candidate], whole_input: list[Edges], starts: _Starts,
                     make: _Maker, k: int) -> list[Candidate]:
    """The phrases, and every single character that spells the whole input, ranked together;
    a character by how likely the text is to start with it (a syllable typed alone: `_Starts`).
    The beam keeps only the few characters that stand alone best."""
    found = list(phrases)
    for edges in whole_input:
        found.extend(c for _, c in _best_words(edges, starts, make, k)
                     if not c.literal and len(c.text) == 1)
    by_text = {}
    for c in sorted(found, key=lambda c: -c.score):
        by_text.setdefault(c.text, c)
    return list(by_text.values())[:k]


def _first_words(edges_at_0: list[Edges], starts: _Starts, phrases: list[Candidate],
                 make: _Maker, k: int) -> list[Candidate]:
    """The first words of the best phrases, then the words the input can start with: exact
    matches (no abbreviation, partial syllable or literal) consuming more letters first, then
    the others by score (a single character: by how likely the text is to start with it). One
    entry per text."""
    found = [f for edges in edges_at_0 for f in _best_words(edges, starts, make, k)]
    found.sort(key=lambda f: (not f[0], -f[1].letters if f[0] else 0, -f[1].score))
    best_of: dict[str, Candidate] = {}
    for _, c in found:
        best_of.setdefault(c.text, c)
    leading = [best_of[c.words[0]] for c in phrases if c.words[0] in best_of]
    out, seen = [], set()
    for c in [*leading, *(c for _, c in found)]:
        if c.text not in seen:
            seen.add(c.text)
            out.append(c)
    return out[:k]
