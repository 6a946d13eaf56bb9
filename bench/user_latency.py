"""What learning costs: a commit learned, a profile opened, and suggestions and pinyin with a
profile beside the same model without one, side by side in one run (one CPU thread).

- learn: `Profile.learn` of a commit (a clause of the test text), into an SQLite file, p50/p99:
  the counts alone (--no-adapt) and with the model adapting, back to back (the adaptation's
  steps wait for a pause), and with a pinyin decoding between commits, as a typist's next
  composition (which leaves the caches colder), the adapting profile's step taken there too
  (its time, in the background, a row of its own);
- open: a profile of `--profile-words` learned words (from the vocabulary, with made words
  among them), with `--commits` commits of ten random words typed (their bigrams and trigrams)
  and the measured texts typed 20 times each (so their contexts have rows to mix), opened
  from its file, the best of 3;
- suggest / pinyin: the served path (the base context cache, then the user's mixing) for the
  same inputs with the big profile and with none, alternating, p50/p99 and the ratio; the big
  profile's copy of the model has adapted to its commits, so it reads contexts itself;
- suggestions and pinyin right after a commit, a passage typed clause by clause with the big
  profile (the user model mixes anew after each commit): counts only, model adapting (a pause
  after each commit: the step, then the last context read again), and the worst case, while
  the adaptation's step on the commit before runs (the product waits for a pause); each
  against the same rankings after the same passages with no profile, in turn, the context
  cache holding only the passage before the commit (new text is never read before).

    .venv/bin/python bench/user_latency.py --model models/default
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, machine, print_table  # noqa: E402

from rnn_ime.ime import DecoderSettings, decode, open_lexicon  # noqa: E402
from rnn_ime.predict import ContextReader, Predictor, suggestions_of  # noqa: E402
from rnn_ime.user import LearnOptions, Profile, UserModel, UserStore, adaptation  # noqa: E402
from rnn_ime.vocab import SPECIALS  # noqa: E402

TEXTS = ["这家酒店的服务很好，房间也很干净", "我们明天一起去北京看看", "经济发展的速度越来越快",
         "今天下午的会议改到三点", "这本书的内容安排得很合理", "价格不贵，早餐也不错"]
PINYIN = ["zhegejiudianfuwuhenhao", "womenmingtianqubeijing", "jingjifazhandesudu",
          "jintianxiawukaihui", "zhebenshudeneirong", "jiagebuguizaocanbucuo"]


def percentiles(times: list[float]) -> dict:
    return {"p50_ms": float(np.percentile(times, 50)) * 1000,
            "p99_ms": float(np.percentile(times, 99)) * 1000, "runs": len(times)}


def big_profile(path: Path, vocab, words: int, commits: int, seed: int) -> None:
    """A profile of `words` distinct learned words: vocabulary words, and made words (three
    characters of the vocabulary joined) for the rest; then `commits` commits of ten random
    vocabulary words (bigrams and trigrams)."""
    rng = random.Random(seed)
    pool = [w for w in vocab.words[len(SPECIALS):] if w.strip()]
    chars = [w for w in pool if len(w) == 1 and "\u4e00" <= w <= "\u9fff"]
    lines = [f"{w}\t{rng.randint(1, 5)}" for w in pool[:words]]
    from rnn_ime.ime.lexicon import word_readings

    while len(lines) < words:
        word = rng.choice(chars) + rng.choice(chars) + rng.choice(chars)
        reading = word_readings(word, limit=1)
        if reading:
            lines.append(f"{word}\t1\t{chr(39).join(reading[0])}")
    model = UserModel(UserStore(path))
    model.import_lines(lines)
    for _ in range(commits):
        model.learn_words(rng.choices(pool[:words], k=10))
    model.store.close()


def typed_passages(runs: int) -> list[tuple[str, str, str, str]]:
    """A passage typed clause by clause, `runs` commits: (the clause committed, the passage
    before it, the passage after it, the letters of the next composition)."""
    clauses = [c for t in TEXTS for c in t.split("，")]
    typed, passage = [], ""
    for i in range(runs):
        clause = clauses[i % len(clauses)]
        after = clause if len(passage) > 40 else passage + clause + "，"
        typed.append((clause, passage, after, PINYIN[i % len(PINYIN)]))
        passage = after
    return typed


def after_commits(profile: Profile, predictor: Predictor, reader: ContextReader, lexicon,
                  runs: int, step_at_once: bool = False) -> dict[str, dict]:
    """Each clause of `typed_passages` committed, then, timed after the passage so far, the
    suggestions shown after the commit and the next composition's first decoding (the user
    model mixes anew after each commit), with the profile and, on the same passage, with none,
    in turn first: {"suggest" / "pinyin", with the profile or "… plain": percentiles}. Before
    each, the context cache holds the passage before the commit and nothing else, as when a
    person types new text (the composition before read it). With the model adapting, a pause
    follows (its step, then the last context read again with the new weights); with
    `step_at_once`, the step runs while the decoding does (the worst case: the product waits
    for a pause)."""
    times: dict[str, list[float]] = {}
    adapting = profile.adaptation is not None
    user_lexicon = profile.lexicon(lexicon)
    adaptation.PAUSE_S, pause = (0.0 if step_at_once else adaptation.PAUSE_S), \
        adaptation.PAUSE_S
    try:
        for i, (clause, before, passage, letters) in enumerate(typed_passages(runs)):
            profile.learn(clause, before=before, known=lexicon)
            if step_at_once:
                time.sleep(0.001)  # the thread picks the step up
            for what in ("suggest", "pinyin"):
                for use in (i % 2 == 0, i % 2 == 1):
                    reader.states.clear()
                    reader.read(before).state  # noqa: B018 — the composition before read it
                    started = time.perf_counter()
                    read = reader.read(passage)
                    scorer = profile.scorer if use else predictor.scorer
                    start = profile.start_after(read) if use else (read.state, read.log_probs)
                    if what == "suggest":
                        suggestions_of(scorer, *start, 5)
                    else:
                        decode(scorer, letters, read.ids, DecoderSettings(k=9),
                               user_lexicon if use else lexicon, start=start)
                    times.setdefault(what + ("" if use else " plain"), []).append(
                        time.perf_counter() - started)
            if adapting:
                profile.adaptation.settle()
    finally:
        adaptation.PAUSE_S = pause
    return {what: percentiles(found) for what, found in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/default")
    parser.add_argument("--profile-words", type=int, default=100_000)
    parser.add_argument("--commits", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    predictor = Predictor.from_dir(args.model)
    lexicon = open_lexicon(predictor.vocab)
    reader = ContextReader(predictor)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clauses = [c for t in TEXTS for c in t.split("，")]
        for label, adapt, paced in (
                ("learn a commit, counts only, back to back", False, False),
                ("learn a commit, model adapting, back to back", True, False),
                ("learn a commit, counts only, a decoding between commits", False, True),
                ("learn a commit, model adapting, a decoding and the step between commits",
                 True, True)):
            learner = Profile.open(predictor.scorer, Path(tmp) / f"learn-{len(rows)}.db",
                                   LearnOptions(adapt=adapt))
            times, steps = [], []
            for i in range(args.runs):
                started = time.perf_counter()
                learner.learn(clauses[i % len(clauses)],
                              before=clauses[(i - 1) % len(clauses)], known=lexicon)
                times.append(time.perf_counter() - started)
                if paced:  # what a typist does between commits: the next composition
                    decode(learner.scorer, PINYIN[i % len(PINYIN)], (), DecoderSettings(k=9),
                           lexicon)
                if paced and adapt:
                    started = time.perf_counter()
                    learner.adaptation.settle()
                    steps.append(time.perf_counter() - started)
            rows.append({"what": label, **percentiles(times)})
            if steps:
                rows.append({"what": "an adaptation step (in the background)",
                             **percentiles(steps[1:])})
            learner.close()

        path = Path(tmp) / "big.db"
        started = time.perf_counter()
        big_profile(path, predictor.vocab, args.profile_words, args.commits, args.seed)
        typist = Profile.open(predictor.scorer, path)
        for i in range(20 * len(TEXTS)):
            typist.learn(TEXTS[i % len(TEXTS)], before=TEXTS[(i - 1) % len(TEXTS)],
                         known=lexicon)
        typist.close()
        build = time.perf_counter() - started
        opens = []
        for _ in range(3):
            started = time.perf_counter()
            profile = Profile.open(predictor.scorer, path)
            opens.append(time.perf_counter() - started)
        stats = profile.model.stats()
        rows.append({"what": f"open a profile of {stats['words']:,} words, "
                             f"{stats['bigrams']:,} bigrams, {stats['trigrams']:,} trigrams",
                     "p50_ms": min(opens) * 1000, "p99_ms": max(opens) * 1000, "runs": 3})
        user_lexicon = profile.lexicon(lexicon)

        plain_s, user_s, plain_p, user_p = [], [], [], []
        for i in range(args.runs):
            text, letters = TEXTS[i % len(TEXTS)], PINYIN[i % len(PINYIN)]
            cut = 1 + i % len(text)
            for use, store_s, store_p in ((False, plain_s, plain_p), (True, user_s, user_p)):
                started = time.perf_counter()
                read = reader.read(text[:cut])
                if use:
                    profile.refresh()
                    state, log_probs = profile.start_after(read)
                    suggestions_of(profile.scorer, state, log_probs, 5)
                else:
                    suggestions_of(predictor.scorer, read.state, read.log_probs, 5)
                store_s.append(time.perf_counter() - started)
                started = time.perf_counter()
                read = reader.read(text[:cut])
                if use:
                    start = profile.start_after(read)
                    decode(profile.scorer, letters, read.ids, DecoderSettings(k=9),
                           user_lexicon, start=start)
                else:
                    decode(predictor.scorer, letters, read.ids, DecoderSettings(k=9), lexicon,
                           start=(read.state, read.log_probs))
                store_p.append(time.perf_counter() - started)
        for name, plain, user in (("suggest", plain_s, user_s), ("pinyin", plain_p, user_p)):
            a, b = percentiles(plain), percentiles(user)
            rows.append({"what": f"{name}, no profile", **a})
            rows.append({"what": f"{name}, the big profile", **b,
                         "ratio_p99": b["p99_ms"] / a["p99_ms"]})
        profile.close()
        for label, adapt, at_once in (
                ("right after a commit, the big profile, counts only", False, False),
                ("right after a commit, the big profile, model adapting", True, False),
                ("right after a commit, while the adaptation's step runs", True, True)):
            profile = Profile.open(predictor.scorer, path, LearnOptions(adapt=adapt))
            found = after_commits(profile, predictor, reader, lexicon, args.runs // 4, at_once)
            for what in ("suggest", "pinyin"):
                plain, user = found[what + " plain"], found[what]
                rows.append({"what": f"{what} {label}: no profile, the same passages", **plain})
                rows.append({"what": f"{what} {label}", **user,
                             "ratio_p99": user["p99_ms"] / plain["p99_ms"]})
            profile.close()
    print_table(rows, [("what", "what", "s"), ("p50_ms", "p50 ms", ".2f"),
                       ("p99_ms", "p99 ms", ".2f"), ("ratio_p99", "p99 ×", ".2f")])
    OUT.mkdir(parents=True, exist_ok=True)
    result = {"model": args.model, "profile_words": args.profile_words,
              "commits": args.commits, "runs": args.runs,
              "profile_build_seconds": build, "rows": rows, "machine": machine()}
    (OUT / "user_latency.json").write_text(json.dumps(result, indent=2, ensure_ascii=False)
                                           + "\n", encoding="utf-8")
    print(f"wrote {OUT / 'user_latency.json'}")


if __name__ == "__main__":
    main()
