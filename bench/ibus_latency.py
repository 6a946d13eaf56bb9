"""Keystroke latency of the IBus engine, through a real ibus-daemon, beside the same key
handling in process.

    .venv/bin/python bench/ibus_latency.py --model models/default
    .venv/bin/python bench/ibus_latency.py --model models/default --inputs 10   # quicker

A private dbus-daemon and ibus-daemon are started (rnn_ime.ibus.harness: no X server, no
panel), the engine on them by hand (`rnn-ime ibus --model M`, one torch thread, as it always
runs), and an input context of this process's is driven through IBus's client API, as an
application's toolkit drives it. Inputs: the sentences of bench/data/outside.txt as tone-less
pinyin, cut to --letters letters, typed one key at a time into an empty field (Esc between
them). Each input is typed twice in turn, so that a busy machine slows both alike:

    ibus        a key event sent to ibus-daemon → the engine decodes → the client has the new
                lookup table (the time its update-lookup-table signal is dispatched here;
                a key that leaves the table as it was counts when its reply comes)
    in-process  the engine's Machine.key with the same model in this process: the decoding
                and key handling alone, without D-Bus, the daemon or GObject

Reported: p50/p99 of the keystroke that types the last letter (`--letters`, 20 by default)
and over all keystrokes, in milliseconds. Prints a table and writes
bench/out/ibus_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, ROOT, machine, print_table  # noqa: E402

from rnn_ime.ibus import Machine, NoLearning, keys  # noqa: E402
from rnn_ime.ibus.harness import Client, missing, start_engine, start_ibus  # noqa: E402
from rnn_ime.ibus.ranker import ModelRanker  # noqa: E402
from rnn_ime.ime.lexicon import HAN  # noqa: E402
from rnn_ime.predict import Predictor  # noqa: E402

SENTENCES = ROOT / "bench" / "data" / "outside.txt"


def inputs(count: int, length: int) -> list[str]:
    """Pinyin of the bench's own sentences, `length` letters each (the last syllable may be
    cut), at most `count`."""
    from pypinyin import Style, lazy_pinyin

    out = []
    for line in SENTENCES.read_text(encoding="utf-8").splitlines():
        han = "".join(HAN.findall(line))
        letters = "".join(lazy_pinyin(han, style=Style.NORMAL, errors="ignore")).replace("ü",
                                                                                          "v")
        if len(letters) >= length:
            out.append(letters[:length])
    return out[:count]


def type_through_ibus(client: Client, letters: str) -> list[float]:
    """Milliseconds from each key event to the client's new lookup table."""
    release = int(client.IBus.ModifierType.RELEASE_MASK)
    times = []
    for char in letters:
        before = len(client.tables)
        started = time.perf_counter()
        client.ic.process_key_event(ord(char), 0, 0)
        answered = time.perf_counter()
        client.pump(0)  # the signals came before the reply: they are queued here now
        arrived = client.tables[-1][0] if len(client.tables) > before else answered
        times.append((arrived - started) * 1000)
        client.ic.process_key_event(ord(char), 0, release)
    client.key(keys.ESCAPE)
    client.wait(lambda: client.tables and not client.tables[-1][3])
    client.clear()
    return times


def type_in_process(engine: Machine, letters: str) -> list[float]:
    times = []
    for char in letters:
        started = time.perf_counter()
        engine.key(ord(char), 0)
        times.append((time.perf_counter() - started) * 1000)
    engine.key(keys.ESCAPE, 0)
    return times


def summary(name: str, runs: list[list[float]]) -> dict:
    last = [run[-1] for run in runs]
    every = [t for run in runs for t in run]
    return {"variant": name, "inputs": len(runs), "keystrokes": len(every),
            "p50_last_ms": float(np.percentile(last, 50)),
            "p99_last_ms": float(np.percentile(last, 99)),
            "p50_all_ms": float(np.percentile(every, 50)),
            "p99_all_ms": float(np.percentile(every, 99)), "max_ms": float(max(every))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "default"))
    parser.add_argument("--inputs", type=int, default=30, help="sentences typed (at most 42)")
    parser.add_argument("--letters", type=int, default=20, help="letters typed per input")
    parser.add_argument("--warmup", type=int, default=2, help="inputs typed first, untimed")
    parser.add_argument("--out", default=str(OUT / "ibus_latency.json"))
    args = parser.parse_args()
    if why := missing():
        raise SystemExit(f"bench/ibus_latency.py: {why}")
    torch.set_num_threads(1)
    typed = inputs(args.inputs + args.warmup, args.letters)
    with tempfile.TemporaryDirectory(prefix="rnn-ime-ibus-") as root:
        ibus = start_ibus(Path(root))
        engine_process = None
        try:
            started = time.perf_counter()
            # a profile of its own that learns nothing: the bench never touches the user's
            engine_process = start_engine(Path(args.model), ibus.env, (
                "--user-db", str(Path(root) / "user.db"), "--no-learn"))
            startup = time.perf_counter() - started
            os.environ.update(ibus.env)
            client = Client("bench")
            client.use_engine("rnn-ime")
            engine = Machine(ModelRanker(Predictor.from_dir(args.model)), NoLearning())
            runs: dict[str, list[list[float]]] = {"ibus": [], "in-process": []}
            for index, letters in enumerate(typed):
                through = type_through_ibus(client, letters)
                alone = type_in_process(engine, letters)
                if index >= args.warmup:
                    runs["ibus"].append(through)
                    runs["in-process"].append(alone)
        finally:
            if engine_process is not None:
                engine_process.terminate()
                engine_process.wait(timeout=10)
            ibus.stop()
    rows = [summary(name, found) for name, found in runs.items()]
    print(f"{args.model}: {len(runs['ibus'])} inputs of {args.letters} letters "
          f"(the engine started in {startup:.1f} s)")
    print_table(rows, [("variant", "variant", "s"), ("keystrokes", "keys", "d"),
                       ("p50_last_ms", f"p50@{args.letters} ms", ".1f"),
                       ("p99_last_ms", f"p99@{args.letters} ms", ".1f"),
                       ("p50_all_ms", "p50 all ms", ".1f"), ("p99_all_ms", "p99 all ms", ".1f"),
                       ("max_ms", "max ms", ".1f")])
    payload = {"model": args.model, "letters": args.letters, "warmup": args.warmup,
               "engine_startup_s": round(startup, 2), "rows": rows, "machine": machine()}
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
