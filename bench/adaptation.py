"""Learning from its user: a user types a text from a domain the model never saw, passage by
passage, committing each; how well does the model then predict the rest of that text?

A model trained on the reviews alone (`prepare --corpus embedded:reviews`, then `train`) meets
People's Daily news. The news documents of one split (test by default; `--split valid` to
choose settings) are joined into a user's text of 2 × `--words` words: the first half is
typed, the second half is measured after 0, 250, 500 … words typed (learning paused while it
is measured), and once more with learning going on through it (each passage learned once it
is measured, as the product does while the user types), beside the same model that learns
nothing, in one run. Each long document of the source (`--min-words`, `--documents`) is also
taken as a text of its own, with a new profile each. Measured:

- next-word top-1 and KSR@5 over its words as strings: the words a suggestion list shows, the
  user's own words outside the vocabulary included (a word the model does not know is a miss
  unless learning made it a suggestion); a word typed in full costs its pinyin letters and a
  commit key, a picked suggestion one key;
- pinyin sentence top-1 on its pieces of 4–12 characters, with the passage's earlier text as
  context;
- what the typed half could teach: the share of the measured words and word pairs it holds.

`--fit` ranks the user model's weight, prior, half-life and β on the valid split, with learning
on.

    .venv/bin/python bench/adaptation.py --model models/reviews-only
    .venv/bin/python bench/adaptation.py --model models/reviews-only --split valid --fit
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import time
from dataclasses import asdict, dataclass, fields
from functools import cache
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, machine, print_table  # noqa: E402
from pinyin import oov_words, passage_pieces, syllables_of  # noqa: E402

from rnn_ime.ime import DecoderSettings, decode, open_lexicon  # noqa: E402
from rnn_ime.keystrokes import COMMIT_KEYS, SELECT_KEYS, typing_keystrokes  # noqa: E402
from rnn_ime.predict import Predictor  # noqa: E402
from rnn_ime.prepare import DEFAULT_CORPUS, PrepareConfig, split_corpus  # noqa: E402
from rnn_ime.user import LearnOptions, Profile, UserModel, UserScorer, UserWeights  # noqa: E402
from rnn_ime.user.model import HALF_LIFE  # noqa: E402
from rnn_ime.vocab import BOS_ID  # noqa: E402

DOCS = Path(__file__).resolve().parent.parent / "docs"
CHECKPOINTS = (0, 250, 500, 1000, 2000, 3000)


def user_text(args: argparse.Namespace, tokenizer) -> tuple[list[str], list[str]]:
    """(typed passages, measured passages): with `--text`, the file's lines cut at the middle
    passage; else consecutive documents of the source in the split (from a seeded start;
    People's Daily's are in date order, as one person's writing is on a few subjects at a
    time), cut into a first half of `words` words and a second half of as many."""
    if args.text:
        return own_text(Path(args.text), tokenizer)
    corpus = split_corpus(PrepareConfig(corpus=args.corpus, seed=0, progress=False),
                          lambda *_: None)
    documents = [d for d in corpus.split(args.split) if d.source == args.source]
    if not documents:
        raise SystemExit(f"no {args.source!r} documents in the {args.split} split")
    start = random.Random(args.seed).randrange(len(documents))
    documents = documents[start:] + documents[:start]
    typed, measured, count = [], [], 0
    for passage in itertools.chain.from_iterable(d.passages for d in documents):
        words = len(tokenizer.tokenize(passage))
        (typed if count < args.words else measured).append(passage)
        count += words
        if count >= 2 * args.words:
            break
    return typed, measured


def own_text(path: Path, tokenizer) -> tuple[list[str], list[str]]:
    """A text file of one writer (a passage per line), cut at the passage that reaches half of
    its words: (typed passages, measured passages)."""
    passages = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip()]
    lengths = [len([w for w in tokenizer.tokenize(p) if w.strip()]) for p in passages]
    half, count, cut = sum(lengths) / 2, 0, 0
    while count < half:
        count += lengths[cut]
        cut += 1
    return passages[:cut], passages[cut:]


@dataclass
class Text:
    """The measured half of a user's text: its passages, their words, and the pinyin pieces
    measured in each (text, letters, context ids)."""
    passages: list[str]
    words: list[list[str]]
    pieces: list[list[tuple[str, str, list[int]]]]

    @property
    def word_count(self) -> int:
        return sum(map(len, self.words))

    @property
    def piece_count(self) -> int:
        return sum(map(len, self.pieces))


def measured_text(passages: list[str], predictor: Predictor, count: int, seed: int) -> Text:
    """The passages with up to `count` of their pinyin pieces (4–12 characters, seeded)."""
    words = [[w for w in predictor.tokenizer.tokenize(p) if w.strip()] for p in passages]
    found = []
    for index, passage in enumerate(passages):
        pieces, _ = passage_pieces(passage)
        for offset, text in pieces:
            syllables = syllables_of(text)
            if syllables:
                found.append((index, (text, "".join(syllables),
                                      predictor.encode(passage[:offset])[1])))
    random.Random(seed).shuffle(found)
    chosen: list[list[tuple[str, str, list[int]]]] = [[] for _ in passages]
    for index, item in found[:count]:
        chosen[index].append(item)
    return Text(passages, words, chosen)


def pairs_of(words: list[str]) -> list[tuple[str, str]]:
    return list(zip(["<s>", *words[:-1]], words, strict=True))


def overlap(typed: list[str], text: Text, predictor: Predictor) -> dict:
    """How much of the measured half the typed half could teach: the share of its words seen
    in the typed half, of its (previous word, word) pairs seen there, and of its words outside
    the model's vocabulary (all, and seen)."""
    typed_words = [[w for w in predictor.tokenizer.tokenize(p) if w.strip()] for p in typed]
    words = {w for passage in typed_words for w in passage}
    pairs = {pair for passage in typed_words for pair in pairs_of(passage)}
    total = max(1, text.word_count)
    measured = [pair for passage in text.words for pair in pairs_of(passage)]
    outside = oov_words((w for _, w in measured), predictor.vocab)
    return {"words_seen": sum(w in words for _, w in measured) / total,
            "pairs_seen": sum(pair in pairs for pair in measured) / total,
            "outside_vocabulary": len(outside) / total,
            "outside_vocabulary_seen": sum(w in words for w in outside) / total}


