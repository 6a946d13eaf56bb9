"""The Kneser-Ney baseline: exact against a plain-Python reference, normalised, fast paths agree."""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict

import numpy as np
import pytest
import torch

from rnn_ime.cli import main
from rnn_ime.data import DataDir, Split, target_positions
from rnn_ime.errors import ConfigError
from rnn_ime.metrics import evaluate
from rnn_ime.ngram import NgramScorer, count_ngrams, discounts
from rnn_ime.vocab import BOS_ID, PAD_ID, UNK_ID, Vocab

# ---------------------------------------------------------------- a plain-Python reference


class ReferenceKN:
    """Interpolated modified Kneser-Ney written from the formulas, with dicts of tuples."""

    def __init__(self, passages: list[list[int]], vocab_size: int, order: int) -> None:
        self.v, self.n = vocab_size, order
        raw = [Counter() for _ in range(order + 1)]
        for passage in passages:
            seq = [BOS_ID, *passage, BOS_ID]  # the closing <s> is the end of the passage
            for t in range(1, len(seq)):
                for j in range(1, order + 1):
                    if t - j + 1 >= 0:
                        raw[j][tuple(seq[t - j + 1:t + 1])] += 1
        self.a = [Counter() for _ in range(order + 1)]
        for j in range(1, order + 1):
            for gram, count in raw[j].items():
                if j == order or (j > 1 and gram[0] == BOS_ID):
                    self.a[j][gram] = count
                else:
                    self.a[j][gram] = len({g for g in raw[j + 1] if g[1:] == gram})
        self.d = [None] + [self._discounts(self.a[j]) for j in range(1, order + 1)]
        self.ext = [defaultdict(dict) for _ in range(order + 1)]
        for j in range(1, order + 1):
            for gram, count in self.a[j].items():
                self.ext[j][gram[:-1]][gram[-1]] = count

    @staticmethod
    def _discounts(counts: Counter) -> list[float]:
        n = Counter(c for c in counts.values() if c <= 4)
        out = [0.0, 0.5, 1.0, 1.5]
        if n[1] and n[2]:
            y = n[1] / (n[1] + 2 * n[2])
            for r in (1, 2, 3):
                d = r - (r + 1) * y * n[r + 1] / n[r] if n[r] else None
                if d is not None and 0 < d <= r:
                    out[r] = d
        return out

    def prob(self, w: int, history: tuple[int, ...], j: int | None = None) -> float:
        j = self.n if j is None else j
        if j == 1:
            ext = self.ext[1][()]
            total = sum(ext.values())
            d = self.d[1]
            gamma = sum(d[min(c, 3)] for c in ext.values()) / total
            uniform = 0.0 if w == PAD_ID else 1 / (self.v - 1)
            own = ext.get(w, 0)
            return (own - d[min(own, 3)]) / total + gamma * uniform
        h = history[len(history) - (j - 1):] if len(history) >= j - 1 else None
        lower = self.prob(w, history, j - 1)
        if h is None or not self.ext[j].get(h):
            return lower
        ext, d = self.ext[j][h], self.d[j]
        total = sum(ext.values())
        gamma = sum(d[min(c, 3)] for c in ext.values()) / total
        own = ext.get(w, 0)
        return (own - d[min(own, 3)]) / total + gamma * lower


def toy_passages(seed: int, n: int = 40, vocab_size: int = 9) -> list[list[int]]:
    rng = random.Random(seed)
    words = list(range(3, vocab_size))
    out = []
    for _ in range(n):
        length = rng.randint(1, 7)
        first = rng.choice(words)
        passage = [first]
        for _ in range(length - 1):  # a sticky chain, so higher orders matter
            passage.append(rng.choice([passage[-1] + 1 if passage[-1] + 1 < vocab_size else 3,
                                       rng.choice(words), UNK_ID]))
        out.append(passage)
    return out


def as_split(passages: list[list[int]]) -> Split:
    tokens, starts = [], []
    for passage in passages:
        starts.append(len(tokens))
        tokens.extend([BOS_ID, *passage])
    tokens.append(BOS_ID)
    return Split(np.asarray(tokens, dtype=np.int32),
                 np.stack([np.asarray(starts), np.zeros(len(starts), dtype=np.int64)], axis=1))


def toy_vocab(size: int) -> Vocab:
    return Vocab(("<pad>", "<unk>", "<s>", *(f"w{i}" for i in range(3, size))), (0,) * size)


@pytest.mark.parametrize("order", [2, 3, 4, 5])
def test_matches_the_reference_on_every_history(order):
    size = 9
    passages = toy_passages(order)
    scorer = NgramScorer.train(as_split(passages), toy_vocab(size), order)
    reference = ReferenceKN(passages, size, order)
    rng = random.Random(1)
    contexts = [p[:cut] for p in passages[:15] for cut in range(len(p) + 1)]
    contexts += [[rng.randrange(1, size) for _ in range(rng.randint(1, 6))] for _ in range(20)]
    got = scorer.log_probs(contexts).double().exp()
    for row, context in enumerate(contexts):
        want = [reference.prob(w, (BOS_ID, *context)) for w in range(size)]
        assert got[row].tolist() == pytest.approx(want, abs=1e-6), context


