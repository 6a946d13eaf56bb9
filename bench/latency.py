"""Prediction latency: torch against ONNX Runtime (fp32, int8), side by side, one run.

One request = commit a word and ask for the top 5 after a 5-word prefix, 1 CPU thread:

    torch-reread     the stock model re-reads <s> + the whole prefix (Predictor.suggest)
    torch-step-stock one step through nn.LSTM/GRU/RNN's forward and model.log_probs
    torch-step       NeuralScorer.step: the cell functions, transposed projection weights
    onnx-fp32        OnnxScorer.step on the exported graph (`rnn-ime export`)
    onnx-int8        the same on the dynamic int8 graph (`rnn-ime export --int8`): int8
                     projection, fp32 cell, the top 32 words of each int8 layer that ranks
                     words re-scored with fp32 weights
    onnx-int8-rnn    the same with the recurrent cell in int8 too (`--int8 --quantize-rnn`)
    onnx-int8-plain  onnxruntime's quantize_dynamic as it comes: every MatMul and the LSTM in
                     int8, no re-scoring (`--int8 --rerank 0 --quantize-rnn`)

The stateful variants start from the state after <s> and the first 4 words (not timed). Every
request runs each variant in turn, so that a busy machine slows them all alike. Agreement:
how often a variant's top 5 (suggestable words) is the exact fp32 torch top 5 — the same
words in the same order, the same set, the same first word — on the same contexts.

A second table measures the served path: what `rnn-ime serve` does for each keystroke, the
text in, the top 5 out (jieba, the scorer, top-k), after a `--served-prefix`-word context (20)
taken from the test split as text. The 20 words are read first, as the keystrokes that typed
them would have; then each character of the next word is typed, one request per keystroke:

    served           the server's path (ContextReader, 256 entries): the last clause segmented,
                     then the scorer steps only the words after the longest cached prefix
    served-reread    the same text segmented and read whole every time (--context-cache 0: the
                     server's path before the cache); the agreement columns compare to it

Model: `--model DIR` (contexts from the test split of its data dir), or by default a model of
the default shape (embed 256, hidden 256, adaptive softmax) with an LSTM cell (`--cell`; the
LSTM's step is the dearest of the three) over a
50,000-word vocabulary prepared from the embedded corpora (`rnn-ime prepare --corpus embedded
--min-count 1 --max-vocab 50000`, on first use), randomly initialised unless
`--train-seconds` trains it first. Random weights are fine for timing, but their next-word
distributions are nearly flat, so int8 agreement measured on them is pessimistic: measure
agreement on a trained model.

    .venv/bin/python bench/latency.py                          # random weights, 2,000 requests
    .venv/bin/python bench/latency.py --model models/default   # a trained model
    .venv/bin/python bench/latency.py --train-seconds 600      # train the 50k model first
    .venv/bin/python bench/latency.py --requests 200           # a quick look
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnn_ime import modeldir
from rnn_ime.data import DataDir, Split
from rnn_ime.mixture import load_scorer
from rnn_ime.model import ModelConfig, NextWordModel, State
from rnn_ime.onnx_export import ExportConfig, export_model
from rnn_ime.onnx_runtime import OnnxScorer
from rnn_ime.predict import ContextReader, Predictor, top_k
from rnn_ime.scoring import NeuralScorer, Scorer
from rnn_ime.vocab import BOS_ID, SPECIALS, Vocab

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
K = 5
GOAL_P99_MS, GOAL_AGREEMENT = 1.0, 0.99  # the "Speed" issue's goal
Request = Callable[[list[int]], list[str]]


# ---------------------------------------------------------------- model and contexts
def ensure_data(path: Path, max_vocab: int) -> Path:
    """The embedded corpora with a `max_vocab`-word vocabulary, prepared unless already there."""
    if not (path / "manifest.json").is_file():
        subprocess.run([sys.executable, "-m", "rnn_ime", "prepare", "--out", str(path),
                        "--corpus", "embedded", "--min-count", "1",
                        "--max-vocab", str(max_vocab)], check=True)
    return path


def random_model_dir(data: Path, out: Path, cell: str, softmax: str, seed: int = 0) -> Path:
    """A model dir holding a randomly initialised model of the default shape."""
    data_dir = DataDir(data)
    torch.manual_seed(seed)
    model = NextWordModel(ModelConfig(vocab_size=len(data_dir.vocab), cell=cell,
                                      softmax=softmax))
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(data / "vocab.txt", out / "vocab.txt")
    modeldir.save_config(out, model.config, {
        "train": {"data": str(data)}, "tokenizer": data_dir.manifest["tokenizer"],
        "vocab_sha256": data_dir.vocab.sha256, "note": "random weights (bench/latency.py)"})
    modeldir.save_weights(model, out / "best.safetensors")
    return out


def trained_model_dir(data: Path, out: Path, cell: str, softmax: str, seconds: float) -> Path:
    from rnn_ime.train import TrainConfig, train  # only here: training needs tensorboard

    if not (out / "best.safetensors").is_file():
        train(TrainConfig(data=str(data), out=str(out), time_budget=seconds, epochs=10_000,
                          cell=cell, softmax=softmax, progress=sys.stderr.isatty()),
              log=lambda *_: None)
    return out


def sample_prefixes(split: Split, n: int, length: int, seed: int) -> list[list[int]]:
    """`n` runs of `length` consecutive words from random test passages (with repetition)."""
    rng = np.random.default_rng(seed)
    tokens = np.asarray(split.tokens)
    words = split.ends - split.starts - 1
    long_enough = np.flatnonzero(words >= length)
    if len(long_enough) == 0:
        raise SystemExit(f"no test passage has {length} words")
    out = []
    for passage in rng.choice(long_enough, size=n):
        begin = split.starts[passage] + 1 + rng.integers(0, words[passage] - length + 1)
        out.append(tokens[begin:begin + length].astype(int).tolist())
    return out


# ---------------------------------------------------------------- the variants
def stateful(scorer: Scorer, vocab: Vocab) -> tuple[Callable, Request]:
    """(prepare: prefix → state after <s> + prefix[:-1], request: (state, last word) → top 5)."""
    def prepare(prefix: list[int]) -> Any:  # the scorer's state
        state, _ = scorer.step(scorer.start(), BOS_ID)
        for word_id in prefix[:-1]:
            state, _ = scorer.step(state, word_id)
        return state

    def request(state: Any, word_id: int) -> tuple[list[str], torch.Tensor]:
        _, log_probs = scorer.step(state, word_id)
        return [s.word for s in top_k(log_probs, vocab, K)], log_probs

    return prepare, request


def stock_step(model: NextWordModel, vocab: Vocab) -> tuple[Callable, Request]:
    """The step as it was: nn.LSTM's forward on one word, then model.log_probs."""
    @torch.inference_mode()
    def run(state: State, word_id: int) -> tuple[State, torch.Tensor]:
        features, state = model(torch.tensor([[word_id]]), state)
        return state, model.log_probs(features[:, -1])[0]

    def prepare(prefix: list[int]) -> State:
        state, _ = run(None, BOS_ID)
        for word_id in prefix[:-1]:
            state, _ = run(state, word_id)
        return state

    def request(state: State, word_id: int) -> tuple[list[str], torch.Tensor]:
        _, log_probs = run(state, word_id)
        return [s.word for s in top_k(log_probs, vocab, K)], log_probs

    return prepare, request


