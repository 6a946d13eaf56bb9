"""Prediction quality, reproducibly: every model gets the same training-time budget on the same
data, then is scored on the same test split by the same code (metrics.evaluate).

Writes docs/results.md (tables, with the command and date in its header), PNG plots beside it
(validation top-1 against training time; accuracy by context length) and bench/out/quality.json.

    .venv/bin/python bench/quality.py                  # 150 s of training per model
    .venv/bin/python bench/quality.py --seconds 30 --configs lm-lstm 'kn 4-gram'   # a quick look
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
from pathlib import Path
from queue import Empty

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, ROOT, ensure_data, machine, write_json  # noqa: E402

from rnn_ime.data import DataDir  # noqa: E402
from rnn_ime.metrics import CONTEXT_BUCKETS, evaluate  # noqa: E402
from rnn_ime.modeldir import load  # noqa: E402
from rnn_ime.ngram import NgramScorer  # noqa: E402
from rnn_ime.scoring import NeuralScorer  # noqa: E402
from rnn_ime.train import TrainConfig, Trainer  # noqa: E402

COURSE = dict(objective="window", seq_len=5, cell="rnn", batch_size=64, embed=128, hidden=256,
              softmax="full", plain_adam=True, lr=1e-3, dropout=0.0)
NEURAL = {
    "course (rnn, window 5)": COURSE,
    "lm-rnn": dict(cell="rnn"),
    "lm-gru (default)": dict(cell="gru"),
    "lm-lstm": dict(cell="lstm"),
    "lm-lstm, 2 layers": dict(cell="lstm", layers=2),
    "lm-lstm, tied, full softmax": dict(cell="lstm", tie_weights=True, softmax="full"),
}
NGRAMS = {"kn 3-gram": 3, "kn 4-gram": 4}
REVIEWS_ONLY = "lm-gru (default), reviews only"


def train_and_score(name: str, options: dict, data: str, seconds: float, queue) -> None:
    """In a fresh process: train for `seconds`, then score the best weights on the test split."""
    with __import__("tempfile").TemporaryDirectory() as out:
        config = TrainConfig(data=data, out=str(Path(out) / "m"), time_budget=seconds,
                             epochs=10_000, progress=False, checkpoint_every=10**9,
                             eval_every_seconds=max(seconds / 5, 10), **options)
        summary = Trainer(config, log=lambda *_: None).run()
        model, vocab, _ = load(config.out)
        data_dir = DataDir(data)
        result = evaluate(NeuralScorer(model, vocab), data_dir.split("test"),
                          data_dir.source_names)
        size = (Path(config.out) / "best.safetensors").stat().st_size
        queue.put({"name": name, "options": options, **result,
                   "train_seconds": summary["train_seconds"],
                   "words_per_second": summary["target_words_per_second"],
                   "parameters": summary["parameters"], "size_mb": size / 2**20,
                   "validation": summary["validation"]})


def run_neural(name: str, options: dict, data: str, seconds: float) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=train_and_score, args=(name, options, data, seconds, queue))
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
    result = evaluate(scorer, data_dir.split("test"), data_dir.source_names)
    return {"name": name, "options": {"order": order}, **result,
            "train_seconds": scorer.train_seconds, "parameters": None, "size_mb": size / 2**20,
            "validation": []}


def pct(value) -> str:
    return "–" if value is None else f"{value:.1%}"


def results_table(rows: list[dict]) -> list[str]:
    lines = ["| model | test ppl | top-1 | top-3 | top-5 | KSR@5 | training | words/s | "
             "parameters | size |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        params = f"{r['parameters'] / 1e6:.1f} M" if r.get("parameters") else "–"
        speed = f"{r['words_per_second']:,}" if r.get("words_per_second") else "–"
        lines.append(f"| {r['name']} | {r['perplexity']:.1f} | {pct(r['top1'])} | "
                     f"{pct(r['top3'])} | {pct(r['top5'])} | {pct(r.get('ksr5'))} | "
                     f"{r['train_seconds']:.1f} s | {speed} | {params} | "
                     f"{r['size_mb']:.1f} MB |")
    return lines


def source_table(rows: list[dict], sources: list[str]) -> list[str]:
    lines = ["| model | " + " | ".join(f"{s}: ppl / top-1 / top-5" for s in sources) + " |",
             "|---|" + "---|" * len(sources)]
    for r in rows:
        cells = []
        for s in sources:
            part = r.get("by_source", {}).get(s)
            cells.append(f"{part['perplexity']:.0f} / {pct(part['top1'])} / {pct(part['top5'])}"
                         if part and part.get("words") else "–")
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
        if r["validation"]:
            ax.plot([v["train_seconds"] for v in r["validation"]],
                    [100 * v["top1"] for v in r["validation"]], marker="o", label=r["name"])
    for r, style in zip([r for r in rows if not r["validation"]], ["--", ":", "-."],
                        strict=False):
        ax.axhline(100 * r["top1"], linestyle=style, linewidth=1, color="grey",
                   label=f"{r['name']} (test top-1)")
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

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/default",
                        help="data dir (prepared from the default corpus when missing)")
    parser.add_argument("--reviews-data", default="data/reviews",
                        help="reviews-only data dir for the more-text comparison")
    parser.add_argument("--seconds", type=float, default=150, help="training time per model")
    parser.add_argument("--configs", nargs="+", default=None,
                        help=f"subset of: {', '.join([*NEURAL, *NGRAMS, REVIEWS_ONLY])}")
    parser.add_argument("--docs", default=str(ROOT / "docs"))
    parser.add_argument("--update", action="store_true",
                        help="rerun only --configs and keep the other rows of the last run "
                             "(bench/out/quality.json)")
    args = parser.parse_args()
    command = "python bench/quality.py " + " ".join(
        f"'{a}'" if " " in a else a for a in sys.argv[1:])
    previous = json.loads((OUT / "quality.json").read_text()) if args.update else None
    if previous and previous["seconds"] != args.seconds:
        raise SystemExit(f"--update needs the last run's --seconds {previous['seconds']}")
    data = str(ensure_data(Path(args.data), ["embedded"], 3, None))
    wanted = args.configs or [*NEURAL, *NGRAMS, REVIEWS_ONLY]
    rows = []
    for name in wanted:
        print(f"… {name}", flush=True)
        if name in NGRAMS:
            rows.append(run_ngram(name, NGRAMS[name], data))
        elif name in NEURAL:
            rows.append(run_neural(name, NEURAL[name], data, args.seconds))
        elif name == REVIEWS_ONLY:
            reviews = str(ensure_data(Path(args.reviews_data), ["embedded:reviews"], 3, None))
            row = run_neural(name, NEURAL["lm-gru (default)"], reviews, args.seconds)
            row["by_source"] = {"reviews": {k: row[k] for k in ("words", "perplexity", "top1",
                                                                 "top5")}}
            rows.append(row)
        else:
            raise SystemExit(f"unknown config {name!r}")
        r = rows[-1]
        print(f"  test ppl {r['perplexity']:.1f} · top-1 {r['top1']:.1%} · top-5 "
              f"{r['top5']:.1%} · KSR@5 {pct(r.get('ksr5'))}", flush=True)
    commands = [command]
    if previous:
        commands = [*previous.get("commands", [previous["command"]]), command]
        rerun = {r["name"]: r for r in rows}
        rows = [rerun.pop(r["name"], r) for r in previous["results"]] + list(rerun.values())
    docs = Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    figures = plot(rows, docs)
    sources = DataDir(data).source_names
    manifest = DataDir(data).manifest
    on_default = [r for r in rows if r["name"] != REVIEWS_ONLY]
    neural = [r for r in on_default if r.get("parameters")]
    ngram = [r for r in on_default if not r.get("parameters")]
    best_neural = max(neural, key=lambda r: r["top1"]) if neural else None
    best_ngram = max(ngram, key=lambda r: r["top1"]) if ngram else None
    m = machine()
    lines = [
        "# Prediction quality: recurrent models against a Kneser-Ney baseline",
        "",
        "Produced by " + ", then ".join(f"`{c}`" for c in commands)
        + f" (the last on {m['date']}; {m['cpu_count']} CPU cores, "
        f"{m['torch_threads']} torch threads, torch {m['torch']}). A `--update` run retrains "
        "only the models it names and keeps the other rows. Rerunning gives the same within "
        "noise, on a quiet machine: training stops on wall time, so a busier machine trains "
        "fewer steps (the words/s column shows it).",
        "",
        f"Data: `{data}` — sources {', '.join(sources)}; vocabulary "
        f"{manifest['vocab']['size']:,} (training words seen ≥ {manifest['vocab']['min_count']} "
        f"times); test split {manifest['splits']['test']['words']:,} words, "
        f"{manifest['splits']['test']['unknown_words'] / manifest['splits']['test']['words']:.1%}"
        " of them outside the vocabulary (always a miss: `<unk>` is never suggested).",
        "",
        f"Every recurrent model trained for {args.seconds:.0f} s (training steps, data loading "
        "included; validation excluded), the best weights by validation loss scored on the test "
        "split; the n-gram models are trained on the same training split with the same "
        "vocabulary. KSR@5: keystroke savings when the 5 suggestions are shown before each word "
        "(pinyin letters + 1 to commit, against 1 key for a hit).",
        "",
        *results_table(rows),
        "",
    ]
    if best_neural and best_ngram:
        verdict = ("beats" if best_neural["top1"] > best_ngram["top1"] else "does not beat")
        lines += [f"**Best recurrent model: {best_neural['name']}**, test top-1 "
                  f"{pct(best_neural['top1'])}, top-5 {pct(best_neural['top5'])}, perplexity "
                  f"{best_neural['perplexity']:.1f}: it {verdict} the best n-gram "
                  f"({best_ngram['name']}, top-1 {pct(best_ngram['top1'])}, perplexity "
                  f"{best_ngram['perplexity']:.1f}) on top-1 accuracy.", ""]
    lines += ["## By source", "", *source_table(rows, sources), "",
              f"The row '{REVIEWS_ONLY}' is the same model and budget trained on the reviews "
              "alone and scored on the same reviews test passages: the effect of more text.", "",
              "## Top-1 by words of context", "", *context_table(on_default), "",
              "## Plots", ""]
    lines += [f"![{f}]({f})" for f in figures]
    (docs / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_json("quality.json", {"command": command, "commands": commands, "machine": m,
                                "seconds": args.seconds, "results": rows})
    print(f"wrote {docs / 'results.md'}")


if __name__ == "__main__":
    main()