def test_counts_and_discounts():
    passages = [[3, 4], [3, 4, 5]]
    split = as_split(passages)
    raw = count_ngrams(split.tokens, split.starts, 3, 6)
    assert raw[0].counts.tolist() == [0, 0, 2, 2, 2, 1]  # <s> twice as the end of a passage
    keys, counts = raw[1].keys.tolist(), raw[1].counts.tolist()
    bigrams = {(k // 6, k % 6): c for k, c in zip(keys, counts, strict=True)}
    assert bigrams == {(2, 3): 2, (3, 4): 2, (4, 2): 1, (4, 5): 1, (5, 2): 1}
    # n1 = 3, n2 = 1, n3 = 1, n4 = 1: Y = 3/5
    d = discounts(np.array([1, 1, 1, 2, 3, 4]))
    assert d == pytest.approx([0, 1 - 2 * 0.6 / 3, 2 - 3 * 0.6 * 1, 3 - 4 * 0.6 * 1])
    assert discounts(np.array([5, 6]))[1:].tolist() == [0.5, 1.0, 1.5]  # too few: fallback


@pytest.fixture(scope="module")
def small(small_data):
    data = DataDir(small_data)
    return data, NgramScorer.train(data.split("train"), data.vocab, 4)


def test_a_full_distribution_that_sums_to_one(small):
    data, scorer = small
    vocab = data.vocab
    contexts = [[], vocab.encode(["我", "今天"]), [UNK_ID, UNK_ID, UNK_ID, UNK_ID],
                vocab.encode(["酒店", "我", "图书馆", "我们"]), [UNK_ID],
                list(range(3, len(vocab)))]
    probs = scorer.log_probs(contexts).double().exp()
    assert probs.shape == (len(contexts), len(vocab))
    assert torch.allclose(probs.sum(1), torch.ones(len(contexts), dtype=torch.float64), atol=1e-5)
    assert (probs[:, PAD_ID] == 0).all() and (probs[:, 1:] > 0).all()


def test_step_and_split_log_probs_agree_with_log_probs(small):
    data, scorer = small
    split = data.split("test")
    chunks = list(scorer.split_log_probs(split))
    offsets = np.concatenate([c[2] for c in chunks])
    assert offsets.tolist() == target_positions(split).tolist()
    assert torch.cat([c[1] for c in chunks]).tolist() == np.asarray(split.tokens)[offsets].tolist()
    log_probs = torch.cat([c[0] for c in chunks])
    tokens = np.asarray(split.tokens)
    for passage in range(3):
        start, end = split.starts[passage], split.ends[passage]
        state, stepped = scorer.step(scorer.start(), BOS_ID)
        for offset in range(start + 1, end):
            row = int(np.searchsorted(offsets, offset))
            context = tokens[start + 1:offset].tolist()
            assert torch.allclose(log_probs[row], stepped, atol=1e-5)
            assert torch.allclose(log_probs[row], scorer.log_probs([context])[0], atol=1e-5)
            state, stepped = scorer.step(state, int(tokens[offset]))


def test_a_batched_step_is_each_step(small):
    data, scorer = small
    states = [scorer.start(), (BOS_ID,), (BOS_ID, 5, 6), (7, 8, 9)]
    words = [BOS_ID, 4, 10, 11]
    for (state, log_probs), before, word_id in zip(scorer.step_batch(states, words), states,
                                                    words, strict=True):
        want_state, want = scorer.step(before, word_id)
        assert state == want_state and torch.allclose(log_probs, want)
    new, probabilities = scorer.step_probabilities(states, words)  # float32, for a mixture
    assert new == [state for state, _ in scorer.step_batch(states, words)]
    assert probabilities.dtype == torch.float32
    log_probs = torch.stack([lp for _, lp in scorer.step_batch(states, words)])
    assert torch.allclose(probabilities.double(), log_probs.double().exp(), atol=1e-6)


def test_reading_a_context_is_stepping_through_it(small):
    data, scorer = small
    for context in ([], [5], [5, 6, 7, 8, 9, 10, 11], [5, 6, BOS_ID, 7]):
        state, stepped = scorer.step(scorer.start(), BOS_ID)
        for word_id in context:
            state, stepped = scorer.step(state, word_id)
        read_state, read = scorer.read(context)
        assert read_state == state and torch.equal(read, stepped)


def test_evaluates_like_any_scorer_and_learns_the_templates(small):
    data, scorer = small
    result = evaluate(scorer, data.split("test"), data.source_names)
    assert result["words"] == int((np.asarray(data.split("test").tokens) != BOS_ID).sum())
    assert result["perplexity"] < 30 and result["top5"] > 0.5
    assert result["by_context"]["0"]["words"] > 0 and "ksr1" in result


def test_order_is_checked():
    with pytest.raises(ConfigError):
        NgramScorer.train(as_split([[3]]), toy_vocab(4), 6)


def test_evaluate_side_by_side_with_the_baseline(capsys, small_model):
    main(["evaluate", "--model", str(small_model), "--baseline", "ngram", "--order", "3",
          "--json"])
    result = json.loads(capsys.readouterr().out)
    baseline = result["baseline"]
    assert baseline["name"] == "kn-3gram" and baseline["words"] == result["words"]
    assert {"ksr1", "ksr3", "ksr5", "top1", "by_context"} <= set(baseline) & set(result)
    difference = result["difference"]  # model − baseline, with a bootstrap interval
    assert difference["rounds"] == 1000
    for label in ("all", "0", "1", "10+"):
        for figure in ("top1", "ksr5"):
            cell = difference[label][figure]
            assert cell["low"] <= cell["difference"] <= cell["high"]
    top1 = difference["all"]["top1"]["difference"]
    assert top1 == pytest.approx(result["top1"] - baseline["top1"], abs=2e-4)
    main(["evaluate", "--model", str(small_model), "--baseline", "ngram"])
    table = capsys.readouterr().out
    assert "kn-4gram" in table and "KSR@5" in table and "by words of context" in table
    assert "resamplings of the passages" in table
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--model", str(small_model), "--order", "3"])
    assert exc.value.code == 2
