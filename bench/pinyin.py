"""Pinyin → characters on the raw test text: rankers of the same lattice and a peer, side by side.

Honest pieces. The test split's documents are recovered as raw text (`prepare.split_corpus`:
the same read → clean → deduplicate → seeded split that made the data dir, checked against its
manifest), so a piece that holds a word outside the vocabulary is kept, not skipped: the token
arrays could not show it. Each passage is cut at sentence and clause punctuation (CUTS) into
clauses; a clause of 4–12 Chinese characters and nothing else is a piece (the others are counted
by why they are not). Per source (reviews, news, and bench/data/outside.txt: sentences written
for this bench, outside both), `--pieces` pieces in a seeded order. A piece is typed as its
tone-less pinyin from pypinyin, run together (no apostrophes).

Context: the words (jieba, encoded with the vocabulary, unknown → <unk>) of the passage's text
before the piece; every ranker also runs with no context, and both are reported. A piece is an
OOV piece when one of its own words (jieba on the piece) is outside the vocabulary; accuracy is
reported overall and on each side.

Rankers: unigram frequency, the Kneser-Ney n-gram of the training split, the recurrent model and
the product's scorer (the model dir's choice, the rnn + KN mixture), and a peer, Pinyin2Hanzi's
DAG (path_num 5, no context), handed the right syllables from pypinyin: it gets the syllable
boundaries, our decoder gets raw letters. A piece it cannot take (a syllable outside its table)
or answers nothing for counts as wrong. Reported: sentence top-1 (first column), whether the
right sentence is in the top 5, character accuracy of the top candidate (position by position),
the product's top-1 over the peer's, and decode latency p50/p99 (one CPU thread) at 10, 20 and
40 letters cut from the test pieces' pinyin (the product's scorer; every ranker with
--latency-all): each input decoded afresh, its context read too (as `rnn-ime pinyin
--context` does), and, for the product, the same with the context read beforehand (the
decoding alone: the IBus engine and the server keep the context's state), and the last key of
the input typed key by key with the composition's steps kept between keys (as the IBus engine
and the server decode).

    .venv/bin/python bench/pinyin.py --model models/default --pieces 500
    .venv/bin/python bench/pinyin.py --model models/default --quick          # smoke test
    .venv/bin/python bench/pinyin.py --data data/default --sources news      # no recurrent model
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, ROOT, machine, print_table  # noqa: E402

from rnn_ime.corpus import Document  # noqa: E402
from rnn_ime.data import DataDir  # noqa: E402
from rnn_ime.errors import RnnImeError  # noqa: E402
from rnn_ime.ime import (  # noqa: E402
    DEFAULT_BEAM,
    FULL_WIDTH,
    DecoderSettings,
    StepMemo,
    decode,
    open_lexicon,
)
from rnn_ime.ngram import NgramScorer  # noqa: E402
from rnn_ime.prepare import (  # noqa: E402
    DEFAULT_CORPUS,
    CorpusSplit,
    PrepareConfig,
    encode_split,
    split_corpus,
)
from rnn_ime.scoring import Scorer  # noqa: E402
from rnn_ime.text import get_tokenizer  # noqa: E402
from rnn_ime.vocab import SPECIALS, Vocab  # noqa: E402

# Sentence and clause punctuation: a piece never spans one (nor a space or a line break).
CUTS = frozenset("。！？，,!?；;：:、…～~")
MIN_CHARS, MAX_CHARS = 4, 12
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
LATIN_OR_DIGIT = re.compile(r"[0-9A-Za-z]")
OUTSIDE = ROOT / "bench" / "data" / "outside.txt"
OUTSIDE_NAME = "outside"
LENGTHS = (10, 20, 40)
K = 5
PEER_PATHS = 5
WITH, WITHOUT = "passage", "none"  # the two context modes
TYPED_MARKS = frozenset(FULL_WIDTH.values())
THEN_MARK = ", then its mark"  # the product's commit: ranked knowing the mark typed after it


# ---------------------------------------------------------------- pieces (pure)
def clauses(passage: str) -> list[tuple[int, str]]:
    """(offset, clause) for each clause of `passage`: the text between CUTS or whitespace, with
    punctuation at its edges (quotes, brackets, dashes) stripped, since one types no letters
    for it; the offset is where the stripped clause starts in the passage."""
    out, start = [], 0
    for index in range(len(passage) + 1):
        if index < len(passage) and passage[index] not in CUTS \
                and not passage[index].isspace():
            continue
        begin, end = start, index
        while begin < end and _is_edge(passage[begin]):
            begin += 1
        while end > begin and _is_edge(passage[end - 1]):
            end -= 1
        if begin < end:
            out.append((begin, passage[begin:end]))
        start = index + 1
    return out


def _is_edge(char: str) -> bool:
    return unicodedata.category(char)[0] in "PZ"


def classify(clause: str) -> str:
    """Why a clause is or is not a piece: "piece", "short" / "long" (Chinese characters only, but
    outside 4–12), "digits_latin" (holds a digit or a Latin letter) or "other" (other symbols
    inside, such as 《》 or ·)."""
    if HAN.fullmatch(clause):
        if len(clause) < MIN_CHARS:
            return "short"
        return "long" if len(clause) > MAX_CHARS else "piece"
    return "digits_latin" if LATIN_OR_DIGIT.search(clause) else "other"


def passage_pieces(passage: str) -> tuple[list[tuple[int, str]], Counter[str]]:
    """The pieces of one passage as (offset, text), and every clause counted by its class."""
    found, counts = [], Counter()
    for offset, clause in clauses(passage):
        kind = classify(clause)
        counts[kind] += 1
        if kind == "piece":
            found.append((offset, clause))
    return found, counts


def oov_words(words: Iterable[str], vocab: Vocab | Container[str]) -> list[str]:
    """The words outside the vocabulary (the specials are not words one can type)."""
    return [w for w in words if w not in vocab or w in SPECIALS]


def syllables_of(text: str) -> tuple[str, ...] | None:
    """Tone-less pinyin syllables of `text` by pypinyin (ü as v, as one types it); None when a
    character has no reading."""
    from pypinyin import Style, lazy_pinyin

    found = tuple(s.replace("ü", "v") for s in lazy_pinyin(text, style=Style.NORMAL))
    if len(found) != len(text) or not all(s.isascii() and s.isalpha() for s in found):
        return None
    return found


def peer_syllables(ours: Sequence[str], simplify: Callable[[str], str],
                   known: frozenset[str]) -> list[str] | None:
    """Our syllables in Pinyin2Hanzi's spelling (its `simplify_pinyin`: ü as v, and -ue as -ve,
    so jue → jve, yue → yve); None when one is outside its syllable table (n, m, eng …)."""
    mapped = [simplify(s) for s in ours]
    return mapped if all(s in known for s in mapped) else None


# ---------------------------------------------------------------- the decoder, in one place
def decode_texts(scorer: Scorer, letters: str, context_ids: Sequence[int],
                 beam: int = DEFAULT_BEAM, memo: StepMemo | None = None,
                 start: tuple | None = None, followed_by: str = "") -> list[str]:
    """Candidate texts for the typed `letters` after the word ids `context_ids`, best first.
    The only call into the decoder: a new decoder API changes this function alone. `memo`:
    the steps of the same composition's earlier keys (as the IBus engine and the server keep);
    `start`: the scorer's (state, log-probabilities) after the context, read beforehand;
    `followed_by`: the full-width mark typed after the letters."""
    found = decode(scorer, letters, context_ids, DecoderSettings(k=K, beam=beam), memo=memo,
                   start=start, followed_by=followed_by)
    return [c.text for c in found.phrases]


# ---------------------------------------------------------------- test pieces
@dataclass(frozen=True)
class Piece:
    source: str
    text: str
    before: str  # the passage's text before the piece
    syllables: tuple[str, ...]
    context: tuple[int, ...]  # word ids of `before`
    oov: tuple[str, ...]  # the piece's words outside the vocabulary
    mark: str = ""  # the mark right after it that one types (，。？！；：、), else ""

    @property
    def letters(self) -> str:
        return "".join(self.syllables)


def source_pieces(documents: Iterable[Document], vocab: Vocab, count: int, seed: int,
                  source: str) -> tuple[list[Piece], dict]:
    """Up to `count` pieces of the documents in a seeded order, and the source's tallies: its
    clauses by class, and the OOV share over every piece (not only the ones decoded)."""
    tokenizer = get_tokenizer()
    counts: Counter[str] = Counter()
    candidates: list[tuple[str, int, str]] = []  # (passage, offset, text)
    for document in documents:
        for passage in document.passages:
            found, tally = passage_pieces(passage)
            counts.update(tally)
            candidates.extend((passage, offset, text) for offset, text in found)
    oov_all = sum(bool(oov_words(tokenizer.tokenize(text), vocab)) for _, _, text in candidates)
    random.Random(f"{seed}:{source}").shuffle(candidates)
    chosen: list[Piece] = []
    for passage, offset, text in candidates:
        if len(chosen) == count:
            break
        syllables = syllables_of(text)
        if syllables is None:
            counts["no_reading"] += 1
            continue
        before = passage[:offset]
        after = passage[offset + len(text):offset + len(text) + 1]
        chosen.append(Piece(source, text, before, syllables,
                            tuple(vocab.encode(tokenizer.tokenize(before))),
                            tuple(oov_words(tokenizer.tokenize(text), vocab)),
                            after if after in TYPED_MARKS else ""))
    tallies = {"clauses": dict(sorted(counts.items())), "candidates": len(candidates),
               "oov_share_all_pieces": oov_all / max(1, len(candidates))}
    return chosen, tallies


def check_manifest(corpus: CorpusSplit, manifest: dict, data_path: str) -> None:
    """The recovered text must be the data dir's: the same sources in the same order, byte for
    byte (sha256), and the same test documents."""
    recorded = [(s.get("name"), s.get("sha256")) for s in manifest.get("sources", [])]
    read = [(r.source, r.sha256) for r in corpus.reports]
    if read != recorded:
        raise RnnImeError(f"{data_path}: this data dir was prepared from other text (its "
                          f"manifest: {', '.join(str(n) for n, _ in recorded)}; read: "
                          f"{', '.join(n for n, _ in read)}; names, order or sha256 differ)")
    expected = manifest.get("splits", {}).get("test", {}).get("documents")
    if expected is not None and expected != len(corpus.members["test"]):
        raise RnnImeError(f"{data_path}: the split differs from the data dir's ({expected} test "
                          f"documents, not {len(corpus.members['test'])})")


def reencodes(test: list[Document], data: DataDir, split_name: str = "test") -> bool:
    """Whether the recovered documents of a split, segmented and encoded as prepare does, give
    the data dir's array exactly (a second check, after the hashes; a few seconds)."""
    tokenizer, names = get_tokenizer(), data.source_names
    ids, passages = encode_split([[tokenizer.tokenize(p) for p in d.passages] for d in test],
                                 [names.index(d.source) for d in test], data.vocab)
    split = data.split(split_name)
    return np.array_equal(ids, np.asarray(split.tokens)) and \
        np.array_equal(passages, np.asarray(split.passages))


