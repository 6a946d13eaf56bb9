"""The `rnn-ime` command: prepare, train, evaluate, predict, explain, export, serve, pinyin,
ibus."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import fields
from pathlib import Path

from .errors import RnnImeError
from .wording import counted

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def utf8_text(data: bytes, name: str) -> str:
    """`data` as UTF-8 text; other bytes raise one line naming `name`, the byte and its offset
    (and the likely cause when they read as GB18030, the usual other Chinese encoding)."""
    from .corpus import not_utf8
    from .errors import ConfigError

    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(not_utf8(name, data, exc.start, "use a UTF-8 terminal or locale "
                                   "(LANG=zh_CN.UTF-8)", byte="byte")) from None


# argv arrives decoded with surrogateescape: a byte that was not UTF-8 is a lone surrogate
_TEXT_ARGUMENTS = {"text": "the text", "context": "--context", "letters": "the letters"}


def check_text_arguments(args) -> None:
    """Refuse a text argument that was not UTF-8 on the command line, before any work."""
    named = [(dest, name) for dest, name in _TEXT_ARGUMENTS.items() if hasattr(args, dest)]
    if getattr(args, "command", None) == "user" and getattr(args, "action", None) == "forget":
        named.append(("argument", "the word to forget"))
    for dest, name in named:
        values = getattr(args, dest)
        for value in values if isinstance(values, list) else [values]:
            if isinstance(value, str):
                utf8_text(os.fsencode(value), name)


# ---------------------------------------------------------------- prepare
def add_prepare(sub) -> None:
    p = sub.add_parser("prepare", help="corpus files → a data dir (vocabulary, token arrays)")
    p.add_argument("--corpus", nargs="+", action="extend", metavar="PATH",
                   help="corpus files, or embedded / embedded:NAME (default: embedded, i.e. all)")
    p.add_argument("--format", default="auto",
                   choices=["auto", "dialogue", "jsonl", "text", "pku"],
                   help="format of the corpus files (default: detected per file)")
    p.add_argument("--out", default="data/default", help="the data dir to write")
    p.add_argument("--min-count", type=int, default=3, help="keep words seen this often")
    p.add_argument("--max-vocab", type=int, default=None, help="at most this many ids")
    p.add_argument("--seed", type=int, default=0, help="seed of the document split")
    p.add_argument("--strict", action="store_true", help="fail on the first malformed line")
    p.add_argument("--list-corpora", action="store_true", help="list the embedded corpora")
    p.set_defaults(func=run_prepare)


def run_prepare(args) -> None:
    from .corpus import EMBEDDED_SOURCES
    from .prepare import DEFAULT_CORPUS, PrepareConfig, prepare

    if args.list_corpora:
        for name, spec in EMBEDDED_SOURCES.items():
            print(f"embedded:{name:<10}{spec.description}")
        print(f"embedded         every embedded corpus   (default: {' '.join(DEFAULT_CORPUS)})")
        return
    config = PrepareConfig(corpus=args.corpus or list(DEFAULT_CORPUS), out=args.out,
                           format=args.format, min_count=args.min_count,
                           max_vocab=args.max_vocab, seed=args.seed, strict=args.strict,
                           progress=sys.stderr.isatty())
    manifest = prepare(config, log=_stderr)
    splits = manifest["splits"]
    print(f"wrote {args.out}: vocabulary {manifest['vocab']['size']:,} · words "
          + " / ".join(f"{s} {splits[s]['words']:,}" for s in splits)
          + f" · unknown in test "
          f"{splits['test']['unknown_words'] / max(1, splits['test']['words']):.1%}")
    if (hint := small_corpus_hint(manifest, args.min_count)) is not None:
        _stderr(hint)


SMALL_VOCAB = 2000  # below this many words, prepare says how to make the most of the text


def small_corpus_hint(manifest: dict, min_count: int) -> str | None:
    """What to do with a corpus too small for the default --min-count (a user's few pages)."""
    size = manifest["vocab"]["size"]
    if size >= SMALL_VOCAB or min_count <= 1:
        return None
    return (f"note: a small corpus: only {size:,} words are seen {min_count} times or more; "
            "--min-count 1 keeps every training word")


# ---------------------------------------------------------------- train
def add_train(sub) -> None:
    from .train import TrainConfig

    d = TrainConfig()
    p = sub.add_parser("train", help="train a model on a data dir")
    p.add_argument("--data", default=d.data, help="a prepared data dir")
    p.add_argument("--out", default=d.out, help="the model dir to write")
    p.add_argument("--objective", default=d.objective, choices=["lm", "window"],
                   help="lm: every position predicts the next word; window: the course's "
                        "fixed window of --seq-len words")
    p.add_argument("--cell", default=d.cell, help="rnn, gru or lstm")
    p.add_argument("--nonlinearity", default=d.nonlinearity, choices=["tanh", "relu"])
    p.add_argument("--layers", type=int, default=d.layers)
    p.add_argument("--hidden", type=int, default=d.hidden)
    p.add_argument("--embed", type=int, default=d.embed)
    p.add_argument("--dropout", type=float, default=d.dropout)
    p.add_argument("--bidirectional", action="store_true", help="window objective only")
    p.add_argument("--tie-weights", action="store_true",
                   help="share the embedding and output matrices (needs --softmax full)")
    p.add_argument("--softmax", default=d.softmax, choices=["auto", "full", "adaptive"],
                   help="auto: adaptive over large vocabularies, else full")
    p.add_argument("--seq-len", type=int, default=d.seq_len, help="window length (window)")
    p.add_argument("--bptt", type=int, default=d.bptt, help="truncated BPTT length (lm)")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="stop after this much training time (then validate and save)")
    p.add_argument("--clip", type=float, default=d.clip, help="gradient norm clipping")
    p.add_argument("--patience", type=int, default=d.patience,
                   help="early stopping: validations without improvement")
    p.add_argument("--eval-every", type=int, default=d.eval_every,
                   help="validate every N steps (0: at the end of each epoch)")
    p.add_argument("--eval-every-seconds", type=float, default=d.eval_every_seconds,
                   help="also validate every N seconds of training (0: off)")
    p.add_argument("--valid-words", type=int, default=d.valid_words,
                   help="validate on evenly spaced passages of the validation split with "
                        "about this many words (0: all of it)")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every,
                   help="save the resumable state every N steps")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device, help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--plain-adam", action="store_true",
                   help="the unfused Adam step (the fused one is the default where available)")
    p.add_argument("--resume", action="store_true", help="go on from --out's last checkpoint")
    p.set_defaults(func=run_train)