def reread(scorer: NeuralScorer, vocab: Vocab) -> tuple[Callable, Request]:
    def prepare(prefix: list[int]) -> list[int]:
        return prefix[:-1]

    def request(head: list[int], word_id: int) -> tuple[list[str], torch.Tensor]:
        log_probs = scorer.log_probs([[*head, word_id]])[0]
        return [s.word for s in top_k(log_probs, vocab, K)], log_probs

    return prepare, request


# ---------------------------------------------------------------- measuring
def measure(variants: dict[str, tuple[Callable, Request]], prefixes: list[list[int]],
            warmup: int) -> dict[str, dict[str, Any]]:
    """Round-robin over the variants for every prefix; latency, top 5 and log-probs of each."""
    names = list(variants)
    times = {name: [] for name in names}
    tops = {name: [] for name in names}
    diffs = {name: 0.0 for name in names}
    for index, prefix in enumerate(prefixes[:warmup] + prefixes):
        timed = index >= warmup
        reference = None
        for name in names:
            prepare, request = variants[name]
            state = prepare(prefix)
            started = time.perf_counter()
            words, log_probs = request(state, prefix[-1])
            elapsed = time.perf_counter() - started
            if not timed:
                continue
            times[name].append(elapsed)
            tops[name].append(words)
            if reference is None:
                reference = log_probs.float()
            diffs[name] = max(diffs[name], float((log_probs.float() - reference).abs().max()))
    exact = tops[names[0]]
    results = {}
    for name in names:
        ms = np.asarray(times[name]) * 1e3
        pairs = list(zip(tops[name], exact, strict=True))
        results[name] = {
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()),
            "top5_agreement": float(np.mean([a == b for a, b in pairs])),
            "top5_set_agreement": float(np.mean([set(a) == set(b) for a, b in pairs])),
            "top1_agreement": float(np.mean([a[0] == b[0] for a, b in pairs])),
            "max_abs_log_prob_diff": diffs[name]}
    return results