def outside_documents(path: Path = OUTSIDE) -> list[Document]:
    """One document per line of the outside-domain file (its context: the line before)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Document(OUTSIDE_NAME, (line.strip(),)) for line in lines if line.strip()]


# ---------------------------------------------------------------- rankers
class UnigramScorer(Scorer[None]):
    """Every word by its training count, whatever came before (the floor)."""
    name = "unigram"

    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab
        counts = torch.tensor(vocab.counts, dtype=torch.float64) + 0.5
        counts[: len(SPECIALS)] = 0.0
        self.table = (counts / counts.sum()).log()

    def start(self) -> None:
        return None

    def step_batch(self, states: list[None], word_ids: list[int]
                   ) -> list[tuple[None, torch.Tensor]]:
        return [(None, self.table) for _ in word_ids]


class Peer:
    """Pinyin2Hanzi's DAG over its phrase and character tables, given the right syllables."""
    name = "Pinyin2Hanzi (peer)"

    def __init__(self) -> None:
        from Pinyin2Hanzi import DefaultDagParams, all_pinyin, dag, simplify_pinyin

        self.params = DefaultDagParams()
        self.dag, self.simplify = dag, simplify_pinyin
        # its syllable list, less any its character table lacks (every one is there in 0.1.1)
        self.known = frozenset(s for s in all_pinyin() if s in self.params.char_dict)
        self.untakeable = self.empty = 0

    def texts(self, piece: Piece) -> list[str]:
        syllables = peer_syllables(piece.syllables, self.simplify, self.known)
        if syllables is None:
            self.untakeable += 1
            return []
        found = ["".join(item.path) for item in self.dag(self.params, syllables,
                                                         path_num=PEER_PATHS)]
        self.empty += not found
        return found


