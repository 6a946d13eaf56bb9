"""Learning from its user: a user types a text from a domain the model never saw, passage by
passage, committing each; how well does the model then predict the rest of that text?

A model trained on the reviews alone (`prepare --corpus embedded:reviews`, then `train`) meets
People's Daily news. The news documents of one split (test by default; `--split valid` to
choose settings) are joined into a user's text of 2 × `--words` words: the first half is
typed, the second half is measured after 0, 250, 500 … words typed, beside the same model that
learns nothing, in one run:

- next-word top-1 and KSR@5 over its words as strings: the words a suggestion list shows, the
  user's own words outside the vocabulary included (a word the model does not know is a miss
  unless learning made it a suggestion); a word typed in full costs its pinyin letters and a
  commit key, a picked suggestion one key;
- pinyin sentence top-1 on its pieces of 4–12 characters, with the passage's earlier text as
  context.

`--fit` chooses the user model's weight, prior and half-life on the valid split.

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
from functools import cache
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, machine, print_table  # noqa: E402
from pinyin import passage_pieces, syllables_of  # noqa: E402

from rnn_ime.ime import DecoderSettings, decode, open_lexicon  # noqa: E402
from rnn_ime.keystrokes import COMMIT_KEYS, SELECT_KEYS, typing_keystrokes  # noqa: E402
from rnn_ime.predict import Predictor  # noqa: E402
from rnn_ime.prepare import DEFAULT_CORPUS, PrepareConfig, split_corpus  # noqa: E402
from rnn_ime.user import Profile, UserModel, UserScorer  # noqa: E402
from rnn_ime.user.model import BIGRAM_PRIOR, HALF_LIFE  # noqa: E402
from rnn_ime.user.scorer import PRIOR, WEIGHT  # noqa: E402
from rnn_ime.vocab import BOS_ID  # noqa: E402

DOCS = Path(__file__).resolve().parent.parent / "docs"
CHECKPOINTS = (0, 250, 500, 1000, 2000, 3000)


def user_text(args: argparse.Namespace, tokenizer) -> tuple[list[str], list[str]]:
    """(typed passages, measured passages): consecutive documents of the source in the split
    (from a seeded start; People's Daily's are in date order, as one person's writing is on
    a few subjects at a time), cut into a first half of `words` words and a second half of as
    many."""
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


def measured_words(passages: list[str], predictor: Predictor) -> list[list[str]]:
    return [[w for w in predictor.tokenizer.tokenize(p) if w.strip()] for p in passages]


@cache
def full_cost(word: str) -> int:
    return typing_keystrokes(word) + COMMIT_KEYS


def next_words(scorer, passages: list[list[str]]) -> dict:
    """Top-1 and KSR@5 of the suggestions (strings) before each word of each passage."""
    top1 = top5 = words = 0
    keys = typed = 0.0
    for passage in passages:
        state, log_probs = scorer.step(scorer.start(), BOS_ID)
        for word in passage:
            shown = [w for w, _ in scorer.suggest(state, log_probs, 5)]
            cost = full_cost(word)
            top1 += shown[:1] == [word]
            top5 += word in shown
            keys += cost
            typed += SELECT_KEYS if word in shown else cost
            words += 1
            state, log_probs = scorer.step_words([state], [word])[0]
    return {"top1": top1 / max(1, words), "top5": top5 / max(1, words),
            "ksr5": 1 - typed / keys if keys else 0.0, "words": words}


def pinyin_items(passages: list[str], predictor: Predictor, count: int, seed: int
                 ) -> list[tuple[str, str, list[int]]]:
    """(text, letters, context ids) of up to `count` pieces of the measured passages."""
    found = []
    for passage in passages:
        pieces, _ = passage_pieces(passage)
        for offset, text in pieces:
            syllables = syllables_of(text)
            if syllables:
                found.append((text, "".join(syllables), predictor.encode(passage[:offset])[1]))
    random.Random(seed).shuffle(found)
    return found[:count]


def pinyin_top1(scorer, lexicon, items) -> float:
    right = 0
    for text, letters, context in items:
        found = decode(scorer, letters, context, DecoderSettings(k=1), lexicon)
        right += bool(found.phrases) and found.phrases[0].text == text
    return right / max(1, len(items))


def measure(scorer, lexicon, passages: list[list[str]], items) -> dict:
    result = next_words(scorer, passages)
    return {"top1": result["top1"], "ksr5": result["ksr5"],
            "pinyin_top1": pinyin_top1(scorer, lexicon, items)}


def run_curve(predictor, base_lexicon, typed, split, items, weight, prior, half_life,
              checkpoints, bigram_prior: float = BIGRAM_PRIOR) -> list[dict]:
    """Learn the typed passages in order; measure at each checkpoint (words typed)."""
    profile = Profile(predictor.scorer, UserModel(None, half_life=half_life))
    profile.scorer = UserScorer(predictor.scorer, profile.model, weight, prior, bigram_prior)
    rows, typed_words, index = [], 0, 0
    for checkpoint in checkpoints:
        while index < len(typed) and typed_words < checkpoint:
            lesson = profile.learn(typed[index], known=base_lexicon)
            typed_words += len(lesson.words) if lesson else 0
            index += 1
        started = time.perf_counter()
        row = {"words_typed": typed_words, "made_words": len(profile.model.counts.made),
               **measure(profile.scorer, profile.lexicon(base_lexicon), split, items)}
        row["seconds"] = round(time.perf_counter() - started, 1)
        rows.append(row)
        print(f"  {typed_words:>6} words typed: top-1 {row['top1']:.1%}  KSR@5 "
              f"{row['ksr5']:.1%}  pinyin {row['pinyin_top1']:.1%}", file=sys.stderr,
              flush=True)
    return rows


def fit(args, predictor, lexicon, typed, split, items) -> list[dict]:
    """Every weight × prior × half-life, after the whole first half: the sum of the three
    figures ranks them."""
    rows = []
    for weight, prior, half_life, beta in itertools.product(
            args.weights, args.priors, args.half_lives, args.bigram_priors):
        final = run_curve(predictor, lexicon, typed, split, items, weight, prior, half_life,
                          (args.words,), beta)[-1]
        rows.append({"weight": weight, "prior": prior, "half_life": half_life,
                     "bigram_prior": beta, **final,
                     "score": final["top1"] + final["ksr5"] + final["pinyin_top1"]})
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
        axis.set_title(title)
        axis.set_xlabel("words typed (first half)")
        axis.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    axes[0].legend()
    fig.suptitle(f"{result['model']} on {result['source']} ({result['split']}): measured on "
                 "the second half")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def markdown(result: dict) -> str:
    base = result["without_learning"]
    lines = [f"`{result['model']}` (never saw {result['source']}) typing "
             f"{result['words']:,} words of {result['source']} from the {result['split']} "
             f"split, measured on the next {result['measured_words']:,} words "
             f"({result['pinyin_pieces']} pinyin pieces, with context). User model: weight "
             f"{result['weight']}, prior {result['prior']:g} words, half-life "
             f"{result['half_life']:g} words.", "",
             "| words typed | next-word top-1 | KSR@5 | pinyin sentence top-1 | new words |",
             "|---|---|---|---|---|",
             f"| without learning | {base['top1']:.1%} | {base['ksr5']:.1%} | "
             f"{base['pinyin_top1']:.1%} | – |"]
    for r in result["curve"]:
        lines.append(f"| {r['words_typed']:,} | {r['top1']:.1%} | {r['ksr5']:.1%} | "
                     f"{r['pinyin_top1']:.1%} | {r['made_words']} |")
    last = result["curve"][-1]
    lines += ["", f"After the first half: next-word top-1 ×{last['top1'] / base['top1']:.2f}, "
              f"KSR@5 ×{last['ksr5'] / base['ksr5']:.2f}, pinyin "
              f"{(last['pinyin_top1'] - base['pinyin_top1']) * 100:+.1f} points."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/reviews-only",
                        help="a model dir trained without --source")
    parser.add_argument("--corpus", nargs="+", default=list(DEFAULT_CORPUS))
    parser.add_argument("--source", default="news", help="the new domain (a corpus source)")
    parser.add_argument("--split", choices=("valid", "test"), default="test")
    parser.add_argument("--words", type=int, default=3000, help="words typed (the first half)")
    parser.add_argument("--pieces", type=int, default=150, help="pinyin pieces measured")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fit", action="store_true", help="choose weight, prior, half-life")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.5])
    parser.add_argument("--priors", type=float, nargs="+", default=[50.0, 200.0, 1000.0])
    parser.add_argument("--half-lives", type=float, nargs="+", default=[2000.0, 20000.0])
    parser.add_argument("--bigram-priors", type=float, nargs="+", default=[BIGRAM_PRIOR])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    predictor = Predictor.from_dir(args.model)
    lexicon = open_lexicon(predictor.vocab)
    typed, measured = user_text(args, predictor.tokenizer)
    split = measured_words(measured, predictor)
    items = pinyin_items(measured, predictor, args.pieces, args.seed)
    OUT.mkdir(parents=True, exist_ok=True)
    if args.fit:
        rows = fit(args, predictor, lexicon, typed, split, items)
        print_table(rows, [("weight", "weight", "g"), ("prior", "prior", "g"),
                           ("half_life", "half-life", "g"), ("bigram_prior", "β", "g"),
                           ("top1", "top-1", ".1%"),
                           ("ksr5", "KSR@5", ".1%"), ("pinyin_top1", "pinyin", ".1%")])
        (OUT / "adaptation_fit.json").write_text(json.dumps(
            {"split": args.split, "rows": rows, "machine": machine()}, indent=2) + "\n")
        return
    base = measure(predictor.scorer, lexicon, split, items)
    curve = run_curve(predictor, lexicon, typed, split, items, WEIGHT, PRIOR, HALF_LIFE,
                      sorted({*(c for c in CHECKPOINTS if c <= args.words), args.words}))
    result = {"model": args.model, "source": args.source, "split": args.split,
              "words": curve[-1]["words_typed"], "measured_words": sum(map(len, split)),
              "pinyin_pieces": len(items),
              "weight": WEIGHT, "prior": PRIOR, "half_life": HALF_LIFE,
              "without_learning": base, "curve": curve, "machine": machine()}
    print_table([{"words_typed": "none", **base},
                 *({**r, "words_typed": f"{r['words_typed']:,}"} for r in curve)],
                [("words_typed", "typed", "s"), ("top1", "top-1", ".1%"),
                 ("ksr5", "KSR@5", ".1%"), ("pinyin_top1", "pinyin", ".1%")])
    (OUT / "adaptation.json").write_text(json.dumps(result, indent=2, ensure_ascii=False)
                                         + "\n", encoding="utf-8")
    (OUT / "adaptation.md").write_text(markdown(result), encoding="utf-8")
    plot(result, DOCS / "adaptation.png")
    print(markdown(result))


if __name__ == "__main__":
    main()