@cache
def full_cost(word: str) -> int:
    return typing_keystrokes(word) + COMMIT_KEYS


@dataclass
class Tally:
    """Running sums over measured passages (several texts add into one)."""
    top1: int = 0
    words: int = 0
    keys: float = 0.0
    typed: float = 0.0
    pinyin_right: int = 0
    pieces: int = 0

    def add_words(self, scorer, words: list[str]) -> None:
        """Top-1 and KSR@5 of the suggestions (strings) before each word of one passage: a
        word typed in full costs its pinyin and a commit key, a picked suggestion one key."""
        state, log_probs = scorer.step(scorer.start(), BOS_ID)
        for word in words:
            shown = [w for w, _ in scorer.suggest(state, log_probs, 5)]
            cost = full_cost(word)
            self.top1 += shown[:1] == [word]
            self.keys += cost
            self.typed += SELECT_KEYS if word in shown else cost
            self.words += 1
            state, log_probs = scorer.step_words([state], [word])[0]

    def add_pinyin(self, scorer, lexicon, items) -> None:
        for text, letters, context in items:
            found = decode(scorer, letters, context, DecoderSettings(k=1), lexicon)
            self.pinyin_right += bool(found.phrases) and found.phrases[0].text == text
            self.pieces += 1

    def figures(self) -> dict:
        return {"top1": self.top1 / max(1, self.words),
                "ksr5": 1 - self.typed / self.keys if self.keys else 0.0,
                "pinyin_top1": self.pinyin_right / max(1, self.pieces)}


def measure(scorer, lexicon, text: Text, profile: Profile | None = None,
            tally: Tally | None = None) -> Tally:
    """Type the measured half passage by passage; with a profile, each passage is learned once
    it is measured (learning goes on while the user types it), else nothing is learned."""
    tally = tally or Tally()
    for passage, words, items in zip(text.passages, text.words, text.pieces, strict=True):
        tally.add_words(scorer, words)
        tally.add_pinyin(scorer, profile.lexicon(lexicon) if profile else lexicon, items)
        if profile is not None:
            learn(profile, passage, lexicon)
    return tally