def load_peer() -> Peer | None:
    try:
        return Peer()
    except ImportError:
        return None


# ---------------------------------------------------------------- metrics
def score(texts: list[str], right: str) -> tuple[bool, bool, int]:
    """(top-1 right, right in the top K, characters of the top candidate in place)."""
    best = texts[0] if texts else ""
    return (best == right, right in texts[:K],
            sum(a == b for a, b in zip(best, right, strict=False)))


def summarize(results: list[tuple[bool, bool, int]], pieces: list[Piece]) -> dict:
    n = len(results)
    chars = sum(len(p.text) for p in pieces)
    return {"n": n,
            "sentence_top1": sum(r[0] for r in results) / n if n else None,
            "sentence_top5": sum(r[1] for r in results) / n if n else None,
            "char_accuracy": sum(r[2] for r in results) / chars if chars else None}


def evaluate(rank: Callable[[Piece], list[str]], pieces: list[Piece]) -> dict:
    """Metrics over every piece, the in-vocabulary pieces and the OOV pieces."""
    results = [score(rank(p), p.text) for p in pieces]
    sides = {"overall": lambda p: True, "in_vocab": lambda p: not p.oov,
             "oov": lambda p: bool(p.oov)}
    out = {}
    for side, keep in sides.items():
        chosen = [(r, p) for r, p in zip(results, pieces, strict=True) if keep(p)]
        out[side] = summarize([r for r, _ in chosen], [p for _, p in chosen])
    return out