def served_texts(split: Split, vocab: Vocab, n: int, words: int, seed: int
                 ) -> list[tuple[str, str]]:
    """`n` (context of `words` words, the word typed next) as text, from the test split (runs
    with a word outside the vocabulary are left out: <unk> has no text)."""
    out = []
    for prefix in sample_prefixes(split, 4 * n, words + 1, seed):
        if min(prefix) >= len(SPECIALS):
            out.append(("".join(vocab.word(i) for i in prefix[:-1]), vocab.word(prefix[-1])))
        if len(out) == n:
            return out
    if not out:
        raise SystemExit(f"no run of {words + 1} words in the vocabulary in the test split")
    return out


def measure_served(predictor: Predictor, texts: list[tuple[str, str]], requests: int,
                   warmup: int) -> dict[str, dict[str, Any]]:
    """Per keystroke: the served path (cached) and the same text read whole, in turn."""
    readers = {"served": ContextReader(predictor), "served-reread": ContextReader(predictor, 0)}
    times: dict[str, list[float]] = {name: [] for name in readers}
    tops: dict[str, list[list[str]]] = {name: [] for name in readers}
    diff = 0.0
    keystrokes = 0
    for index, (context, word) in enumerate(texts[:warmup] + texts):
        timed = index >= warmup
        readers["served"].read(context)  # the keystrokes that typed the context
        for end in range(1, len(word) + 1):
            text = context + word[:end]
            log_probs = {}
            for name, reader in readers.items():
                started = time.perf_counter()
                words = [s.word for s in reader.suggest(text, K)]
                elapsed = time.perf_counter() - started
                if timed:
                    times[name].append(elapsed)
                    tops[name].append(words)
                    log_probs[name] = reader.read(text).log_probs.float()
            if timed:
                diff = max(diff, float((log_probs["served"] - log_probs["served-reread"])
                                       .abs().max()))
                keystrokes += 1
        if keystrokes >= requests:
            break
    results = {}
    for name in readers:
        ms = np.asarray(times[name]) * 1e3
        pairs = list(zip(tops[name], tops["served-reread"], strict=True))
        results[name] = {
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "keystrokes": len(ms),
            "top5_agreement": float(np.mean([a == b for a, b in pairs])),
            "top5_set_agreement": float(np.mean([set(a) == set(b) for a, b in pairs])),
            "top1_agreement": float(np.mean([a[0] == b[0] for a, b in pairs])),
            "max_abs_log_prob_diff": diff if name == "served" else 0.0}
    return results


