"""Metrics shared by every scorer: keystroke costs and savings, and the side-by-side table."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnn_ime.data import Split, target_positions
from rnn_ime.keystrokes import keystroke_costs, typing_keystrokes
from rnn_ime.metrics import evaluate, format_comparison
from rnn_ime.vocab import BOS_ID, PAD_ID, UNK_ID, Vocab

WORDS = ("今天", "我", "绿色", "ABC", "，", "3G网络")


def vocab() -> Vocab:
    return Vocab(("<pad>", "<unk>", "<s>", *WORDS), (0, 5, 0, 9, 8, 7, 6, 5, 4))


def test_keystrokes_are_pinyin_letters_or_characters_plus_commit():
    assert [typing_keystrokes(w) for w in WORDS] == [7, 2, 4, 3, 1, 2 + 4 + 3]  # lv se
    costs = keystroke_costs(vocab())
    assert costs[3:].tolist() == [8, 3, 5, 4, 2, 10]
    assert costs[UNK_ID] == pytest.approx(np.mean([8, 3, 5, 4, 2, 10]))  # the documented fallback
    assert costs[PAD_ID] == costs[BOS_ID] == 0
    assert keystroke_costs(vocab()) is costs  # computed once per vocabulary


class RankScorer:
    """Puts each target at a chosen rank (0 = first) among the suggestable words."""

    name = "fake"

    def __init__(self, vocab: Vocab, ranks: list[int]) -> None:
        self.vocab, self.ranks = vocab, ranks

    def split_log_probs(self, split: Split):
        positions = target_positions(split)
        targets = torch.from_numpy(np.asarray(split.tokens)[positions].astype(np.int64))
        log_probs = torch.full((len(positions), len(self.vocab)), -30.0)
        log_probs[:, UNK_ID] = 0.0  # never suggested, so never a hit
        for row, (target, rank) in enumerate(zip(targets.tolist(), self.ranks, strict=True)):
            others = [w for w in range(3, len(self.vocab)) if w != target]
            for place, word in enumerate(others[:rank]):
                log_probs[row, word] = -1.0 - place
            log_probs[row, target] = -1.0 - rank
        yield log_probs.log_softmax(1), targets, positions


def test_keystroke_savings_rate_per_k():
    tokens = [BOS_ID, 3, 4, 5, UNK_ID, BOS_ID, 6, 7, BOS_ID]  # 今天 我 绿色 <unk> | ABC ，
    split = Split(np.asarray(tokens, dtype=np.int32), np.array([[0, 0], [5, 0]]))
    ranks = [0, 2, 4, 0, 1, 5]  # per target; <unk> at rank 0 is still typed in full
    result = evaluate(RankScorer(vocab(), ranks), split)
    costs = keystroke_costs(vocab())
    words = [3, 4, 5, UNK_ID, 6, 7]
    full = sum(costs[w] for w in words)
    for k in (1, 3, 5):
        typed = sum(1 if w != UNK_ID and r < k else costs[w]
                    for w, r in zip(words, ranks, strict=True))
        assert result[f"ksr{k}"] == pytest.approx(1 - typed / full, abs=1e-4)
    assert result["ksr5"] > result["ksr3"] > result["ksr1"] > 0
    assert result["top1"] == pytest.approx(1 / 6, abs=1e-4)
    # first words: 今天 (hit at k=1) and ABC (rank 1: a miss at k=1)
    assert result["by_context"]["0"]["ksr1"] == pytest.approx(1 - (1 + costs[6]) / (8 + 4),
                                                              abs=1e-4)


def test_side_by_side_table_has_every_figure_and_the_context_buckets():
    tokens = [BOS_ID, 3, 4, 5, BOS_ID]
    split = Split(np.asarray(tokens, dtype=np.int32), np.array([[0, 0]]))
    results = {"model": evaluate(RankScorer(vocab(), [0, 1, 2]), split),
               "kn-4gram": evaluate(RankScorer(vocab(), [3, 3, 3]), split)}
    table = format_comparison(results, "title")
    lines = table.splitlines()
    assert lines[0] == "title" and "KSR@1" in lines[1] and "top-5" in lines[1]
    assert lines[2].startswith("model") and lines[3].startswith("kn-4gram")
    assert "33.3%" in lines[2]  # top-1 of the model
    assert "top-1 by words of context" in table and "3-4" in table and "10+" in table


def test_passage_tallies_sum_to_the_totals_and_intervals_resample_passages():
    """Counted per passage, the words add up to evaluate's own figures; the difference of two
    scorers is theirs, its interval holds it, is zero-width for identical scorers, and is
    wide when the passages disagree."""
    from rnn_ime.metrics import PassageTally, difference_intervals, format_intervals

    tokens = [BOS_ID, 3, 4, 5, UNK_ID, BOS_ID, 6, 7, BOS_ID, 8, 3, BOS_ID]
    split = Split(np.asarray(tokens, dtype=np.int32), np.array([[0, 0], [5, 0], [8, 0]]))
    good, bad = [0, 0, 0, 0, 0, 0, 0, 0], [0, 2, 4, 0, 6, 5, 6, 0]
    tallies = [PassageTally.empty(3), PassageTally.empty(3)]
    results = [evaluate(RankScorer(vocab(), ranks), split, by_passage=tally)
               for ranks, tally in zip((good, bad), tallies, strict=True)]
    first = tallies[0]
    assert first.words.sum() == results[0]["words"] == 8
    assert first.words[:, 0].tolist() == [1, 1, 1]  # one first word in each passage
    assert first.hits[..., 0].sum() / first.words.sum() == pytest.approx(results[0]["top1"])
    assert 1 - first.typed[..., 2].sum() / first.keys.sum() == pytest.approx(
        results[0]["ksr5"], abs=1e-4)
    intervals = difference_intervals(*tallies, rounds=200)
    cell = intervals["all"]["top1"]
    assert cell["difference"] == pytest.approx(results[0]["top1"] - results[1]["top1"],
                                               abs=1e-4)
    assert cell["low"] <= cell["difference"] <= cell["high"] and cell["high"] > cell["low"]
    same = difference_intervals(tallies[0], tallies[0], rounds=200)["all"]["ksr5"]
    assert same == {"difference": 0.0, "low": 0.0, "high": 0.0}
    assert intervals["0"]["top1"]["difference"] == pytest.approx(2 / 3, abs=1e-4)
    assert "5-9" not in intervals  # no word has 5 to 9 words before it
    table = format_intervals(intervals, "good − bad", 200)
    assert "top-1" in table and "KSR@5" in table and "+66.7" in table