def latency_inputs(pieces: list[Piece], length: int, runs: int) -> list[tuple[str, tuple]]:
    """Pinyin of `length` letters: consecutive pieces joined and cut (the last syllable may be
    partial), with the context of the first."""
    out = []
    for index in range(min(runs, len(pieces))):
        letters, j = "", index
        while len(letters) < length:
            letters += pieces[j % len(pieces)].letters
            j += 1
        out.append((letters[:length], pieces[index].context))
    return out


def _milliseconds(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def _percentiles(times: list[float]) -> dict:
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}


def latency(scorer: Scorer, inputs: list[tuple[str, tuple]], beam: int) -> dict:
    return _percentiles([_milliseconds(partial(decode_texts, scorer, letters, context, beam))
                         for letters, context in inputs])


def latency_context_read(scorer: Scorer, inputs: list[tuple[str, tuple]], beam: int) -> dict:
    """Each input decoded afresh, its context read beforehand and untimed (the server and the
    IBus engine keep the context's state between keystrokes): the decoding alone."""
    times = []
    for letters, context in inputs:
        start = scorer.read(context)
        times.append(_milliseconds(partial(decode_texts, scorer, letters, context, beam,
                                           start=start)))
    return _percentiles(times)


def latency_typed(scorer: Scorer, inputs: list[tuple[str, tuple]], beam: int) -> dict:
    """The last key's decoding when each input is typed key by key, the composition's steps
    kept between keys (the IBus engine's and the server's path); the earlier keys untimed."""
    times = []
    for letters, context in inputs:
        memo = StepMemo(key=None)
        for end in range(1, len(letters)):
            decode_texts(scorer, letters[:end], context, beam, memo)
        times.append(_milliseconds(partial(decode_texts, scorer, letters, context, beam, memo)))
    return _percentiles(times)