def run_train(args) -> None:
    from .train import TrainConfig, train

    names = {f.name for f in fields(TrainConfig)}
    options = {k: v for k, v in vars(args).items() if k in names}
    options["valid_words"] = options.get("valid_words") or None
    config = TrainConfig(**options, progress=sys.stderr.isatty())
    try:
        summary = train(config, log=_stderr)
    except KeyboardInterrupt:
        _stderr(f"stopped; resume with: rnn-ime train --data {args.data} --out {args.out} "
                "--resume")
        raise SystemExit(EXIT_INTERRUPTED) from None
    print(f"trained {summary['steps']} steps in {summary['train_seconds']:.0f} s "
          f"({summary['target_words_per_second']:,} target words/s; stopped: "
          f"{summary['stopped']}); best validation loss {summary['best_valid_loss']:.3f}")


# ---------------------------------------------------------------- evaluate
def add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="loss, perplexity and top-k accuracy on a test split")
    p.add_argument("--model", required=True, help="a model dir")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--data", help="a data dir with the model's vocabulary (default: the one "
                                      "the model was trained on)")
    group.add_argument("--corpus", nargs="+", metavar="PATH",
                       help="score any text with the model's tokenizer and vocabulary")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("--format", default="auto", help="format of --corpus files")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--baseline", choices=["ngram"],
                   help="also score a Kneser-Ney n-gram trained on the model's training split, "
                        "and print both side by side")
    p.add_argument("--order", type=int, default=None,
                   help="order of the --baseline n-gram, 2 to 5 (default 4)")
    p.add_argument("--no-mixture", action="store_true",
                   help="the recurrent model alone, even where `rnn-ime mix` chose the mixture")
    _add_user_options(p, learns=False, default_on=False)
    p.set_defaults(func=run_evaluate)


def run_evaluate(args) -> None:
    from . import modeldir
    from .data import DataDir
    from .errors import DataDirError
    from .fsutil import read_json, write_json
    from .metrics import PassageTally, difference_intervals, evaluate, format_table
    from .mixture import describe, load_scorer
    from .prepare import encode_corpus
    from .scoring import NeuralScorer

    _check_baseline_options(args)
    model, vocab, config = modeldir.load(args.model)
    if args.corpus:
        split, names = encode_corpus(args.corpus, vocab, args.format, log=_stderr)
        where = ", ".join(args.corpus)
    else:
        data_path = args.data or modeldir.trained_on(Path(args.model), config)
        data = DataDir(data_path)
        if data.vocab.sha256 != vocab.sha256:
            raise DataDirError(f"{data_path}: its vocabulary differs from the model's; "
                               "evaluate with --corpus to re-encode text for this model")
        split, names = data.split(args.split), data.source_names
        where = f"{data_path} ({args.split})"
    scorer = load_scorer(args.model, NeuralScorer(model, vocab), not args.no_mixture)
    if args.user_db:
        scorer = _profile(args, scorer).scorer
    _stderr(f"scoring with {describe(scorer)}")
    by_passage = PassageTally.empty(len(split.starts)) if args.baseline else None
    result = evaluate(scorer, split, names, by_passage=by_passage)
    result["evaluated_on"] = where
    result["scorer"] = scorer.name
    if not args.corpus and args.split == "test" and not args.no_mixture and not args.user_db:
        # the model dir's own figures: those of the scorer that loading the model gives
        metrics_path = Path(args.model) / "metrics.json"
        record = read_json(metrics_path) if metrics_path.is_file() else {}
        record["test"] = result
        write_json(metrics_path, record)
    if args.baseline:
        baseline_by_passage = PassageTally.empty(len(split.starts))
        baseline = _baseline_result(args, config, vocab, split, names, baseline_by_passage)
        _print_with_baseline(args, result, baseline, where,
                             difference_intervals(by_passage, baseline_by_passage))
        return
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return
    rows = {"all": result, **result.get("by_source", {})}
    print(format_table(rows, f"{args.model} on {where}"))
    print(format_table({f"{k} words": v for k, v in result["by_context"].items()},
                       "\nby words of context before the predicted word"))


def _check_baseline_options(args) -> None:
    from .errors import ConfigError
    from .ngram import DEFAULT_ORDER, check_order

    if args.order is not None and not args.baseline:
        raise ConfigError("--order needs --baseline ngram")
    args.order = check_order(DEFAULT_ORDER if args.order is None else args.order)