def new_profile(predictor, settings: dict) -> Profile:
    """A profile in memory with the settings' weights; `adapt` (default on): its own copy of
    the model learns too, as the product's."""
    profile = Profile(predictor.scorer, UserModel(None, half_life=settings["half_life"]),
                      LearnOptions(adapt=settings.get("adapt", True)))
    base = profile.adaptation.scorer if profile.adaptation is not None else predictor.scorer
    profile.scorer = UserScorer(base, profile.model, UserWeights(
        **{f.name: settings[f.name] for f in fields(UserWeights)}))
    return profile


def learn(profile: Profile, passage: str, lexicon):
    """Learn a passage as committed, then pause as a typist does between passages (the
    model's adaptation takes its step on the passage before; the newest waits for the next
    commit, as Backspace could still take it back)."""
    lesson = profile.learn(passage, known=lexicon)
    if profile.adaptation is not None:
        profile.adaptation.settle()
    return lesson


def learn_until(profile: Profile, typed: list[str], index: int, typed_words: int, target: int,
                lexicon) -> tuple[int, int]:
    """Learn the typed passages from `index` until `target` words are typed."""
    while index < len(typed) and typed_words < target:
        lesson = learn(profile, typed[index], lexicon)
        typed_words += len(lesson.words) if lesson else 0
        index += 1
    return index, typed_words


def run_curve(predictor, base_lexicon, typed, text: Text, settings: dict, checkpoints
              ) -> tuple[list[dict], dict]:
    """Learn the typed passages in order; measure the second half at each checkpoint (words
    typed) with learning paused, and after the last one also with learning going on through
    the second half (as the user goes on typing it)."""
    profile = new_profile(predictor, settings)
    rows, typed_words, index = [], 0, 0
    for checkpoint in checkpoints:
        index, typed_words = learn_until(profile, typed, index, typed_words, checkpoint,
                                         base_lexicon)
        if rows and rows[-1]["words_typed"] == typed_words:  # one passage past two checkpoints
            continue
        started = time.perf_counter()
        row = {"words_typed": typed_words, "made_words": len(profile.model.counts.made),
               **measure(profile.scorer, profile.lexicon(base_lexicon), text).figures()}
        row["seconds"] = round(time.perf_counter() - started, 1)
        rows.append(row)
        print(f"  {typed_words:>6} words typed: top-1 {row['top1']:.1%}  KSR@5 "
              f"{row['ksr5']:.1%}  pinyin {row['pinyin_top1']:.1%}", file=sys.stderr,
              flush=True)
    going = measure(profile.scorer, base_lexicon, text, profile).figures()
    print(f"  learning on through the second half: top-1 {going['top1']:.1%}  KSR@5 "
          f"{going['ksr5']:.1%}  pinyin {going['pinyin_top1']:.1%}", file=sys.stderr,
          flush=True)
    return rows, going


def counts_only(predictor, lexicon, typed, text: Text, settings: dict) -> dict:
    """The same typing with a profile whose model does not adapt (--no-adapt): the user's
    counts alone, after the first half (paused) and with learning on."""
    profile = new_profile(predictor, {**settings, "adapt": False})
    learn_until(profile, typed, 0, 0, 10 ** 9, lexicon)
    paused = measure(profile.scorer, profile.lexicon(lexicon), text).figures()
    going = measure(profile.scorer, lexicon, text, profile).figures()
    print(f"  counts only: paused top-1 {paused['top1']:.1%}, learning on top-1 "
          f"{going['top1']:.1%}  KSR@5 {going['ksr5']:.1%}  pinyin {going['pinyin_top1']:.1%}",
          file=sys.stderr, flush=True)
    return {"first_half_learned": paused, "learning_on": going}


def long_documents(args: argparse.Namespace, predictor: Predictor) -> list[tuple[list[str], Text]]:
    """Each document of the source with at least 2 × `--min-words` words and more than one
    passage is one text, cut at its middle passage; up to `--documents` of them (seeded
    order)."""
    corpus = split_corpus(PrepareConfig(corpus=args.corpus, seed=0, progress=False),
                          lambda *_: None)
    documents = [d for d in corpus.split(args.split) if d.source == args.source]
    random.Random(args.seed).shuffle(documents)
    texts = []
    for document in documents:
        lengths = [len([w for w in predictor.tokenizer.tokenize(p) if w.strip()])
                   for p in document.passages]
        if sum(lengths) < 2 * args.min_words:
            continue
        half, count, cut = sum(lengths) / 2, 0, 0
        while count < half:
            count += lengths[cut]
            cut += 1
        if cut == len(lengths):  # one long passage: no second half to measure
            continue
        texts.append((document.passages[:cut],
                      measured_text(document.passages[cut:], predictor, args.pieces,
                                    args.seed)))
        if len(texts) == args.documents:
            break
    return texts