# ---------------------------------------------------------------- report
def flat_row(source: str, ranker: str, context: str, metrics: dict, product: bool) -> dict:
    row = {"source": source, "ranker": ranker, "context": context, "product": product}
    for side, values in metrics.items():
        prefix = "" if side == "overall" else f"{side}_"
        row.update({f"{prefix}{key}": value for key, value in values.items()})
    return row


def ratios(rows: list[dict], sources: list[str]) -> dict:
    """The product's top-1 over the peer's, per source and context mode."""
    out: dict[str, dict] = {}
    for source in sources:
        peer = next((r for r in rows if r["source"] == source and r["ranker"] == Peer.name), None)
        for row in rows:
            if row["source"] != source or not row["product"] or peer is None \
                    or row["context"] not in (WITH, WITHOUT):
                continue
            p, ours = peer["sentence_top1"], row["sentence_top1"]
            out.setdefault(source, {})[row["context"]] = ours / p if p else None
    return out


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def markdown(result: dict) -> str:
    lines = [f"Pinyin → characters on raw test text of `{result['data']}` (pieces of 4–12 "
             "Chinese characters cut at sentence and clause punctuation, none left out for "
             f"holding a word outside the vocabulary; beam {result['beam']}, top {K}). "
             "Context: the passage before the piece (`passage`) or none. The peer "
             "(Pinyin2Hanzi) is handed the right syllables; our decoder gets raw letters. "
             f"`{THEN_MARK.lstrip(', ')}`: what the product commits when the mark that follows "
             "the piece in the text (，。？！；：、) is typed after its letters, ranked knowing "
             "the mark; a piece followed by no such mark (a quote, a space, the passage's end) "
             "counts as decoded alone.", ""]
    for source, info in result["sources"].items():
        clause_counts = ", ".join(f"{k} {v}" for k, v in info["clauses"].items())
        lines.append(f"- **{source}**: {info['pieces']} pieces ({info['mean_chars']:.1f} "
                     f"characters on average), {info['oov_share']:.1%} hold a word outside the "
                     f"vocabulary ({info['oov_share_all_pieces']:.1%} of all "
                     f"{info['candidates']} pieces), {info['mark_share']:.1%} followed by a "
                     f"mark one types; clauses: {clause_counts}")
    if result.get("peer_note"):
        lines.append(f"- peer: {result['peer_note']}")
    lines += ["", "| source | ranker | context | sentence top-1 | top-5 | characters right | "
              "top-1 in-vocab | top-1 OOV |", "|---|---|---|---|---|---|---|---|"]
    for row in result["rankers"]:
        star = " **(product)**" if row["product"] else ""
        lines.append(f"| {row['source']} | {row['ranker']}{star} | {row['context']} | "
                     f"{_pct(row['sentence_top1'])} | {_pct(row['sentence_top5'])} | "
                     f"{_pct(row['char_accuracy'])} | {_pct(row['in_vocab_sentence_top1'])} "
                     f"({row['in_vocab_n']}) | {_pct(row['oov_sentence_top1'])} "
                     f"({row['oov_n']}) |")
    if result["ratio_to_peer"]:
        lines += ["", "Product top-1 ÷ peer top-1: " + "; ".join(
            f"{source} " + ", ".join(f"{mode} {v:.2f}×" if v is not None else f"{mode} –"
                                     for mode, v in modes.items())
            for source, modes in result["ratio_to_peer"].items())]
    if result["latency"]:
        lines += ["", "| ranker | " + " | ".join(f"p50 / p99 at {n} letters" for n in LENGTHS)
                  + " |", "|---|" + "---|" * len(LENGTHS)]
        for row in result["latency"]:
            lines.append(f"| {row['ranker']} | " + " | ".join(
                f"{row[f'p50_ms_{n}']:.1f} / {row[f'p99_ms_{n}']:.1f} ms" for n in LENGTHS)
                + " |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main
def resolve_data(args: argparse.Namespace) -> str:
    """--data, else the model's training data (relative to here, else to the model's repo)."""
    if args.data:
        return args.data
    if args.model:
        from rnn_ime.modeldir import load_config

        recorded = load_config(Path(args.model)).get("train", {}).get("data")
        if recorded:
            for base in (Path.cwd(), Path(args.model).resolve().parent.parent.parent):
                if (base / recorded / "manifest.json").is_file():
                    return str(base / recorded)
    return "data/default"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a model dir: adds the recurrent model and the product")
    parser.add_argument("--data", help="a data dir (default: the model's, else data/default)")
    parser.add_argument("--corpus", nargs="+", default=list(DEFAULT_CORPUS),
                        help="the corpus the data dir was prepared from (default: embedded)")
    parser.add_argument("--format", default="auto", help="its format, as given to prepare")
    parser.add_argument("--sources", help="comma-separated sources to run (default: every "
                        f"source of the data dir, and {OUTSIDE_NAME})")
    parser.add_argument("--pieces", type=int, help="pieces per source (default 500; 30 --quick)")
    parser.add_argument("--order", type=int, default=4, help="order of the n-gram baseline")
    parser.add_argument("--beam", type=int, default=DEFAULT_BEAM)
    parser.add_argument("--latency-runs", type=int, help="inputs per length (100; 20 --quick)")
    parser.add_argument("--latency-all", action="store_true", help="latency of every ranker")
    parser.add_argument("--quick", action="store_true", help="a smoke test: fewer pieces and "
                        "latency runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=("valid", "test"), default="test",
                        help="where the pieces come from: tune settings on valid, report test")
    args = parser.parse_args(argv)
    args.pieces = args.pieces or (30 if args.quick else 500)
    args.latency_runs = args.latency_runs or (20 if args.quick else 100)
    return args


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def recover_test(args: argparse.Namespace, data: DataDir) -> tuple[list[str], list[Document]]:
    """The sources to run and the raw test documents, split as the data dir's manifest says."""
    split = data.manifest.get("split", {})
    ratios_recorded = split.get("ratios", [0.8, 0.1, 0.1])
    corpus = split_corpus(PrepareConfig(corpus=args.corpus, format=args.format,
                                        seed=split.get("seed", 0),
                                        valid_ratio=ratios_recorded[1],
                                        test_ratio=ratios_recorded[2], progress=False), _log)
    check_manifest(corpus, data.manifest, str(data.path))
    available = [*corpus.source_names, OUTSIDE_NAME]
    sources = args.sources.split(",") if args.sources else available
    unknown = [s for s in sources if s not in available]
    if unknown:
        raise RnnImeError(f"no source {unknown[0]!r}; choose from {', '.join(available)}")
    test = corpus.split(args.split)
    if not reencodes(test, data, args.split):
        _log(f"warning: the recovered {args.split} text does not encode to "
             f"{data.path}/{args.split}.npy (the "
             "sources match by sha256: another tokenizer version?)")
    return sources, test


def all_pieces(args: argparse.Namespace, sources: list[str], test: list[Document], vocab: Vocab
               ) -> tuple[dict[str, list[Piece]], dict[str, dict]]:
    by_source, info = {}, {}
    for source in sources:
        documents = outside_documents() if source == OUTSIDE_NAME else \
            [d for d in test if d.source == source]
        chosen, tallies = source_pieces(documents, vocab, args.pieces, args.seed, source)
        by_source[source] = chosen
        info[source] = {"pieces": len(chosen),
                        "oov_share": sum(bool(p.oov) for p in chosen) / max(1, len(chosen)),
                        "mark_share": sum(bool(p.mark) for p in chosen) / max(1, len(chosen)),
                        "mean_chars": float(np.mean([len(p.text) for p in chosen]))
                        if chosen else 0.0, **tallies}
        _log(f"{source}: {len(chosen)} pieces, {info[source]['oov_share']:.1%} OOV")
    return by_source, info


def load_rankers(args: argparse.Namespace, data: DataDir) -> list[tuple[Scorer, bool]]:
    """(scorer, is the product's) for unigram, KN n-gram, the model and the model dir's choice
    (the rnn + KN mixture); without --model, the n-gram stands for the product."""
    vocab = data.vocab
    scorers: list[tuple[Scorer, bool]] = [(UnigramScorer(vocab), False)]
    if args.model:
        from rnn_ime.mixture import MixtureScorer, load_scorer
        from rnn_ime.predict import Predictor

        alone = Predictor.from_dir(args.model, mixture=False).scorer
        if alone.vocab.sha256 != vocab.sha256:
            raise RnnImeError(f"{data.path}: its vocabulary is not the model's")
    kn = NgramScorer.train(data.split("train"), vocab, order=args.order)
    kn.name = f"KN {args.order}-gram"
    scorers.append((kn, not args.model))
    if args.model:
        alone.name = f"rnn ({Path(args.model).name})"
        chosen = load_scorer(args.model, alone)  # the product's scorer
        mixed = isinstance(chosen, MixtureScorer)
        scorers.append((alone, not mixed))
        if mixed:
            chosen.name = "rnn + KN mixture"
            scorers.append((chosen, True))
    return scorers


def run_rankers(scorers: list[tuple[Scorer, bool]], by_source: dict[str, list[Piece]],
                beam: int) -> list[dict]:
    rows = []
    for scorer, product in scorers:
        for source, pieces in by_source.items():
            for mode in (WITH, WITHOUT):
                metrics = evaluate(lambda p, s=scorer, m=mode: decode_texts(
                    s, p.letters, p.context if m == WITH else (), beam), pieces)
                rows.append(flat_row(source, scorer.name, mode, metrics, product))
            for mode in (WITH, WITHOUT) if product else ():
                metrics = evaluate(lambda p, s=scorer, m=mode: decode_texts(
                    s, p.letters, p.context if m == WITH else (), beam,
                    followed_by=p.mark), pieces)
                rows.append(flat_row(source, scorer.name, mode + THEN_MARK, metrics, product))
        _log(f"{scorer.name}: done")
    return rows


def run_peer(by_source: dict[str, list[Piece]], info: dict[str, dict]
             ) -> tuple[list[dict], str]:
    """The peer's rows (none when Pinyin2Hanzi is missing) and a note saying what it got."""
    peer = load_peer()
    if peer is None:
        return [], "Pinyin2Hanzi is not installed (pip install 'rnn-ime[bench]'): no peer row"
    rows = []
    for source, pieces in by_source.items():
        before = (peer.untakeable, peer.empty)
        rows.append(flat_row(source, Peer.name, WITHOUT, evaluate(peer.texts, pieces), False))
        info[source]["peer_untakeable"] = peer.untakeable - before[0]
        info[source]["peer_no_answer"] = peer.empty - before[1]
    note = (f"Pinyin2Hanzi's DAG, path_num {PEER_PATHS}, no context, handed pypinyin's "
            "syllables (spelled by its simplify_pinyin: -ue as -ve); pieces it cannot take (a "
            "syllable outside its table) / answers nothing for, counted wrong: " + ", ".join(
                f"{s} {info[s]['peer_untakeable']} / {info[s]['peer_no_answer']}"
                for s in by_source))
    return rows, note


def run_latency(args: argparse.Namespace, scorers: list[tuple[Scorer, bool]],
                by_source: dict[str, list[Piece]]) -> list[dict]:
    """p50/p99 per input length over the test sources' pieces (outside only when alone)."""
    timed = [p for s, ps in by_source.items() if s != OUTSIDE_NAME for p in ps] or \
        [p for ps in by_source.values() for p in ps]
    random.Random(args.seed).shuffle(timed)
    rows = []
    for scorer, product in scorers:
        if not (product or args.latency_all) or not timed:
            continue
        ways = [("", latency)] + ([(", context read beforehand", latency_context_read),
                                   (", typed key by key", latency_typed)] if product else [])
        for label, timer in ways:
            row = {"ranker": scorer.name + label, "product": product, "afresh": not label}
            for n in LENGTHS:
                timing = timer(scorer, latency_inputs(timed, n, args.latency_runs), args.beam)
                row.update({f"{key}_{n}": value for key, value in timing.items()})
            rows.append(row)
    return rows


def print_result(result: dict) -> None:
    print_table(result["rankers"], [
        ("source", "source", "s"), ("ranker", "ranker", "s"), ("context", "context", "s"),
        ("sentence_top1", "top-1", ".1%"), ("sentence_top5", "top-5", ".1%"),
        ("char_accuracy", "chars", ".1%"), ("in_vocab_sentence_top1", "top-1 inv", ".1%"),
        ("oov_sentence_top1", "top-1 oov", ".1%")])
    for source, info in result["sources"].items():
        print(f"{source}: {info['pieces']} pieces, {info['oov_share']:.1%} OOV")
    for source, modes in result["ratio_to_peer"].items():
        print(f"product top-1 / peer top-1, {source}: " + ", ".join(
            f"{mode} {v:.2f}x" if v is not None else f"{mode} -" for mode, v in modes.items()))
    if result["peer_note"]:
        print(f"peer: {result['peer_note']}")
    if result["latency"]:
        print_table(result["latency"], [("ranker", "ranker", "s")] + [
            (f"p{q}_ms_{n}", f"p{q}@{n} ms", ".1f") for n in LENGTHS for q in (50, 99)])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    data = DataDir(resolve_data(args))
    sources, test = recover_test(args, data)
    by_source, info = all_pieces(args, sources, test, data.vocab)
    started = time.perf_counter()
    open_lexicon(data.vocab)
    lexicon_seconds = time.perf_counter() - started
    scorers = load_rankers(args, data)
    rows = run_rankers(scorers, by_source, args.beam)
    peer_rows, peer_note = run_peer(by_source, info)
    rows += peer_rows
    result = {"data": str(data.path), "model": args.model, "beam": args.beam, "k": K,
              "seed": args.seed, "pieces_per_source": args.pieces, "quick": args.quick,
              "sources": info, "peer_note": peer_note, "rankers": rows,
              "ratio_to_peer": ratios(rows, sources),
              "latency": run_latency(args, scorers, by_source),
              "latency_runs": args.latency_runs, "lexicon_seconds": lexicon_seconds,
              "vocab_size": len(data.vocab), "machine": machine()}
    print_result(result)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "pinyin.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    (OUT / "pinyin.md").write_text(markdown(result), encoding="utf-8")
    print(f"wrote {OUT / 'pinyin.json'} and {OUT / 'pinyin.md'}")


if __name__ == "__main__":
    try:
        main()
    except RnnImeError as exc:  # a user's mistake: one line, as the CLI does
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