def _baseline_result(args, config, vocab, split, names, by_passage=None) -> dict:
    """Train the n-gram on the training split of the model's own data dir and score `split`."""
    from .metrics import evaluate
    from .ngram import NgramScorer

    data_path, data = _training_data(args.model, config, vocab)
    scorer = NgramScorer.train(data.split("train"), vocab, args.order)
    began = time.perf_counter()
    result = evaluate(scorer, split, names, by_passage=by_passage)
    return {"name": scorer.name, "order": scorer.order, "trained_on": f"{data_path} (train)",
            "train_seconds": round(scorer.train_seconds, 3),
            "evaluate_seconds": round(time.perf_counter() - began, 3), **result}


def _training_data(model_dir: str, config: dict, vocab, data_path: str | None = None):
    """(path, DataDir) of the data the model was trained on (or `data_path`), refused when its
    vocabulary is not the model's: the n-gram of a baseline or a mixture is counted there."""
    from .data import DataDir
    from .errors import DataDirError
    from .modeldir import trained_on

    data_path = data_path or trained_on(Path(model_dir), config)
    data = DataDir(data_path)
    if data.vocab.sha256 != vocab.sha256:
        raise DataDirError(f"{data_path}: its vocabulary is not the one the model was trained "
                           "with; the n-gram must be counted with the model's vocabulary")
    return data_path, data


def _print_with_baseline(args, result: dict, baseline: dict, where: str,
                         difference: dict) -> None:
    from .metrics import INTERVAL_ROUNDS, format_comparison, format_intervals

    if args.json:
        print(json.dumps({**result, "baseline": baseline,
                          "difference": {"rounds": INTERVAL_ROUNDS, **difference}},
                         ensure_ascii=False, indent=2))
        return
    name = Path(args.model).name or "model"
    rows = {name: result, baseline["name"]: baseline}
    for source in result.get("by_source", {}):
        rows[f"{name} {source}"] = result["by_source"][source]
        rows[f"{baseline['name']} {source}"] = baseline["by_source"][source]
    print(format_comparison(rows, f"{args.model} vs {baseline['name']} on {where}"))
    print("\n" + format_intervals(difference, f"{name} − {baseline['name']}, in points",
                                  INTERVAL_ROUNDS))
    print(f"\n{baseline['name']}: interpolated modified Kneser-Ney, trained on "
          f"{baseline['trained_on']} in {baseline['train_seconds']:.1f} s, "
          f"scored in {baseline['evaluate_seconds']:.1f} s")


# ---------------------------------------------------------------- mix
def add_mix(sub) -> None:
    from .mixture import FIT_WORDS

    p = sub.add_parser("mix", help="fit the mixture of the model and a Kneser-Ney n-gram on "
                                   "validation; keep it when it beats the model alone")
    p.add_argument("--model", required=True, help="a model dir")
    p.add_argument("--order", type=int, default=None, help="n-gram order, 2 to 5 (default 4)")
    p.add_argument("--valid-words", type=int, default=FIT_WORDS,
                   help="validation words to fit on (evenly spaced passages; 0: all)")
    p.add_argument("--data", help="a data dir with the model's vocabulary (default: the one "
                                  "the model was trained on)")
    p.set_defaults(func=run_mix)


def run_mix(args) -> None:
    from . import mixture, modeldir
    from .errors import ConfigError, DataDirError
    from .ngram import DEFAULT_ORDER, NgramScorer, check_order
    from .scoring import NeuralScorer

    order = check_order(DEFAULT_ORDER if args.order is None else args.order)
    if args.valid_words < 0:
        raise ConfigError("--valid-words must be 0 (all) or more")
    model, vocab, config = modeldir.load(args.model)
    data_path, data = _training_data(args.model, config, vocab, args.data)
    if not data.manifest.get("splits", {}).get("valid", {}).get("words"):
        raise DataDirError(f"{data_path}: the validation split is empty: nothing to fit on")
    ngram = NgramScorer.train(data.split("train"), vocab, order)
    record = mixture.fit(NeuralScorer(model, vocab), ngram, data.split("valid"),
                         args.valid_words or None)
    mixture.save(Path(args.model), record, ngram)
    print(f"validation top-1 + KSR@5 for each weight λ of the {ngram.name}, by words of "
          "context (the best kept in each; at 0 words, the λ of lowest loss):")
    print(f"{'context':>8}{'words':>8}" + "".join(f"{w:>6}" for w in mixture.WEIGHT_GRID))
    for label, curve in record["by_bucket"].items():
        row = [curve[str(w)].get("top1", 0) + curve[str(w)].get("ksr5", 0)
               for w in mixture.WEIGHT_GRID]
        print(f"{label:>8}{curve['0.0']['words']:>8,}" + "".join(f"{r:>6.1%}" for r in row))
    print(f"{'chosen':>16}" + "".join(f"{w:>6g}" for w in record["weights"]) + "  (λ per row)")
    print(f"\n{'':<22}{'ppl':>8}{'top-1':>8}{'top-5':>8}{'KSR@1':>8}{'KSR@5':>8}")
    for name, r in record["validation"].items():
        print(f"{name:<22}{r['perplexity']:>8.1f}{r['top1']:>8.1%}{r['top5']:>8.1%}"
              f"{r.get('ksr1', 0):>8.1%}{r.get('ksr5', 0):>8.1%}")
    if record["chosen"] == "mixture":
        print("using the mixture with these weights from now on (--no-mixture: the model "
              "alone)")
    else:
        print("using the model alone: no mixture beats it on validation")


