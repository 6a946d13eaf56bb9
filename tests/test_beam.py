"""Beam search: exact against brute force when nothing is pruned, never shows special tokens."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnn_ime.beam import beam_search
from rnn_ime.cli import main
from rnn_ime.errors import RnnImeError
from rnn_ime.ngram import NgramScorer
from rnn_ime.predict import top_k
from rnn_ime.scoring import Scorer
from rnn_ime.vocab import BOS_ID, Vocab

SPECIAL_IDS = {0, 1, 2}
SPECIAL_WORDS = {"<pad>", "<unk>", "<s>"}


def vocab(size: int) -> Vocab:
    return Vocab(("<pad>", "<unk>", "<s>", *(f"w{i}" for i in range(3, size))), (0,) * size)


class BigramTable(Scorer[int]):
    """A scorer whose next-word distribution is a fixed row per previous word."""

    name = "table"

    def __init__(self, size: int, seed: int) -> None:
        self.vocab = vocab(size)
        logits = torch.from_numpy(np.random.default_rng(seed).normal(0, 2, (size, size)))
        logits[:, 1] += 3  # <unk> is often the likeliest: it must never be suggested
        self.table = logits.log_softmax(1)

    def start(self) -> int:
        return -1

    def step_batch(self, states: list[int], word_ids: list[int]
                   ) -> list[tuple[int, torch.Tensor]]:
        return [(word_id, self.table[word_id]) for word_id in word_ids]


def brute_force(scorer, context: list[int], length: int, may_end: bool = False
                ) -> list[tuple[tuple, float]]:
    """Every outcome: `length` words, or (may_end) fewer words then the end of the passage."""
    state, log_probs = scorer.step(scorer.start(), BOS_ID)
    for word_id in context:
        state, log_probs = scorer.step(state, word_id)
    words = [w for w in range(len(scorer.vocab)) if w not in SPECIAL_IDS]
    outcomes = []

    def walk(state, log_probs, prefix, score):
        log_probs = log_probs.double()
        if len(prefix) == length:
            outcomes.append((prefix, score))
            return
        if may_end and prefix:
            outcomes.append((prefix + ("end",), score + float(log_probs[BOS_ID])))
        for w in words:
            walk(*scorer.step(state, w), prefix + (scorer.vocab.word(w),),
                 score + float(log_probs[w]))

    walk(state, log_probs, (), 0.0)
    return sorted(outcomes, key=lambda o: -o[1])


def flat(found) -> list[tuple[tuple, float]]:
    return [(c.words + (("end",) if c.ends_passage else ()), c.log_prob) for c in found]


@pytest.mark.parametrize("size, length", [(6, 3), (7, 2), (5, 4)])
def test_a_beam_of_v_to_the_l_equals_brute_force(size, length):
    scorer = BigramTable(size, seed=size + length)
    want = brute_force(scorer, [3], length)
    got = flat(beam_search(scorer, [3], beam=(size - 3) ** length, length=length))
    assert len(want) == (size - 3) ** length and all(len(o[0]) == length for o in got)
    assert [o[0] for o in got] == [o[0] for o in want]
    assert [o[1] for o in got] == pytest.approx([o[1] for o in want])


@pytest.mark.parametrize("size, length", [(6, 3), (5, 4)])
def test_an_unpruned_beam_that_may_end_equals_brute_force(size, length):
    scorer = BigramTable(size, seed=size * length)
    want = brute_force(scorer, [3], length, may_end=True)
    got = flat(beam_search(scorer, [3], beam=len(want), length=length, may_end=True))
    assert [o[0] for o in got] == [o[0] for o in want]
    assert [o[1] for o in got] == pytest.approx([o[1] for o in want])
    assert any(o[0][-1] == "end" for o in got[:len(got) // 2])  # ends do compete


def test_a_small_beam_gives_the_best_few_and_never_a_special_token():
    scorer = BigramTable(9, seed=0)
    found = beam_search(scorer, [4, 5], beam=3, length=3, may_end=True)
    assert len(found) == 3
    assert [c.log_prob for c in found] == sorted((c.log_prob for c in found), reverse=True)
    assert all(1 <= len(c.words) <= 3 and not set(c.words) & SPECIAL_WORDS for c in found)
    best_words, best_log_prob = brute_force(scorer, [4, 5], 3, True)[0]  # this table's best
    assert flat(found)[0][0] == best_words
    assert flat(found)[0][1] == pytest.approx(best_log_prob)
    one = beam_search(scorer, [4, 5], beam=4, length=1)  # one word: the top-k suggestions
    assert [c.words[0] for c in one] == \
        [s.word for s in top_k(scorer.table[5], scorer.vocab, 4)]


def test_beam_search_over_the_ngram_is_exact_on_a_tiny_vocabulary():
    from test_ngram import as_split, toy_passages

    scorer = NgramScorer.train(as_split(toy_passages(3, vocab_size=7)), vocab(7), 3)
    want = brute_force(scorer, [4], 3, may_end=True)
    got = flat(beam_search(scorer, [4], beam=len(want), length=3, may_end=True))
    assert [o[0] for o in got] == [o[0] for o in want]
    assert [o[1] for o in got] == pytest.approx([o[1] for o in want], abs=1e-4)


def test_limits_are_user_errors():
    with pytest.raises(RnnImeError):
        beam_search(BigramTable(5, 0), [], beam=0, length=2)
    with pytest.raises(RnnImeError):
        beam_search(BigramTable(5, 0), [], beam=2, length=11)


def test_predict_beam_on_the_command_line(capsys, small_model):
    main(["predict", "--model", str(small_model), "--beam", "4", "--length", "3", "--json",
          "我今天"])
    answer = json.loads(capsys.readouterr().out)
    continuations = answer["continuations"]
    assert answer["beam"] == 4 and answer["length"] == 3 and len(continuations) == 4
    log_probs = [c["log_prob"] for c in continuations]
    assert log_probs == sorted(log_probs, reverse=True) and log_probs[0] < 0
    assert all(len(c["words"]) == 3 and "".join(c["words"]) == c["text"]
               and not {"<pad>", "<unk>", "<s>"} & set(c["words"]) for c in continuations)
    main(["predict", "--model", str(small_model), "--beam", "2", "--may-end", "我今天"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("1. ") and "log p" in lines[0]
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--model", str(small_model), "--length", "2", "我"])
    assert exc.value.code == 2