def print_table(results: dict[str, dict[str, Any]]) -> None:
    columns = [("p50_ms", "p50 ms", ".3f"), ("p99_ms", "p99 ms", ".3f"),
               ("mean_ms", "mean ms", ".3f"), ("top5_agreement", "top-5 same", ".2%"),
               ("top5_set_agreement", "top-5 set", ".2%"), ("top1_agreement", "top-1 same", ".2%"),
               ("max_abs_log_prob_diff", "max |Δlogp|", ".2g")]
    print(f"{'variant':<17}" + "".join(f"{h:>13}" for _, h, _ in columns))
    for name, row in results.items():
        print(f"{name:<17}" + "".join(f"{format(row[k], spec):>13}" for k, _, spec in columns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a trained model dir (default: see --train-seconds)")
    parser.add_argument("--data", help="where the contexts come from (default: the model's "
                                       "data dir, or the embedded corpora prepared)")
    parser.add_argument("--max-vocab", type=int, default=50_000)
    parser.add_argument("--train-seconds", type=float, default=0,
                        help="without --model: train the model this long first (0: random)")
    parser.add_argument("--cell", default="lstm", choices=["lstm", "gru", "rnn"],
                        help="without --model: the recurrent cell (default: lstm, the dearest "
                             "step)")
    parser.add_argument("--softmax", default="adaptive", choices=["adaptive", "full"],
                        help="without --model: the output layer (default: adaptive)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--prefix", type=int, default=5, help="words before the suggestion")
    parser.add_argument("--served-prefix", type=int, default=20,
                        help="words of context before the keystrokes of the served path")
    parser.add_argument("--per-channel", action="store_true", help="int8 per output column")
    parser.add_argument("--rerank", type=int, default=32,
                        help="onnx-int8: top words re-scored in fp32 (rnn-ime export --rerank)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(OUT / "latency.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = OUT / "latency"
    if args.model:
        model_dir = Path(args.model)
        data = Path(args.data or modeldir.load_config(model_dir)["train"]["data"])
    else:
        data = ensure_data(Path(args.data or OUT / f"data-embedded-{args.max_vocab}"),
                           args.max_vocab)
        name = f"{args.cell}-{args.softmax}"
        model_dir = (trained_model_dir(data, work / f"trained-{name}-{args.train_seconds:g}s",
                                       args.cell, args.softmax, args.train_seconds)
                     if args.train_seconds > 0
                     else random_model_dir(data, work / f"random-{name}", args.cell,
                                           args.softmax))
    model, vocab, _ = modeldir.load(model_dir)
    if DataDir(data).vocab.sha256 != vocab.sha256:
        raise SystemExit(f"{data}: its vocabulary differs from the model's")
    exports = {  # name: (int8, rerank, quantize_rnn)
        "onnx-fp32": (False, 0, False), "onnx-int8": (True, args.rerank, False),
        "onnx-int8-rnn": (True, args.rerank, True), "onnx-int8-plain": (True, 0, True)}
    torch_scorer = NeuralScorer(model, vocab)
    variants = {"torch-reread": reread(torch_scorer, vocab),
                "torch-step-stock": stock_step(model, vocab),
                "torch-step": stateful(torch_scorer, vocab)}
    for name, (int8, rerank, quantize_rnn) in exports.items():
        path = work / f"{name}.onnx"
        export_model(ExportConfig(model=str(model_dir), int8=int8, out=str(path),
                                  per_channel=args.per_channel, rerank=rerank,
                                  quantize_rnn=quantize_rnn))
        variants[name] = stateful(OnnxScorer(path, vocab, threads=1), vocab)
    if model.config.objective == "window":
        del variants["torch-step-stock"]  # a window model has no recurrent step
    prefixes = sample_prefixes(DataDir(data).split("test"), args.requests, args.prefix,
                               args.seed)
    results = measure(variants, prefixes, args.warmup)
    tokenizer = modeldir.load_config(model_dir).get("tokenizer", {}).get("name", "jieba")
    texts = served_texts(DataDir(data).split("test"), vocab, args.requests, args.served_prefix,
                         args.seed)
    served = measure_served(Predictor(torch_scorer, tokenizer, model_dir.name), texts,
                            args.requests, args.warmup)
    product = load_scorer(model_dir, torch_scorer)  # what `serve` runs: the mixture, if chosen
    if product is not torch_scorer:
        mixed = measure_served(Predictor(product, tokenizer, model_dir.name), texts,
                               args.requests, args.warmup)
        served.update({f"{name} (mixture)": row for name, row in mixed.items()})
    setting = {"model": str(model_dir), "data": str(data), "vocab_size": len(vocab),
               "weights": "random" if not args.model and args.train_seconds <= 0 else "trained",
               "architecture": {k: v for k, v in vars(model.config).items()},
               "requests": args.requests, "prefix_words": args.prefix, "k": K, "threads": 1,
               "per_channel": args.per_channel, "rerank": args.rerank,
               "torch": torch.__version__,
               "onnxruntime": __import__("onnxruntime").__version__,
               "python": platform.python_version(), "processor": platform.processor(),
               "date": time.strftime("%Y-%m-%d %H:%M")}
    print(f"{model_dir} ({setting['weights']} weights) · vocabulary {len(vocab):,} · "
          f"{model.config.cell}, hidden {model.config.hidden}, {model.config.softmax} softmax · "
          f"{args.requests:,} requests, top-{K} after {args.prefix} words · 1 thread")
    print_table(results)
    goal = [name for name, row in results.items()
            if row["p99_ms"] <= GOAL_P99_MS and row["top5_agreement"] >= GOAL_AGREEMENT]
    print(f"goal (p99 ≤ {GOAL_P99_MS:g} ms, top-5 same as fp32 on ≥ {GOAL_AGREEMENT:.0%}): "
          + (", ".join(goal) if goal else "met by none"))
    print(f"\nthe served path, per keystroke (text in, top {K} out) after a "
          f"{args.served_prefix}-word context, typing the next word a character at a time · "
          f"{served['served']['keystrokes']:,} keystrokes · 1 thread")
    print_table(served)
    served_goal = served["served"]["p99_ms"] <= GOAL_P99_MS
    print(f"goal (p99 ≤ {GOAL_P99_MS:g} ms on the served path): "
          + ("met" if served_goal else "not met"))
    setting["served_prefix_words"] = args.served_prefix
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"setting": setting, "results": results, "goal_met_by": goal,
                               "served": served, "served_goal_met": served_goal},
                              ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