# ---------------------------------------------------------------- predict
def add_predict(sub) -> None:
    p = sub.add_parser("predict", help="the next words after a text (interactive without text)")
    p.add_argument("--model", required=True, help="a model dir")
    p.add_argument("-k", type=int, default=5, help="how many suggestions")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--beam", type=int, default=None, metavar="B",
                   help="beam search: the B most likely continuations of --length words")
    p.add_argument("--length", type=int, default=None, metavar="L",
                   help="words per --beam continuation (default 3)")
    p.add_argument("--may-end", action="store_true",
                   help="a --beam continuation may end the passage before --length words")
    p.add_argument("--runtime", default="torch", choices=["torch", "onnx"],
                   help="onnx: ONNX Runtime on the graph of `rnn-ime export`")
    p.add_argument("--int8", action="store_true", help="--runtime onnx: the int8 graph")
    p.add_argument("--no-mixture", action="store_true",
                   help="the recurrent model alone, even where `rnn-ime mix` chose the mixture")
    p.add_argument("text", nargs="?", help="the text typed so far")
    _add_user_options(p, learns=True)
    p.set_defaults(func=run_predict)


def _beam_option(args) -> tuple[int, int, bool] | None:
    """(beam, length, may_end) of --beam, or None."""
    from .beam import check_beam
    from .errors import ConfigError

    if args.beam is None:
        if args.length is not None or args.may_end:
            raise ConfigError("--length and --may-end need --beam")
        return None
    length = 3 if args.length is None else args.length
    check_beam(args.beam, length)
    return args.beam, length, args.may_end


def _beam_answer(predictor, text: str, beam: tuple[int, int, bool], as_json: bool) -> str:
    from .beam import beam_search

    _, ids = predictor.encode(text)
    found = beam_search(predictor.scorer, ids, *beam)
    if as_json:
        return json.dumps({"text": text, "beam": beam[0], "length": beam[1], "may_end": beam[2],
                           "continuations": [c.as_dict() for c in found]},
                          ensure_ascii=False)
    return "\n".join(
        f"{i}. {' '.join(c.words)}"
        f"{' ⏎' if c.ends_passage else ''}  log p {c.log_prob:.2f}"
        for i, c in enumerate(found, 1))


def _answer(predictor, text: str, k: int, as_json: bool,
            beam: tuple[int, int, bool] | None = None) -> str:
    if beam is not None:
        return _beam_answer(predictor, text, beam, as_json)
    suggestions = predictor.suggest(text, k)
    if as_json:
        return json.dumps({"text": text, "suggestions": [s.as_dict() for s in suggestions]},
                          ensure_ascii=False)
    return "  ".join(f"{i}.{s.word} {s.probability:.1%}" for i, s in enumerate(suggestions, 1))


def run_predict(args) -> None:
    from .predict import Predictor, check_k

    check_k(args.k)
    beam = _beam_option(args)
    predictor = Predictor.from_dir(args.model, runtime=args.runtime, int8=args.int8,
                                   mixture=not args.no_mixture)
    interactive_run = args.text is None and sys.stdin.isatty()
    profile = _profile(args, predictor.scorer, learns=interactive_run)
    if profile is not None:
        predictor = Predictor(profile.scorer, predictor.tokenizer.info.name, predictor.model_name)
    if args.text is not None:
        print(_answer(predictor, args.text, args.k, args.json, beam))
    elif interactive_run:
        try:
            interactive(predictor, args.k, beam, profile)
        finally:
            _close_profile(profile)
    else:
        for number, raw in enumerate(sys.stdin.buffer, 1):
            line = utf8_text(raw, f"stdin line {number}").removesuffix("\n").removesuffix("\r")
            print(_answer(predictor, line, args.k, args.json, beam), flush=True)


def interactive(predictor, k: int, beam: tuple[int, int, bool] | None = None,
                profile=None) -> None:
    """Each line typed is answered with the next words, then learned as a commit (when a
    profile learns)."""
    print("Type Chinese text and press Enter for the next words; quit, exit or Ctrl-D to leave.")
    if profile is not None and profile.options.learn:
        print(f"(learning what you type into {profile.model.store.path}; --no-learn: do not)")
    while True:
        try:
            text = input("> ")
        except (EOFError, KeyboardInterrupt):
            print()
            return
        except UnicodeDecodeError as exc:
            print(f"  not UTF-8 text (byte 0x{exc.object[exc.start]:02x}): use a UTF-8 "
                  "terminal")
            continue
        if text.strip() in {"quit", "exit"}:
            return
        print("  " + _answer(predictor, text, k, False, beam).replace("\n", "\n  "))
        if profile is not None:
            profile.learn(text)


# ---------------------------------------------------------------- export
def add_export(sub) -> None:
    from .onnx_export import DEFAULT_RERANK, MAX_RERANK

    p = sub.add_parser("export", help="a trained model's step as an ONNX graph (fp32 or int8)")
    p.add_argument("--model", required=True, help="a model dir")
    p.add_argument("--format", default="onnx", choices=["onnx"], help="the file format")
    p.add_argument("--int8", action="store_true",
                   help="dynamic int8 quantisation (onnxruntime quantize_dynamic)")
    p.add_argument("--per-channel", action="store_true",
                   help="--int8 with one scale per output column")
    p.add_argument("--rerank", type=int, default=None, metavar="N",
                   help="--int8: re-score the top N words of each int8 layer that ranks "
                        f"words with fp32 weights (0: off; at most {MAX_RERANK:,}; default "
                        f"{DEFAULT_RERANK})")
    p.add_argument("--quantize-rnn", action="store_true",
                   help="--int8: an LSTM cell too (faster, less exact)")
    p.add_argument("--out", help="the file to write (default: MODEL/model.onnx or "
                                 "MODEL/model.int8.onnx)")
    p.set_defaults(func=run_export)