def run_documents(args, predictor, lexicon, settings: dict) -> dict | None:
    """Each long document a text of its own, with a new profile: its first half typed, its
    second half measured without learning, after learning the first half, and with learning
    going on; the figures pool every document's second half."""
    texts = long_documents(args, predictor)
    if not texts:
        print(f"no {args.source} document of {2 * args.min_words} words or more: no "
              "one-document texts", file=sys.stderr)
        return None
    without, learned, going = Tally(), Tally(), Tally()
    for typed, text in texts:
        measure(predictor.scorer, lexicon, text, tally=without)
        profile = new_profile(predictor, settings)
        learn_until(profile, typed, 0, 0, 10 ** 9, lexicon)
        measure(profile.scorer, profile.lexicon(lexicon), text, tally=learned)
        measure(profile.scorer, lexicon, text, profile, tally=going)
    return {"documents": len(texts), "measured_words": without.words,
            "pinyin_pieces": without.pieces, "without_learning": without.figures(),
            "first_half_learned": learned.figures(), "learning_on": going.figures()}


def fit(args, predictor, lexicon, typed, text: Text) -> list[dict]:
    """Every unigram weight × prior × bigram weight × spread × trigram weight × its spread ×
    half-life, after the whole first half and with learning going on through the second (what
    the product does): the sum of the three figures ranks them."""
    rows = []
    for unigram, prior, bigram, spread, trigram, trigram_spread, half_life in itertools.product(
            args.unigram_weights, args.priors, args.bigram_weights, args.spreads,
            args.trigram_weights, args.trigram_spreads, args.half_lives):
        settings = {"unigram": unigram, "prior": prior, "bigram": bigram, "spread": spread,
                    "trigram": trigram, "trigram_spread": trigram_spread,
                    "warmup": UserWeights().warmup, "half_life": half_life,
                    "adapt": not args.no_adapt}
        curve, going = run_curve(predictor, lexicon, typed, text, settings, (args.words,))
        rows.append({**settings, **going, "paused_top1": curve[-1]["top1"],
                     "paused_ksr5": curve[-1]["ksr5"],
                     "paused_pinyin_top1": curve[-1]["pinyin_top1"],
                     "score": going["top1"] + going["ksr5"] + going["pinyin_top1"]})
    rows.sort(key=lambda r: -r["score"])
    return rows


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = result["curve"]
    x = [r["words_typed"] for r in curve]
    base = result["without_learning"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for axis, key, title in zip(axes, ("top1", "ksr5", "pinyin_top1"),
                                ("next-word top-1", "KSR@5", "pinyin sentence top-1"),
                                strict=True):
        axis.plot(x, [r[key] for r in curve], marker="o", label="learning")
        axis.axhline(base[key], color="grey", linestyle="--", label="without learning")
        axis.plot([x[-1]], [result["learning_on"][key]], marker="*", markersize=12,
                  linestyle="none", label="learning on through the second half")
        axis.set_title(title)
        axis.set_xlabel("words typed (first half)")
        axis.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    axes[0].legend()
    fig.suptitle(f"{result['model']} on {result['source']} ({result['split']}): measured on "
                 "the second half")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def ratio_line(base: dict, other: dict) -> str:
    def times(key: str) -> str:
        return f"×{other[key] / base[key]:.2f}" if base[key] else "–"

    return (f"next-word top-1 {times('top1')}, KSR@5 {times('ksr5')}, pinyin "
            f"{(other['pinyin_top1'] - base['pinyin_top1']) * 100:+.1f} points")


def figures_row(label: str, figures: dict, extra: str = "") -> str:
    return (f"| {label} | {figures['top1']:.1%} | {figures['ksr5']:.1%} | "
            f"{figures['pinyin_top1']:.1%} |{extra}")


def markdown(result: dict) -> str:
    base = result["without_learning"]
    what = (f"the first {result['words']:,} words of `{result['text']}`" if result.get("text")
            else f"{result['words']:,} words of {result['source']} from the {result['split']} "
            "split")
    lines = [f"`{result['model']}` (never saw {result['source']}) typing {what}, measured on "
             f"the next {result['measured_words']:,} words "
             f"({result['pinyin_pieces']} pinyin pieces, with context). User model: unigram "
             f"{result['unigram']:g} (prior {result['prior']:g} words), bigram "
             f"{result['bigram']:g} (spread {result['spread']:g}), trigram "
             f"{result['trigram']:g} (spread {result['trigram_spread']:g}), pairs and triples "
             f"at half weight after {result['warmup']:g} words typed, half-life "
             f"{result['half_life']:g} words.", "",
             "| words typed | next-word top-1 | KSR@5 | pinyin sentence top-1 | new words |",
             "|---|---|---|---|---|",
             figures_row("without learning", base, " – |")]
    for r in result["curve"]:
        lines.append(figures_row(f"{r['words_typed']:,}, then paused", r,
                                 f" {r['made_words']} |"))
    going = result["learning_on"]
    lines.append(figures_row(f"{result['words']:,}, learning on through the second half",
                             going, " – |"))
    counts = result.get("counts_only")
    if counts:
        lines.append(figures_row(f"{result['words']:,}, then paused, counts only (no model "
                                 "adaptation)", counts["first_half_learned"], " – |"))
        lines.append(figures_row(f"{result['words']:,}, learning on, counts only",
                                 counts["learning_on"], " – |"))
    last = result["curve"][-1]
    seen = result["overlap"]
    lines += ["", f"After the first half, learning paused: {ratio_line(base, last)}; learning "
              f"on as the user goes on typing: {ratio_line(base, going)}."
              + (f" The counts alone, learning on: {ratio_line(base, counts['learning_on'])}."
                 if counts else "") + (" The profile's copy of the model adapts too."
                                       if result.get("adapt", True) else
                                       " The model does not adapt (--no-adapt)."), "",
              f"What the typed half could teach: {seen['words_seen']:.1%} of the measured "
              f"words occur in it, {seen['pairs_seen']:.1%} of the (previous word, word) "
              f"pairs; {seen['outside_vocabulary']:.1%} of the measured words are outside the "
              f"model's vocabulary, {seen['outside_vocabulary_seen']:.1%} of them (as a share "
              "of all measured words) typed in the first half."]
    documents = result.get("documents")
    if documents:
        lines += ["", f"One document as the text ({documents['documents']} documents of "
                  f"{2 * result['min_words']:,} words or more, each with a new profile; "
                  f"{documents['measured_words']:,} words and {documents['pinyin_pieces']} "
                  "pinyin pieces measured in their second halves):", "",
                  "| | next-word top-1 | KSR@5 | pinyin sentence top-1 |", "|---|---|---|---|",
                  figures_row("without learning", documents["without_learning"]),
                  figures_row("first half learned, then paused",
                              documents["first_half_learned"]),
                  figures_row("learning on through the second half", documents["learning_on"]),
                  "", "Learning on: " + ratio_line(documents["without_learning"],
                                                   documents["learning_on"]) + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/reviews-only",
                        help="a model dir trained without --source")
    parser.add_argument("--corpus", nargs="+", default=list(DEFAULT_CORPUS))
    parser.add_argument("--source", default="news", help="the new domain (a corpus source)")
    parser.add_argument("--split", choices=("valid", "test"), default="test")
    parser.add_argument("--text", help="a text file of one writer, a passage per line (instead "
                        "of --source): its first half typed, its second half measured")
    parser.add_argument("--words", type=int, default=3000, help="words typed (the first half)")
    parser.add_argument("--pieces", type=int, default=150, help="pinyin pieces measured")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fit", action="store_true", help="choose weight, prior, half-life")
    parser.add_argument("--no-adapt", action="store_true",
                        help="the user's counts only: the profile's copy of the model does not "
                             "learn (the product adapts it)")
    defaults = UserWeights()
    parser.add_argument("--unigram-weights", type=float, nargs="+",
                        default=[0.05, defaults.unigram, 0.2])
    parser.add_argument("--priors", type=float, nargs="+", default=[defaults.prior])
    parser.add_argument("--bigram-weights", type=float, nargs="+",
                        default=[0.4, defaults.bigram, 0.8])
    parser.add_argument("--spreads", type=float, nargs="+", default=[1.0, defaults.spread])
    parser.add_argument("--trigram-weights", type=float, nargs="+",
                        default=[0.0, defaults.trigram])
    parser.add_argument("--trigram-spreads", type=float, nargs="+",
                        default=[defaults.trigram_spread])
    parser.add_argument("--half-lives", type=float, nargs="+", default=[HALF_LIFE])
    parser.add_argument("--documents", type=int, default=40,
                        help="also: up to this many long documents, each a text (0: none)")
    parser.add_argument("--min-words", type=int, default=300,
                        help="a document text has at least twice this many words")
    args = parser.parse_args(argv)
    if args.text:  # bench/texts/valid/NAME.txt: the text NAME of the valid split
        args.source, args.split, args.documents = Path(args.text).stem, \
            Path(args.text).parent.name, 0
    if args.fit and args.split != "valid":
        parser.error("--fit chooses settings: run it on --split valid (or a text of "
                     "bench/texts/valid), never on test")
    torch.set_num_threads(1)

    predictor = Predictor.from_dir(args.model)
    lexicon = open_lexicon(predictor.vocab)
    typed, measured = user_text(args, predictor.tokenizer)
    if args.text:
        args.words = sum(len([w for w in predictor.tokenizer.tokenize(p) if w.strip()])
                         for p in typed)
    text = measured_text(measured, predictor, args.pieces, args.seed)
    name = f"adaptation-{args.source}" if args.text else "adaptation"
    OUT.mkdir(parents=True, exist_ok=True)
    if args.fit:
        rows = fit(args, predictor, lexicon, typed, text)
        print_table(rows, [("unigram", "unigram", "g"), ("prior", "prior", "g"),
                           ("bigram", "bigram", "g"), ("spread", "spread", "g"),
                           ("trigram", "trigram", "g"), ("trigram_spread", "spread", "g"),
                           ("half_life", "half-life", "g"),
                           ("top1", "top-1", ".1%"), ("ksr5", "KSR@5", ".1%"),
                           ("pinyin_top1", "pinyin", ".1%"),
                           ("paused_top1", "paused: top-1", ".1%"),
                           ("paused_ksr5", "KSR@5", ".1%"),
                           ("paused_pinyin_top1", "pinyin", ".1%")])
        (OUT / f"{name}_fit.json").write_text(json.dumps(
            {"split": args.split, "rows": rows, "machine": machine()}, indent=2) + "\n")
        return
    settings = {**asdict(UserWeights()), "half_life": HALF_LIFE, "adapt": not args.no_adapt}
    base = measure(predictor.scorer, lexicon, text).figures()
    curve, going = run_curve(predictor, lexicon, typed, text, settings,
                             sorted({*(c for c in CHECKPOINTS if c <= args.words), args.words}))
    result = {"model": args.model, "source": args.source, "split": args.split,
              "text": args.text,
              "words": curve[-1]["words_typed"], "measured_words": text.word_count,
              "pinyin_pieces": text.piece_count, **settings, "min_words": args.min_words,
              "overlap": overlap(typed, text, predictor),
              "without_learning": base, "curve": curve, "learning_on": going,
              "counts_only": counts_only(predictor, lexicon, typed, text, settings)
              if settings["adapt"] else None,
              "documents": run_documents(args, predictor, lexicon, settings)
              if args.documents else None, "machine": machine()}
    print_table([{"words_typed": "none", **base},
                 *({**r, "words_typed": f"{r['words_typed']:,}"} for r in curve),
                 {"words_typed": "learning on", **going}],
                [("words_typed", "typed", "s"), ("top1", "top-1", ".1%"),
                 ("ksr5", "KSR@5", ".1%"), ("pinyin_top1", "pinyin", ".1%")])
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False)
                                      + "\n", encoding="utf-8")
    (OUT / f"{name}.md").write_text(markdown(result), encoding="utf-8")
    if args.split == "test":  # the figures docs/adaptation.md shows
        plot(result, DOCS / f"{name}.png")
    print(markdown(result))


if __name__ == "__main__":
    main()
