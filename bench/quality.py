"""Prediction quality, reproducibly: every model gets the same training-time budget on the same
data, with more than one seed, and is scored by the same code (metrics.evaluate). Choices are
made on the validation split only; the test split is reported.

- the recurrent cells (and the course's model) side by side, each trained with every --seeds;
- the Kneser-Ney n-grams on the same training split and vocabulary;
- the best cell by validation KSR@5 (mean over seeds) mixed with the KN 4-gram, the weight fitted
  on validation (rnn_ime.mixture), as `rnn-ime mix` does for the main job;
- whether the best cell's lead over the next exceeds the spread between seeds.

Writes docs/results.md (tables, with the command and date in its header), PNG plots beside it
and bench/out/quality.json; the trained models stay in bench/out/quality-models/.

    .venv/bin/python bench/quality.py --seconds 120               # about 25 min on 2 cores
    .venv/bin/python bench/quality.py --seconds 30 --seeds 0 --configs lm-gru 'kn 4-gram'
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import statistics
import sys
from pathlib import Path
from queue import Empty

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, ROOT, ensure_data, machine, write_json  # noqa: E402

from rnn_ime import mixture  # noqa: E402
from rnn_ime.data import DataDir  # noqa: E402
from rnn_ime.metrics import CONTEXT_BUCKETS, evaluate  # noqa: E402
from rnn_ime.modeldir import load  # noqa: E402
from rnn_ime.ngram import NgramScorer  # noqa: E402
from rnn_ime.scoring import NeuralScorer  # noqa: E402
from rnn_ime.train import TrainConfig, Trainer  # noqa: E402

MODELS = OUT / "quality-models"
COURSE = dict(objective="window", seq_len=5, cell="rnn", batch_size=64, embed=128, hidden=256,
              softmax="full", plain_adam=True, lr=1e-3, dropout=0.0)
NEURAL = {
    "course (rnn, window 5)": COURSE,
    "lm-rnn": dict(cell="rnn"),
    "lm-gru": dict(cell="gru"),
    "lm-lstm": dict(cell="lstm"),
    "lm-lstm, 2 layers": dict(cell="lstm", layers=2),
    "lm-lstm, tied, full softmax": dict(cell="lstm", tie_weights=True, softmax="full"),
}
CELLS = ("lm-rnn", "lm-gru", "lm-lstm")  # the candidates for the product's default cell
NGRAMS = {"kn 3-gram": 3, "kn 4-gram": 4}
BASELINE = "kn 4-gram"
MIXTURE = "mixture"
REVIEWS_ONLY = "lm-gru, reviews only"
DEFAULT_CONFIGS = ["course (rnn, window 5)", *CELLS, *NGRAMS, MIXTURE, REVIEWS_ONLY]


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")


def train_and_score(name: str, options: dict, data: str, seconds: float, seed: int, out: str,
                    queue) -> None:
    """In a fresh process: train for `seconds`, then score the best weights on the validation
    split (what choices are made on) and on the test split (what is reported)."""
    shutil.rmtree(out, ignore_errors=True)
    config = TrainConfig(data=data, out=out, time_budget=seconds, epochs=10_000, seed=seed,
                         progress=False, checkpoint_every=10**9,
                         eval_every_seconds=max(seconds / 5, 10), **options)
    summary = Trainer(config, log=lambda *_: None).run()
    model, vocab, _ = load(config.out)
    data_dir = DataDir(data)
    scorer = NeuralScorer(model, vocab)
    valid = evaluate(scorer, data_dir.split("valid"), data_dir.source_names)
    test = evaluate(scorer, data_dir.split("test"), data_dir.source_names)
    size = (Path(config.out) / "best.safetensors").stat().st_size
    queue.put({"name": name, "seed": seed, "options": options, "model_dir": out,
               "valid": valid, **test,
               "train_seconds": summary["train_seconds"],
               "words_per_second": summary["target_words_per_second"],
               "parameters": summary["parameters"], "size_mb": size / 2**20,
               "validation": summary["validation"]})


def run_neural(name: str, options: dict, data: str, seconds: float, seed: int) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    out = str(MODELS / f"{slug(name)}-seed{seed}")
    process = context.Process(target=train_and_score,
                              args=(name, options, data, seconds, seed, out, queue))
    process.start()
    while True:
        try:
            result = queue.get(timeout=5)
            break
        except Empty:
            if not process.is_alive():
                raise SystemExit(f"{name}: the training process failed") from None
    process.join()
    return result


def array_bytes(obj) -> int:
    """Bytes of the NumPy arrays an object holds (its model size)."""
    if hasattr(obj, "nbytes") and hasattr(obj, "dtype"):
        return int(obj.nbytes)
    if isinstance(obj, list | tuple):
        return sum(array_bytes(o) for o in obj)
    if hasattr(obj, "__dict__"):
        return sum(array_bytes(o) for o in vars(obj).values())
    return 0


def run_ngram(name: str, order: int, data: str) -> dict:
    data_dir = DataDir(data)
    scorer = NgramScorer.train(data_dir.split("train"), data_dir.vocab, order)
    size = array_bytes(scorer)
    valid = evaluate(scorer, data_dir.split("valid"), data_dir.source_names)
    result = evaluate(scorer, data_dir.split("test"), data_dir.source_names)
    return {"name": name, "seed": None, "options": {"order": order}, "valid": valid, **result,
            "train_seconds": scorer.train_seconds, "parameters": None, "size_mb": size / 2**20,
            "validation": []}


def pct(value) -> str:
    return "–" if value is None else f"{value:.1%}"


def summarise(runs: list[dict]) -> dict:
    """One row per config: test and validation figures averaged over seeds, with their range."""
    first = runs[0]
    row = {k: first[k] for k in ("name", "options", "parameters", "size_mb", "validation")
           if k in first}
    row["seeds"] = [r["seed"] for r in runs]
    for key in ("perplexity", "top1", "top3", "top5", "ksr1", "ksr5", "train_seconds",
                "words_per_second"):
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            row[key] = statistics.fmean(values)
            row[f"{key}_range"] = (min(values), max(values))
    for key in ("top1", "ksr5", "perplexity"):
        values = [r["valid"][key] for r in runs]
        row[f"valid_{key}"] = statistics.fmean(values)
        row[f"valid_{key}_range"] = (min(values), max(values))
    row["by_context"] = {label: {"top1": statistics.fmean(
        r["by_context"][label]["top1"] for r in runs)} for _, _, label in CONTEXT_BUCKETS}
    row["by_source"] = {source: {k: statistics.fmean(r["by_source"][source][k] for r in runs)
                                 for k in ("perplexity", "top1", "top5")}
                        for source in first.get("by_source", {})}
    row["runs"] = runs
    return row


def spread(row: dict, key: str) -> str:
    low, high = row.get(f"{key}_range", (None, None))
    if low is None or len(row["seeds"]) < 2:
        return pct(row.get(key))
    return f"{row[key]:.1%} ± {(high - low) / 2:.1%}"


def results_table(rows: list[dict]) -> list[str]:
    lines = ["| model | seeds | valid top-1 | valid KSR@5 | test ppl | test top-1 | test top-5 | "
             "test KSR@1 | test KSR@5 | words/s | parameters |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        params = f"{r['parameters'] / 1e6:.1f} M" if r.get("parameters") else "–"
        speed = f"{r['words_per_second']:,.0f}" if r.get("words_per_second") else "–"
        seeds = ", ".join(str(s) for s in r["seeds"] if s is not None) or "–"
        lines.append(f"| {r['name']} | {seeds} | {spread(r, 'valid_top1')} | "
                     f"{spread(r, 'valid_ksr5')} | {r['perplexity']:.1f} | {spread(r, 'top1')} | "
                     f"{spread(r, 'top5')} | {spread(r, 'ksr1')} | {spread(r, 'ksr5')} | "
                     f"{speed} | {params} |")
    return lines


def source_table(rows: list[dict], sources: list[str]) -> list[str]:
    lines = ["| model | " + " | ".join(f"{s}: ppl / top-1 / top-5" for s in sources) + " |",
             "|---|" + "---|" * len(sources)]
    for r in rows:
        cells = []
        for s in sources:
            part = r.get("by_source", {}).get(s)
            cells.append(f"{part['perplexity']:.0f} / {pct(part['top1'])} / {pct(part['top5'])}"
                         if part else "–")
        lines.append(f"| {r['name']} | " + " | ".join(cells) + " |")
    return lines


def context_table(rows: list[dict]) -> list[str]:
    labels = [label for _, _, label in CONTEXT_BUCKETS]
    lines = ["| model | " + " | ".join(f"{label} words" for label in labels) + " |",
             "|---|" + "---|" * len(labels)]
    for r in rows:
        lines.append(f"| {r['name']} | " + " | ".join(
            pct(r["by_context"][label].get("top1")) for label in labels) + " |")
    return lines


def _save_plot(fig, ax, path: Path, xlabel: str, ylabel: str, title: str) -> str:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path.name


def plot(rows: list[dict], docs: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for r in rows:
        for run in r.get("runs", []):
            if run.get("validation"):
                ax.plot([v["train_seconds"] for v in run["validation"]],
                        [100 * v["top1"] for v in run["validation"]], marker="o",
                        label=f"{r['name']} (seed {run['seed']})")
    files = [_save_plot(fig, ax, docs / "quality_valid_top1.png", "training time (s)",
                        "validation top-1 (%)", "Validation top-1 against training time")]

    fig, ax = plt.subplots(figsize=(7, 4.2))
    labels = [label for _, _, label in CONTEXT_BUCKETS]
    for r in rows:
        ax.plot(labels, [100 * (r["by_context"][b].get("top1") or 0) for b in labels],
                marker="o", label=r["name"])
    files.append(_save_plot(fig, ax, docs / "quality_by_context.png",
                            "words of context before the predicted word", "test top-1 (%)",
                            "Accuracy by context length (test split)"))
    plt.close("all")
    return files


def run_mixture(best: dict, data: str) -> dict:
    """The best cell's first seed mixed with the KN 4-gram, one weight per context bucket
    fitted on validation, as `rnn-ime mix` does."""
    run = best["runs"][0]
    model, vocab, _ = load(run["model_dir"])
    data_dir = DataDir(data)
    neural = NeuralScorer(model, vocab)
    ngram = NgramScorer.train(data_dir.split("train"), vocab, NGRAMS[BASELINE])
    record = mixture.fit(neural, ngram, data_dir.split("valid"))
    scorer = mixture.MixtureScorer(neural, ngram, record["weights"])
    valid = evaluate(scorer, data_dir.split("valid"), data_dir.source_names)
    test = evaluate(scorer, data_dir.split("test"), data_dir.source_names)
    name = f"{best['name']} (seed {run['seed']}) + {BASELINE}, weights by context"
    row = summarise([{"name": name, "seed": run["seed"], "options": {"fit": record},
                      "valid": valid, **test, "parameters": None, "size_mb": None,
                      "validation": []}])
    return {**row, "kind": "mixture"}


def mixture_section(mixed: dict, baseline: dict) -> list[str]:
    fit = mixed["options"]["fit"]
    labels = fit["buckets"]
    grid = list(fit["by_bucket"][labels[0]])
    lines = ["## The mixture against the n-gram", "",
             "Validation top-1 + KSR@5 of (1 − λ)·p_model + λ·p_kn for each λ, by words of "
             f"context (`rnn_ime.mixture.fit`, {mixture.FIT_WORDS:,} validation words asked for, "
             "evenly spaced passages); the λ kept in each row is the best one there, except at 0 "
             "words of context, where it is the λ of lowest validation loss:", "",
             "| words of context | words | " + " | ".join(f"λ {w}" for w in grid) + " | kept |",
             "|---|---|" + "---|" * len(grid) + "---|"]
    for label, weight in zip(labels, fit["weights"], strict=True):
        curve = fit["by_bucket"][label]
        lines.append(f"| {label} | {curve[grid[0]]['words']:,} | " + " | ".join(
            pct(curve[w]["top1"] + curve[w].get("ksr5", 0)) for w in grid) + f" | {weight:g} |")
    lines += ["", "| on validation | ppl | top-1 | top-5 | KSR@1 | KSR@5 |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {name} | {r['perplexity']:.1f} | {pct(r['top1'])} | {pct(r['top5'])} | "
              f"{pct(r.get('ksr1'))} | {pct(r.get('ksr5'))} |"
              for name, r in fit["validation"].items()]
    lines += ["", f"Test, against {BASELINE}: top-1 {mixed['top1'] / baseline['top1']:.2f}×, "
              f"KSR@1 {mixed['ksr1'] / baseline['ksr1']:.2f}×, "
              f"KSR@5 {mixed['ksr5'] / baseline['ksr5']:.2f}×, perplexity "
              f"{mixed['perplexity']:.1f} against {baseline['perplexity']:.1f}.", ""]
    return lines


def lead_over_spread(rows: list[dict]) -> str:
    """Does the best cell's validation KSR@5 lead exceed the spread between seeds?"""
    ranked = sorted(rows, key=lambda r: r["valid_ksr5"], reverse=True)
    if len(ranked) < 2:
        return ""
    best, second = ranked[0], ranked[1]
    low_best = best["valid_ksr5_range"][0]
    high_second = second["valid_ksr5_range"][1]
    lead = best["valid_ksr5"] - second["valid_ksr5"]
    verdict = ("exceeds the spread: every seed of the best is above every seed of the next"
               if low_best > high_second else
               "is within the spread between seeds: the two are not told apart by this run")
    return (f"Validation KSR@5: {best['name']} {best['valid_ksr5']:.2%} against "
            f"{second['name']} {second['valid_ksr5']:.2%} (mean of seeds {best['seeds']}); the "
            f"lead of {lead * 100:.2f} points {verdict}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/default",
                        help="data dir (prepared from the default corpus when missing)")
    parser.add_argument("--reviews-data", default="data/reviews",
                        help="reviews-only data dir for the more-text comparison")
    parser.add_argument("--seconds", type=float, default=120, help="training time per model")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1],
                        help="every recurrent config is trained once per seed")
    parser.add_argument("--configs", nargs="+", default=None,
                        help=f"subset of: {', '.join([*NEURAL, *NGRAMS, MIXTURE, REVIEWS_ONLY])}")
    parser.add_argument("--docs", default=str(ROOT / "docs"))
    parser.add_argument("--reuse", action="store_true",
                        help="take the rows of the last run (bench/out/quality.json) that were "
                             "made with the same --seconds and seeds instead of training them "
                             "again (the mixture is always fitted anew)")
    args = parser.parse_args()
    previous = {}
    if args.reuse and (OUT / "quality.json").is_file():
        last = json.loads((OUT / "quality.json").read_text())
        if (last["seconds"], last["seeds"], last.get("data")) == (args.seconds, args.seeds,
                                                                   args.data):
            previous = {r["name"]: r for r in last["results"] if r.get("kind") != "mixture"}
    command = "python bench/quality.py " + " ".join(
        f"'{a}'" if " " in a else a for a in sys.argv[1:])
    data = str(ensure_data(Path(args.data), ["embedded"], 3, None))
    wanted = args.configs or DEFAULT_CONFIGS
    unknown = [n for n in wanted if n not in {*NEURAL, *NGRAMS, MIXTURE, REVIEWS_ONLY}]
    if unknown:
        raise SystemExit(f"unknown configs: {unknown}")
    rows, extra = [], []
    for name in wanted:
        if name in previous and name != REVIEWS_ONLY:
            print(f"… {name}: the last run's row", flush=True)
            rows.append(previous[name])
        elif name in NGRAMS:
            print(f"… {name}", flush=True)
            rows.append(summarise([run_ngram(name, NGRAMS[name], data)]))
        elif name in NEURAL:
            runs = []
            for seed in args.seeds:
                print(f"… {name}, seed {seed}", flush=True)
                runs.append(run_neural(name, NEURAL[name], data, args.seconds, seed))
                r = runs[-1]
                print(f"  valid top-1 {r['valid']['top1']:.1%} KSR@5 {pct(r['valid'].get('ksr5'))}"
                      f" · test top-1 {r['top1']:.1%} KSR@5 {pct(r.get('ksr5'))}", flush=True)
            rows.append(summarise(runs))
    cells = [r for r in rows if r["name"] in CELLS]
    best = max(cells, key=lambda r: r["valid_ksr5"]) if cells else None
    if MIXTURE in wanted and best:
        print(f"… {best['name']} mixed with {BASELINE} (weight fitted on validation)", flush=True)
        rows.append(run_mixture(best, data))
    if REVIEWS_ONLY in wanted:
        print(f"… {REVIEWS_ONLY}", flush=True)
        reviews = str(ensure_data(Path(args.reviews_data), ["embedded:reviews"], 3, None))
        row = previous.get(REVIEWS_ONLY) or summarise([run_neural(
            REVIEWS_ONLY, NEURAL["lm-gru"], reviews, args.seconds, args.seeds[0])])
        # one source: evaluate gives no by-source figures; they are the whole split's
        row["by_source"] = {"reviews": {k: row[k] for k in ("perplexity", "top1", "top5")}}
        extra.append(row)
    for r in rows + extra:
        print(f"{r['name']:<48} valid top-1 {spread(r, 'valid_top1'):>14} · test top-1 "
              f"{spread(r, 'top1'):>14} KSR@5 {spread(r, 'ksr5'):>14}")
    docs = Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    figures = plot(rows, docs)
    source_names = DataDir(data).source_names
    manifest = DataDir(data).manifest
    baseline = next((r for r in rows if r["name"] == BASELINE), None)
    m = machine()
    test = manifest["splits"]["test"]
    dedup = "; ".join(f"{s['name']}: {s['duplicates_dropped']:,} duplicates and "
                      f"{s.get('near_duplicates_dropped', 0):,} near-duplicates dropped"
                      for s in manifest["sources"])
    lines = [
        "# Prediction quality: recurrent models against a Kneser-Ney baseline",
        "",
        f"Produced by `{command}` on {m['date']} ({m['cpu_count']} CPU cores, "
        f"{m['torch_threads']} torch threads, torch {m['torch']}). Training stops on wall time, "
        "so a busier machine trains fewer steps (the words/s column shows it).",
        "",
        f"Data: `{data}` — sources {', '.join(source_names)}, split by document (a news article "
        f"keeps its paragraphs together); {dedup}. Vocabulary {manifest['vocab']['size']:,} "
        f"(training words seen ≥ {manifest['vocab']['min_count']} times); test split "
        f"{test['words']:,} words, {test['unknown_words'] / test['words']:.1%} of them outside "
        "the vocabulary (always a miss: `<unk>` is never suggested).",
        "",
        f"Every recurrent model trained for {args.seconds:.0f} s per seed (training steps, data "
        "loading included; validation excluded); its best weights by validation loss are scored "
        "on the validation split (where choices are made) and on the test split (reported). "
        "'± x' is half the range over the seeds. The n-grams are trained on the same training "
        "split with the same vocabulary. KSR@k: keystroke savings with k suggestions shown "
        "before each word (pinyin letters + 1 to commit, against 1 key for a hit).",
        "",
        *results_table(rows),
        "",
    ]
    if best:
        lines += [f"**Chosen on validation: {best['name']}** (best mean validation KSR@5 of "
                  f"{', '.join(r['name'] for r in cells)}). " + lead_over_spread(cells), ""]
    mixed = next((r for r in rows if r.get("kind") == "mixture"), None)
    if mixed and baseline:
        lines += mixture_section(mixed, baseline)
    lines += ["## By source", "", *source_table(rows + extra, source_names), "",
              f"The row '{REVIEWS_ONLY}' is the GRU trained as long on the reviews alone and "
              "scored on the reviews test passages: the effect of more text of other kinds.", "",
              "## Top-1 by words of context", "", *context_table(rows), "",
              "## Plots", ""]
    lines += [f"![{f}]({f})" for f in figures]
    (docs / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_json("quality.json", {"command": command, "machine": m, "seconds": args.seconds,
                                "data": args.data,
                                "seeds": args.seeds, "chosen": best["name"] if best else None,
                                "results": rows + extra})
    print(f"wrote {docs / 'results.md'}")


if __name__ == "__main__":
    main()