def run_export(args) -> None:
    from .errors import ConfigError
    from .onnx_export import DEFAULT_RERANK, ExportConfig, export_model

    if not args.int8 and (args.rerank is not None or args.per_channel or args.quantize_rnn):
        raise ConfigError("--rerank, --per-channel and --quantize-rnn go with --int8")
    rerank = DEFAULT_RERANK if args.rerank is None else args.rerank
    summary = export_model(ExportConfig(model=args.model, format=args.format, int8=args.int8,
                                        out=args.out, per_channel=args.per_channel,
                                        rerank=rerank, quantize_rnn=args.quantize_rnn))
    print(f"wrote {summary['path']}: {summary['format']} graph, {summary['precision']}, "
          f"{summary['bytes'] / 1024:,.0f} KiB; max |log-prob difference| from torch "
          f"{summary['max_abs_diff']:.2g}")


# ---------------------------------------------------------------- explain
def add_explain(sub) -> None:
    p = sub.add_parser("explain", help="an RNN's shapes, parameters and per-step states")
    p.add_argument("--input-size", type=int, default=8)
    p.add_argument("--hidden-size", type=int, default=4)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--bidirectional", action="store_true")
    p.add_argument("--nonlinearity", default="tanh", choices=["tanh", "relu"])
    p.add_argument("--batch-first", action="store_true")
    p.add_argument("--seq-len", type=int, default=4, help="steps of random input (no TEXT)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", help="show a trained model's states over TEXT instead")
    p.add_argument("text", nargs="?", help="a sentence: one step per word")
    p.set_defaults(func=run_explain)


def run_explain(args) -> None:
    from .explain import ExplainConfig, explain_config, explain_model

    if args.model:
        from .predict import Predictor

        print(explain_model(Predictor.from_dir(args.model, mixture=False), args.text or ""))
        return
    words = None
    if args.text:
        from .text import get_tokenizer

        words = get_tokenizer().tokenize(args.text) or None
    print(explain_config(ExplainConfig(args.input_size, args.hidden_size, args.layers,
                                       args.bidirectional, args.nonlinearity, args.batch_first,
                                       args.seq_len, args.seed), words))


# ---------------------------------------------------------------- serve
def add_serve(sub) -> None:
    p = sub.add_parser("serve", help="an HTTP API and a web page that suggests as you type")
    p.add_argument("--model", required=True, help="a model dir")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (0: a free one)")
    p.add_argument("--no-mixture", action="store_true",
                   help="the recurrent model alone, even where `rnn-ime mix` chose the mixture")
    p.add_argument("--context-cache", type=int, default=256, metavar="N",
                   help="states after typed contexts kept, so a keystroke costs a step, not a "
                        "re-read (0: none, every text read whole; each holds ~4 bytes a "
                        "vocabulary word; default: 256)")
    _add_pinyin_options(p, "the rules the page starts with, and /api/pinyin's default")
    p.add_argument("--user-dir", metavar="DIR",
                   help="where the users' profiles live: DIR/user.db for the profile "
                        "\"default\", DIR/profiles/NAME.db for the others (default: "
                        "$XDG_DATA_HOME/rnn-ime, else ~/.local/share/rnn-ime)")
    p.add_argument("--no-learn", action="store_true",
                   help="score with the profiles, never update them (/api/learn, /api/undo "
                        "and /api/forget answer 403)")
    p.add_argument("--no-user", action="store_true",
                   help="no profiles: requests naming a `user` are answered without one")
    p.add_argument("--max-profiles", type=int, default=16, metavar="N",
                   help="profiles open at once; a new name past them gets 403 (default: 16)")
    p.add_argument("--no-adapt", action="store_true",
                   help="the profiles' counts only: no profile uses or trains its own copy of "
                        "the model")
    p.set_defaults(func=run_serve)


def run_serve(args) -> None:
    from .errors import ConfigError
    from .server import serve

    if args.context_cache != 0 and not 2 <= args.context_cache <= 1_000_000:
        raise ConfigError("--context-cache must be 0 or between 2 and 1,000,000")
    fuzzy, word_lists = _fuzzy_option(args.fuzzy), _word_lists(args.lexicon)
    try:
        serve(args.model, args.host, args.port, mixture=not args.no_mixture,
              context_cache=args.context_cache, fuzzy=fuzzy, word_lists=word_lists,
              log_note=_stderr, profiles=_profile_options(args))
    except KeyboardInterrupt:
        # Ctrl-C is how a server is meant to stop: uvicorn has shut down gracefully and then
        # re-raised the signal; one line and exit 0, not asyncio's traceback.
        _stderr("rnn-ime: stopped")


def _profile_options(args):
    """--user-dir, --no-learn, --no-user, --max-profiles → a ProfileDirConfig (None: --no-user),
    checked before the model loads."""
    from .errors import ConfigError
    from .server import check_profiles
    from .user.directory import ProfileDirConfig, default_dir

    if args.no_user:
        if args.user_dir or args.no_learn or args.no_adapt:
            raise ConfigError("--no-user keeps no profiles: drop --user-dir, --no-learn and "
                              "--no-adapt")
        return None
    directory = Path(args.user_dir).expanduser() if args.user_dir else default_dir()
    return check_profiles(ProfileDirConfig(directory, learn=not args.no_learn,
                                           max_profiles=args.max_profiles,
                                           adapt=not args.no_adapt))


