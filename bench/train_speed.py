"""Training speed: the original course configuration against ours, side by side, one run.

For each configuration, in a fresh process (so peak memory is its own), on the same data:
train for the same wall time, then validate. Reports target words per second, seconds per
epoch, peak memory, the fraction of each step spent waiting for data, the fraction of the
float32 matmul rate (measured in the same run) that the steps reach, and validation top-1/top-5.

    .venv/bin/python bench/train_speed.py                 # 50,000-word vocabulary, 240 s each
    .venv/bin/python bench/train_speed.py --seconds 60    # a quick look
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import tempfile
from pathlib import Path
from queue import Empty

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, ensure_data, machine, matmul_gflops, print_table, write_json  # noqa: E402

from rnn_ime.train import TrainConfig, Trainer  # noqa: E402

CONFIGS = {
    # the course project: window of 5, batch 64, emb 128, hidden 256, one nn.RNN layer,
    # full softmax, plain Adam at 1e-3, no dropout
    "course": dict(objective="window", seq_len=5, cell="rnn", batch_size=64, embed=128,
                   hidden=256, softmax="full", plain_adam=True, lr=1e-3, dropout=0.0),
    # ours: the defaults of `rnn-ime train`
    "ours": {},
    # ours with larger batches (for a GPU, where batch 64 leaves it mostly idle)
    "ours-b512": dict(batch_size=512, lr=4e-3),
}


def flops_per_target_word(trainer: Trainer) -> float:
    """Forward + backward FLOPs of one real training batch, per target word."""
    _, batches = trainer.epoch_batches(0, 0)
    inputs, targets = (t.to(trainer.device) for t in next(iter(batches)))
    counter = FlopCounterMode(display=False)
    with counter:
        loss, _ = trainer.loss_of_batch(inputs, targets, None)
        loss.backward()
    trainer.optimizer.zero_grad(set_to_none=True)
    return counter.get_total_flops() / targets.numel()


def run_config(name: str, options: dict, data: str, seconds: float, threads: int,
               queue) -> None:
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(data=data, out=str(Path(out) / name), time_budget=seconds,
                             epochs=10_000, progress=False, checkpoint_every=10**9,
                             patience=10**6, **options)
        trainer = Trainer(config, log=lambda *_: None)
        flops = flops_per_target_word(trainer)
        summary = trainer.run()
        last = summary["validation"][-1]
        words = trainer.data.manifest["splits"]["train"]["words"]
        speed = summary["target_words_per_second"]
        queue.put({
            "config": name, "options": options,
            "parameters": summary["parameters"],
            "softmax": trainer.model_config.softmax,
            "target_words_per_second": speed,
            "seconds_per_epoch": words / max(speed, 1e-9),
            "epochs": summary["target_words"] / words,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_gpu_mb": (torch.cuda.max_memory_allocated() / 2**20
                            if torch.cuda.is_available() else None),
            "device": str(trainer.device),
            "data_wait_fraction": summary["data_wait_fraction"],
            "mflop_per_target_word": flops / 1e6,
            "train_seconds": summary["train_seconds"],
            "valid_top1": last["top1"], "valid_top5": last["top5"],
            "valid_perplexity": last["perplexity"],
        })


def _result_of(process, queue) -> dict:
    """Wait for the child's result; fail (instead of hanging) when it died."""
    while True:
        try:
            return queue.get(timeout=5)
        except Empty:
            if not process.is_alive():
                raise SystemExit(f"the benchmark process failed (exit code {process.exitcode})"
                                 ) from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a prepared data dir (default: the embedded corpora "
                                       "with a 50,000-word vocabulary, prepared on first use)")
    parser.add_argument("--max-vocab", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=240, help="training time per config")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--configs", nargs="+", default=["course", "ours"],
                        choices=list(CONFIGS))
    args = parser.parse_args()
    data = args.data or str(ensure_data(OUT / f"data-embedded-{args.max_vocab}", ["embedded"],
                                        1, args.max_vocab))
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    peak = matmul_gflops(device=device)
    context = multiprocessing.get_context("spawn")
    rows: list[dict] = []

    def save(partial: bool) -> Path:
        return write_json("train_speed.json", {"machine": machine(), "data": data,
                                               "matmul_gflops": peak, "seconds": args.seconds,
                                               "partial": partial, "results": rows})

    for name in args.configs:
        queue = context.Queue()
        process = context.Process(target=run_config, args=(name, CONFIGS[name], data,
                                                            args.seconds, args.threads, queue))
        process.start()
        rows.append(_result_of(process, queue))
        process.join()
        row = rows[-1]  # as each config ends, so that a run cut short still leaves figures
        print(f"{name}: {row['target_words_per_second']:,.0f} target words/s, validation "
              f"top-1 {row['valid_top1']:.1%}", file=sys.stderr, flush=True)
        save(partial=True)
    for row in rows:
        row["matmul_fraction"] = (row["mflop_per_target_word"] * 1e6
                                  * row["target_words_per_second"] / (peak * 1e9))
    base = rows[0]["target_words_per_second"]
    for row in rows:
        row["speedup"] = row["target_words_per_second"] / base
    print(f"data: {data} · {device} · float32 matmul rate: {peak:.0f} GFLOP/s · "
          f"{args.threads} threads · "
          f"{args.seconds:.0f} s of training per config")
    print_table(rows, [("config", "config", ""), ("softmax", "softmax", ""),
                       ("target_words_per_second", "words/s", ",.0f"),
                       ("speedup", "speed-up", ".1f"),
                       ("seconds_per_epoch", "s/epoch", ",.0f"), ("epochs", "epochs", ".2f"),
                       ("peak_rss_mb", "peak MB", ",.0f"), ("peak_gpu_mb", "GPU MB", ",.0f"),
                       ("data_wait_fraction", "data wait", ".1%"),
                       ("mflop_per_target_word", "MFLOP/word", ".1f"),
                       ("matmul_fraction", "of matmul", ".0%"),
                       ("valid_top1", "val top-1", ".1%"), ("valid_top5", "val top-5", ".1%"),
                       ("valid_perplexity", "val ppl", ".0f")])
    path = save(partial=False)
    print(f"wrote {path.relative_to(OUT.parent.parent)}")


if __name__ == "__main__":
    main()
