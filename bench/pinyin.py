"""Pinyin → characters on the test split: three rankers of the same lattice, side by side.

Test passages are cut at 。！？，, into pieces of 4–12 Chinese characters (pieces with <unk> or
anything else are skipped), each turned into tone-less pinyin with pypinyin (no apostrophes) and
decoded given the words of its passage before it. Rankers: unigram frequency (the vocabulary's
counts, no context), the Kneser-Ney n-gram baseline trained on the training split, and the
recurrent model (with --model). Reported: sentence accuracy of the top candidate, whether the
right sentence is in the top 5, character accuracy of the top candidate (position by position
over the right sentence's characters), and decode latency p50/p99 (one CPU thread) for inputs of
10, 20 and 40 letters cut from the same pinyin.

    .venv/bin/python bench/pinyin.py --model models/default --pieces 300
    .venv/bin/python bench/pinyin.py --data data/default --pieces 100     # no recurrent model
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, machine, print_table  # noqa: E402

from rnn_ime.data import DataDir  # noqa: E402
from rnn_ime.errors import RnnImeError  # noqa: E402
from rnn_ime.ngram import NgramScorer  # noqa: E402
from rnn_ime.pinyin import _HAN, DEFAULT_BEAM, decode, lexicon_for  # noqa: E402
from rnn_ime.scoring import Scorer  # noqa: E402
from rnn_ime.vocab import BOS_ID, SPECIALS, UNK_ID, Vocab  # noqa: E402

CUTS = frozenset("。！？，,!?")
LENGTHS = (10, 20, 40)


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


def to_pinyin(text: str) -> str:
    from pypinyin import Style, lazy_pinyin

    return "".join(lazy_pinyin(text, style=Style.NORMAL)).replace("ü", "v")


def pieces(data: DataDir, vocab: Vocab, count: int, seed: int) -> tuple[list[dict], float]:
    """Up to `count` pieces (text, pinyin, context ids) of the test passages, seeded order; and
    the share of the test's clauses left out for holding a word outside the vocabulary (the
    lexicon of this decoder cannot type them: their share is reported, not hidden)."""
    split = data.split("test")
    tokens = np.asarray(split.tokens)
    found, unknown, clauses = [], 0, 0
    for start, end in zip(split.starts.tolist(), split.ends.tolist(), strict=True):
        ids = tokens[start:end].tolist()
        if ids and ids[0] == BOS_ID:
            ids = ids[1:]
        begin = 0
        for position in range(len(ids) + 1):
            if position < len(ids) and vocab.word(ids[position]) not in CUTS:
                continue
            words = ids[begin:position]
            text = "".join(vocab.word(i) for i in words)
            clauses += bool(words)
            if words and UNK_ID in words:
                unknown += 1
            elif words and 4 <= len(text) <= 12 and _HAN.fullmatch(text):
                found.append({"text": text, "pinyin": to_pinyin(text),
                              "context": ids[:begin]})
            begin = position + 1
    random.Random(seed).shuffle(found)
    return found[:count], unknown / max(clauses, 1)


def accuracy(scorer, items: list[dict], beam: int) -> dict:
    right = top5 = chars = total_chars = 0
    for item in items:
        found = decode(scorer, item["pinyin"], item["context"], k=5, beam=beam)
        texts = [c.text for c in found.phrases]
        best = texts[0] if texts else ""
        right += best == item["text"]
        top5 += item["text"] in texts
        chars += sum(a == b for a, b in zip(best, item["text"], strict=False))
        total_chars += len(item["text"])
    n = max(1, len(items))
    return {"sentence_top1": right / n, "sentence_top5": top5 / n,
            "char_accuracy": chars / max(1, total_chars)}


def latency_inputs(items: list[dict], length: int, runs: int) -> list[tuple[str, list[int]]]:
    """Pinyin of `length` letters: consecutive pieces joined and cut (the last syllable may be
    partial), with the context of the first."""
    out = []
    for index in range(len(items)):
        letters, j = "", index
        while len(letters) < length:
            letters += items[j % len(items)]["pinyin"]
            j += 1
        out.append((letters[:length], items[index]["context"]))
        if len(out) == runs:
            break
    return out


def latency(scorer, inputs: list[tuple[str, list[int]]], beam: int) -> dict:
    times, steps = [], []
    for letters, context in inputs:
        started = time.perf_counter()
        found = decode(scorer, letters, context, k=5, beam=beam)
        times.append((time.perf_counter() - started) * 1000)
        steps.append(found.steps)
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
            "mean_steps": float(np.mean(steps))}


def markdown(result: dict) -> str:
    lines = [f"Pinyin → characters on {result['pieces']} pieces of the test split of "
             f"`{result['data']}` (4–12 characters, {result['mean_chars']:.1f} on average; "
             f"beam {result['beam']}, one CPU thread). Left out: the "
             f"{result['clauses_left_out_unknown']:.1%} of the test's clauses that hold a word "
             "outside the vocabulary, which this decoder's lexicon cannot type at all.", "",
             "| ranker | sentence top-1 | top-5 | characters right | "
             + " | ".join(f"p50 / p99 at {n} letters" for n in LENGTHS) + " |",
             "|---|---|---|---|" + "---|" * len(LENGTHS)]
    for row in result["rankers"]:
        lines.append(f"| {row['ranker']} | {row['sentence_top1']:.1%} | {row['sentence_top5']:.1%}"
                     f" | {row['char_accuracy']:.1%} | "
                     + " | ".join(f"{row[f'p50_ms_{n}']:.1f} / {row[f'p99_ms_{n}']:.1f} ms"
                                  for n in LENGTHS) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a model dir: adds the recurrent model (and its data)")
    parser.add_argument("--data", help="a data dir (default: the model's, else data/default)")
    parser.add_argument("--pieces", type=int, default=300, help="test pieces to decode")
    parser.add_argument("--order", type=int, default=4, help="order of the n-gram baseline")
    parser.add_argument("--beam", type=int, default=DEFAULT_BEAM)
    parser.add_argument("--latency-runs", type=int, default=100, help="inputs per length")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    scorers = []
    data_path = args.data
    if args.model:
        from rnn_ime.modeldir import load_config
        from rnn_ime.predict import Predictor

        predictor = Predictor.from_dir(args.model, mixture=False)
        data_path = data_path or load_config(Path(args.model)).get("train", {}).get("data")
    data = DataDir(data_path or "data/default")
    vocab = data.vocab
    if args.model and predictor.vocab.sha256 != vocab.sha256:
        raise RnnImeError(f"{data_path}: its vocabulary is not the model's")
    started = time.perf_counter()
    lexicon_for(vocab)
    lexicon_seconds = time.perf_counter() - started
    scorers.append(UnigramScorer(vocab))
    kn = NgramScorer.train(data.split("train"), vocab, order=args.order)
    kn.name = f"KN {args.order}-gram"
    scorers.append(kn)
    if args.model:
        from rnn_ime.mixture import MixtureScorer, load_scorer

        alone = predictor.scorer
        alone.name = f"rnn ({Path(args.model).name})"
        scorers.append(alone)
        chosen = load_scorer(args.model, alone)  # the product's scorer when `mix` chose one
        if isinstance(chosen, MixtureScorer):
            chosen.name = "rnn + KN mixture (rnn-ime mix)"
            scorers.append(chosen)

    items, unknown_share = pieces(data, vocab, args.pieces, args.seed)
    rows = []
    for scorer in scorers:
        row = {"ranker": scorer.name, **accuracy(scorer, items, args.beam)}
        for n in LENGTHS:
            timing = latency(scorer, latency_inputs(items, n, args.latency_runs), args.beam)
            row.update({f"{key}_{n}": value for key, value in timing.items()})
        rows.append(row)
        print(f"{scorer.name}: done", file=sys.stderr, flush=True)
    result = {"data": str(data_path), "model": args.model, "pieces": len(items),
              "clauses_left_out_unknown": unknown_share,
              "mean_chars": float(np.mean([len(i["text"]) for i in items])) if items else 0.0,
              "beam": args.beam, "lexicon_seconds": lexicon_seconds,
              "vocab_size": len(vocab), "rankers": rows, "machine": machine()}
    print_table(rows, [("ranker", "ranker", "s"), ("sentence_top1", "top-1", ".1%"),
                       ("sentence_top5", "top-5", ".1%"), ("char_accuracy", "chars", ".1%")]
                + [(f"p{q}_ms_{n}", f"p{q}@{n} ms", ".1f") for n in LENGTHS for q in (50, 99)])
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "pinyin.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    (OUT / "pinyin.md").write_text(markdown(result), encoding="utf-8")
    print(f"wrote {OUT / 'pinyin.json'} and {OUT / 'pinyin.md'}")


if __name__ == "__main__":
    main()