# ---------------------------------------------------------------- pinyin
def _add_pinyin_options(p, fuzzy_help: str) -> None:
    from .ime import FUZZY_RULES

    p.add_argument("--fuzzy", action="append", default=[], metavar="RULES",
                   help=f"fuzzy pinyin rules, comma-separated ({fuzzy_help}; off by default): "
                        + ", ".join(FUZZY_RULES))
    p.add_argument("--lexicon", action="append", default=[], metavar="FILE",
                   help="a word list of your own, UTF-8, `word [frequency]` per line "
                        "(repeatable)")


def _fuzzy_option(values: list[str]) -> frozenset[str]:
    """`--fuzzy z-zh,an-ang --fuzzy n-l` → the rules, checked (an unknown one: PinyinError)."""
    from .ime import check_fuzzy

    return check_fuzzy(rule.strip() for value in values for rule in value.split(",")
                       if rule.strip())


def _word_lists(paths: list[str]) -> list[str]:
    """The --lexicon files, read now (missing or not UTF-8: LexiconError) so that a bad one
    fails before the model loads; reading them again later costs nothing (memoised)."""
    from .ime.lexicon import read_word_list

    for path in paths:
        read_word_list(path)
    return paths


def add_pinyin(sub) -> None:
    from .ime import DEFAULT_BEAM
    from .ime.decoder import CONTEXT_WEIGHT

    p = sub.add_parser("pinyin", help="typed pinyin → ranked Chinese candidates")
    p.add_argument("--model", required=True, help="a model dir")
    p.add_argument("--context", default="", help="the text already committed before it")
    p.add_argument("-k", type=int, default=5,
                   help="how many candidates of each kind, and in the ranked list")
    p.add_argument("--beam", type=int, default=DEFAULT_BEAM,
                   help="hypotheses kept per position of the lattice")
    p.add_argument("--context-weight", type=float, default=CONTEXT_WEIGHT, metavar="MU",
                   help="how much the words of --context itself are favoured, in [0, 1) "
                        f"(default {CONTEXT_WEIGHT:g}; 0: the model alone)")
    _add_pinyin_options(p, "used in decoding")
    p.add_argument("--json", action="store_true", help="print JSON: the whole decoding")
    p.add_argument("--no-mixture", action="store_true",
                   help="the recurrent model alone, even where `rnn-ime mix` chose the mixture")
    p.add_argument("letters", help="pinyin: full, with apostrophes (xi'an), a partial last "
                                   "syllable, or initials (jt); one trailing mark (, . ? ! ; : "
                                   "\\) commits the first candidate with its full-width form")
    _add_user_options(p, learns=False)
    p.set_defaults(func=run_pinyin)


def run_pinyin(args) -> None:
    from .errors import ConfigError
    from .ime import (
        DecoderSettings,
        commit_of,
        decode,
        mark_after,
        normalize,
        open_lexicon,
        split_mark,
    )
    from .ime.lexicon import skipped_note
    from .predict import Predictor

    settings = DecoderSettings(k=args.k, beam=args.beam, fuzzy=_fuzzy_option(args.fuzzy),
                               context_weight=args.context_weight)
    typed = args.letters.strip()
    letters, _ = split_mark(typed)
    # a bad input fails before the model loads; nothing, or apostrophes alone, decodes nothing
    if not normalize(letters)[0]:
        raise ConfigError("no pinyin letters to decode: give some, like `rnn-ime pinyin "
                          "--model DIR nihao`")
    word_lists = _word_lists(args.lexicon)
    predictor = Predictor.from_dir(args.model, mixture=not args.no_mixture)
    lexicon = open_lexicon(predictor.vocab, word_lists)
    if note := skipped_note(lexicon):
        _stderr(note)
    scorer = predictor.scorer
    profile = _profile(args, scorer)
    if profile is not None:
        scorer, lexicon = profile.scorer, profile.lexicon(lexicon)
    _, context = predictor.encode(args.context)
    found = decode(scorer, letters, context, settings, lexicon,
                   followed_by=mark_after(typed))
    commit = commit_of(found, typed)
    if args.json:
        answer = {"context": args.context, **found.as_dict(limit=args.k)}
        if commit is not None:
            answer["commit"] = commit.as_dict()
        print(json.dumps(answer, ensure_ascii=False))
        return
    print("  ".join(f"{i}.{c.text}" for i, c in enumerate(found.ranked(args.k), 1)))
    if commit is not None:
        print(f"commit: {commit.text}")


# ---------------------------------------------------------------- what the user taught
def _add_user_options(p, learns: bool, default_on: bool = True, ignorable: bool = True,
                      adapts: bool = True) -> None:
    where = "default: $XDG_DATA_HOME/rnn-ime/user.db, else ~/.local/share/rnn-ime/user.db"
    p.add_argument("--user-db", metavar="PATH",
                   help=f"the file of what the user taught ({where})" if default_on else
                   "score with what the user taught, from this file (off unless given)")
    if default_on and ignorable:
        p.add_argument("--no-user", action="store_true", help="ignore what the user taught")
    if learns:
        p.add_argument("--no-learn", action="store_true",
                       help="use what the user taught, but learn nothing new from this run")
    if adapts:
        p.add_argument("--no-adapt", action="store_true",
                       help="the user's counts only: neither use nor train the profile's own "
                            "copy of the model")


def _profile(args, scorer, learns: bool = False):
    """The user's profile around `scorer`, or None (--no-user; or, for a command that does not
    learn, no file yet: reading never creates one)."""
    from .user import LearnOptions, Profile, default_path

    if getattr(args, "no_user", False):
        return None
    path = Path(args.user_db) if args.user_db else default_path()
    if not learns and not path.exists():
        if args.user_db:
            from .user import UserStoreError

            raise UserStoreError(f"{path}: no such user file")
        return None
    learn = learns and not getattr(args, "no_learn", False)
    options = LearnOptions(learn=learn, adapt=not getattr(args, "no_adapt", False))
    # the default location's directory is made; a typed --user-db's must exist (a typo)
    profile = Profile.open(scorer, path, options, make_dirs=not args.user_db)
    for note in profile.notes:
        _stderr(f"note: {path}: {note}")
    return profile


def _close_profile(profile) -> None:
    """Close a profile that learned (its model adaptation trained on what waits and saved);
    a save its file refused is one line."""
    if profile is None:
        return
    loaded = set(profile.notes)
    profile.close()
    for note in profile.notes:
        if note not in loaded:
            _stderr(f"note: {profile.model.store.path}: {note}")


def add_learn(sub) -> None:
    p = sub.add_parser("learn", help="learn from text as if the user had typed it")
    p.add_argument("--model", required=True, help="a model dir (its vocabulary and lexicon "
                   "tell known words from new ones)")
    _add_user_options(p, learns=False, ignorable=False)
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--file", help="a UTF-8 text file: each line is learned as one commit")
    group.add_argument("text", nargs="*", default=[], help="texts, each learned as one commit")
    p.set_defaults(func=run_learn)


def _text_file_lines(path: str, dash_is_stdin: bool = False) -> list[str]:
    """The lines of a UTF-8 text file (stdin for `-` when `dash_is_stdin`); unreadable or not
    UTF-8: one line (CorpusError), as `prepare` says it."""
    from .corpus import decode_utf8
    from .errors import CorpusError

    stdin = dash_is_stdin and path == "-"
    try:
        raw = sys.stdin.buffer.read() if stdin else Path(path).read_bytes()
    except OSError as error:
        raise CorpusError(f"{path}: cannot read ({error.strerror or error})") from None
    return decode_utf8(raw, "stdin" if stdin else path).splitlines()


def run_learn(args) -> None:
    from .ime import open_lexicon
    from .predict import Predictor

    if args.file:
        lines = _text_file_lines(args.file)
    else:
        lines = args.text
    predictor = Predictor.from_dir(args.model)
    profile = _profile(args, predictor.scorer, learns=True)
    lexicon = open_lexicon(predictor.vocab)
    words, made, commits = 0, [], 0
    try:
        for line in lines:
            lesson = profile.learn(line, known=lexicon)
            if lesson is not None:
                commits += 1
                words += len(lesson.words)
                made.extend(w for w, _ in lesson.made)
    finally:
        _close_profile(profile)  # the model's adaptation trained on every line, and saved
    note = f"; new words: {'、'.join(made[:20])}" + (" …" if len(made) > 20 else "") \
        if made else ""
    print(f"learned {counted(words, 'word')} from {counted(commits, 'commit')} into "
          f"{profile.model.store.path}"
          + note)


def add_user(sub) -> None:
    p = sub.add_parser("user", help="what the user taught: stats, export, import, forget")
    p.add_argument("action", choices=["stats", "export", "import", "forget"])
    p.add_argument("argument", nargs="?", help="import: a file of `word<TAB>count[<TAB>"
                   "reading]` lines (- for stdin); forget: the word")
    _add_user_options(p, learns=False, ignorable=False, adapts=False)
    p.set_defaults(func=run_user)


def run_user(args) -> None:
    from .errors import ConfigError
    from .user import UserModel, UserStore, default_path

    path = Path(args.user_db) if args.user_db else default_path()
    needs = {"import": "a file to import", "forget": "the word to forget"}
    if args.action in needs and not args.argument:
        raise ConfigError(f"`rnn-ime user {args.action}` needs {needs[args.action]}")
    # read first: a file that cannot be imported must not leave an empty profile behind
    lines = _text_file_lines(args.argument, dash_is_stdin=True) \
        if args.action == "import" else None
    # no file yet: an empty profile, as the server's stats and forget answer (nothing created)
    exists = path.exists() or args.action == "import"
    model = UserModel(UserStore(path, create=args.action == "import",
                                make_dirs=not args.user_db) if exists else None)
    if args.action == "stats":
        print(json.dumps({**model.stats(), "file": str(path), "exists": exists},
                         ensure_ascii=False, indent=2))
    elif args.action == "export":
        for line in model.export_lines():
            print(line)
    elif args.action == "forget":
        known = model.forget(args.argument)
        print(f"forgot {args.argument}" if known else f"{args.argument}: not learned; nothing "
              "to forget")
    else:
        imported, skipped = model.import_lines(lines or [])
        print(f"imported {counted(imported, 'word')} into {path}"
              + (f"; skipped {counted(skipped, 'line')} (not a word with a count above 0)"
                 if skipped else ""))


# ---------------------------------------------------------------- ibus
def add_ibus(sub) -> None:
    p = sub.add_parser("ibus", help="the input method on a Linux desktop, as an IBus engine")
    p.add_argument("action", nargs="?", choices=["install"],
                   help="install: write the component file that lets ibus-daemon start the "
                        "engine (and say where it must go); without it: run the engine for "
                        "the running ibus-daemon")
    p.add_argument("--model", required=True, help="a model dir")
    p.add_argument("--no-mixture", action="store_true",
                   help="the recurrent model alone, even where `rnn-ime mix` chose the mixture")
    _add_pinyin_options(p, "used in decoding")
    p.add_argument("--ibus", action="store_true",
                   help="started by ibus-daemon (its component file says so): take the "
                        "engine's bus name rather than registering the engine")
    p.add_argument("--log", metavar="FILE",
                   help="append the engine's log to FILE (default: stderr; with --ibus, "
                        "rnn-ime/ibus.log in the cache dir, ~/.cache by default)")
    p.add_argument("--out", metavar="FILE",
                   help="install: where to write the component file (default: "
                        "$XDG_DATA_HOME/rnn-ime/ibus/rnn-ime.xml)")
    _add_user_options(p, learns=True)
    p.set_defaults(func=run_ibus)


def run_ibus(args) -> None:
    from .errors import ConfigError

    fuzzy, word_lists = _fuzzy_option(args.fuzzy), _word_lists(args.lexicon)
    if args.action == "install":
        if args.ibus or args.log:
            raise ConfigError("--ibus and --log go with running the engine, not with install")
        _install_ibus(args, fuzzy, word_lists)
        return
    if args.out:
        raise ConfigError("--out goes with `rnn-ime ibus install`")
    from .fsutil import cache_dir
    from .ibus import NoLearning
    from .ibus.engine import connect, serve, setup_logging  # loads IBus (or IBusMissing)
    from .ibus.learning import ProfileLearner
    from .ibus.ranker import ModelRanker
    from .ime import open_lexicon
    from .ime.lexicon import skipped_note
    from .predict import Predictor

    setup_logging(Path(args.log) if args.log else cache_dir() / "ibus.log" if args.ibus
                  else None)
    bus = connect()  # before the model loads: no daemon, no wait
    import torch

    # One thread: a keystroke's steps are small matrices, and a desktop's other programs want
    # the cores; with two threads on 2 busy cores a 20-letter decode took seconds, not ~20 ms.
    torch.set_num_threads(1)
    predictor = Predictor.from_dir(args.model, mixture=not args.no_mixture)
    lexicon = open_lexicon(predictor.vocab, word_lists)
    lexicon.position  # noqa: B018 — what learning looks words up in, built before the first key
    if note := skipped_note(lexicon):
        _stderr(note)
    profile = _profile(args, predictor.scorer, learns=True)
    ranker = ModelRanker(predictor, lexicon, fuzzy, profile=profile)
    ranker.decode("nihao", "", 9)  # jieba and the lexicon's memo now, not on the first key
    ranker.suggest("你好", 1)
    learner = ProfileLearner(profile, lexicon) if profile is not None else NoLearning()
    try:
        serve(bus, ranker, learner, started_by_ibus=args.ibus,
              say=lambda line: print(line, flush=True))
    finally:
        _close_profile(profile)  # the model's adaptation trained on what waits, and saved


def _install_ibus(args, fuzzy: frozenset[str], word_lists: list[str]) -> None:
    from .ibus.component import INFO, ibus_installed, install

    options = [option for rules in ([",".join(sorted(fuzzy))] if fuzzy else [])
               for option in ("--fuzzy", rules)]
    for path in word_lists:
        options += ["--lexicon", str(Path(path).resolve())]
    if args.no_mixture:
        options.append("--no-mixture")
    if args.user_db:
        options += ["--user-db", str(Path(args.user_db).resolve())]
    options += [flag for flag, on in (("--no-user", args.no_user), ("--no-learn", args.no_learn),
                                      ("--no-adapt", args.no_adapt)) if on]
    done = install(Path(args.model), Path(args.out) if args.out else None, options)
    print(f"wrote {done.path}")
    if done.copy_command:
        print("ibus-daemon reads engines only from /usr/share/ibus/component (IBus has no "
              "per-user place); as root, run:")
        print(f"  {done.copy_command}")
    print(f"then restart IBus (ibus restart) and add {INFO.long_name}: GNOME: Settings → "
          f"Keyboard → Input Sources → + → Chinese → {INFO.long_name}; elsewhere: ibus-setup")
    if not ibus_installed():
        print("note: ibus is not installed here (apt-get install ibus gir1.2-ibus-1.0 "
              "python3-gi)")


# ---------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnn-ime", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (add_prepare, add_train, add_evaluate, add_mix, add_predict, add_explain,
                add_export, add_serve, add_pinyin, add_learn, add_user, add_ibus):
        add(sub)
    return parser


def os_error_line(exc: OSError) -> str:
    """`path: No space left on device`: the file the system refused, and why."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    path = exc.filename2 if exc.filename2 is not None else exc.filename
    if path is None:
        return reason
    return f"{os.fsdecode(path) if isinstance(path, bytes) else path}: {reason}"


def extra_arguments(args: argparse.Namespace) -> list[str]:
    """Arguments a command parsed but takes none of: `user stats extra`, `user export extra`
    (`user`'s optional argument belongs to import and forget only)."""
    if getattr(args, "command", None) == "user" and args.action in ("stats", "export") \
            and args.argument is not None:
        return [args.argument]
    return []


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if extra := extra_arguments(args):  # exit 2 with the usage, as argparse says it
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        check_text_arguments(args)
        args.func(args)
    except RnnImeError as exc:
        _stderr(f"rnn-ime: error: {exc}")
        raise SystemExit(EXIT_USER_ERROR) from None
    except BrokenPipeError:
        raise SystemExit(0) from None
    except OSError as exc:  # a file the system refused (to write, mostly): one line naming it
        _stderr(f"rnn-ime: error: {os_error_line(exc)}")
        raise SystemExit(EXIT_USER_ERROR) from None
    except KeyboardInterrupt:
        _stderr("rnn-ime: interrupted")
        raise SystemExit(EXIT_INTERRUPTED) from None


if __name__ == "__main__":
    main()
