"""The Scorer base class: its defaults, built on step_batch, give what each scorer's own faster
overrides give; a wrapper that writes only start and step_batch gets all of them."""

from collections.abc import Sequence

import numpy as np
import pytest
import torch

from rnn_ime.data import DataDir, Split
from rnn_ime.metrics import evaluate
from rnn_ime.model import ModelConfig, NextWordModel
from rnn_ime.ngram import NgramScorer
from rnn_ime.scoring import NeuralScorer, Scorer
from rnn_ime.vocab import BOS_ID, Vocab


class Wrapped(Scorer[tuple]):
    """A wrapper written as a mixture would be: only start and step_batch, its state a tuple of
    the inner scorer's state; every other method is the base class's default."""

    def __init__(self, inner: Scorer) -> None:
        self.inner, self.vocab, self.name = inner, inner.vocab, f"wrapped-{inner.name}"

    def start(self) -> tuple:
        return (self.inner.start(),)

    def step_batch(self, states: Sequence[tuple], word_ids: Sequence[int]
                   ) -> list[tuple[tuple, torch.Tensor]]:
        stepped = self.inner.step_batch([inner for inner, in states], word_ids)
        return [((state,), log_probs) for state, log_probs in stepped]


def _neural(objective: str, cell: str, layers: int, seq_len: int) -> NeuralScorer:
    torch.manual_seed(0)
    vocab = Vocab(("<pad>", "<unk>", "<s>", *"abcdefghij"), (0,) * 13)
    model = NextWordModel(ModelConfig(vocab_size=len(vocab), objective=objective, cell=cell,
                                      layers=layers, embed=8, hidden=8, seq_len=seq_len))
    return NeuralScorer(model, vocab)


NEURAL = [("lm", "lstm", 2, 5), ("lm", "gru", 1, 5), ("window", "rnn", 1, 4),
          ("window", "lstm", 1, 1)]


@pytest.mark.parametrize("objective, cell, layers, seq_len", NEURAL)
@pytest.mark.parametrize("length", [0, 1, 3, 7])
def test_one_pass_over_the_context_equals_stepping_word_by_word(objective, cell, layers,
                                                                  seq_len, length):
    scorer = _neural(objective, cell, layers, seq_len)
    context = [3 + (i * 7) % 10 for i in range(length)]
    fast_state, fast = scorer.read(context)
    (slow_state,), slow = Wrapped(scorer).read(context)  # the default: one step per word
    assert torch.allclose(fast, slow, atol=1e-5)
    # and the states carry on alike
    _, fast_next = scorer.step(fast_state, 4)
    _, slow_next = scorer.step(slow_state, 4)
    assert torch.allclose(fast_next, slow_next, atol=1e-5)


def _by_offset(chunks) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """(offsets, targets, log_probs) of split_log_probs' chunks, sorted by offset."""
    offsets = np.concatenate([c[2] for c in chunks])
    order = torch.from_numpy(np.argsort(offsets, kind="stable"))
    return (offsets[order.numpy()], torch.cat([c[1] for c in chunks])[order],
            torch.cat([c[0] for c in chunks])[order])


def _agree_on_split(scorer: Scorer, split: Split) -> None:
    want_offsets, want_targets, want = _by_offset(list(scorer.split_log_probs(split)))
    wrapped = Wrapped(scorer)
    wrapped.split_rows = 7  # several groups of passages, of unequal lengths
    got_offsets, got_targets, got = _by_offset(list(wrapped.split_log_probs(split)))
    assert got_offsets.tolist() == want_offsets.tolist()
    assert torch.equal(got_targets, want_targets)
    assert torch.allclose(got, want, atol=1e-5)


@pytest.fixture(scope="module")
def data(small_data) -> DataDir:
    return DataDir(small_data)


@pytest.fixture(scope="module")
def ngram(data) -> NgramScorer:
    return NgramScorer.train(data.split("train"), data.vocab, 3)


def test_a_wrapper_of_the_ngram_gets_every_default_right(data, ngram):
    wrapped = Wrapped(ngram)
    vocab = data.vocab
    contexts = [[], vocab.encode(["我", "今天"]), [5, 6, BOS_ID, 7], list(range(3, 20))]
    assert torch.allclose(wrapped.log_probs(contexts), ngram.log_probs(contexts), atol=1e-5)
    for context in contexts:
        (state,), log_probs = wrapped.read(context)
        want_state, want = ngram.read(context)
        assert state == want_state and torch.allclose(log_probs, want, atol=1e-5)
    assert wrapped.step_batch([], []) == [] and ngram.step_batch([], []) == []
    assert wrapped.log_probs([]).shape == (0, len(vocab))
    split = data.split("test")
    _agree_on_split(ngram, split)
    want, got = evaluate(ngram, split), evaluate(wrapped, split)
    for key in ("words", "top1", "top3", "top5", "ksr1"):
        assert got[key] == want[key]
    assert got["loss"] == pytest.approx(want["loss"], abs=1e-4)


@pytest.mark.parametrize("objective, cell, layers, seq_len", NEURAL[:3])
def test_a_wrapper_of_the_neural_scorer_gets_every_default_right(data, objective, cell, layers,
                                                                   seq_len):
    torch.manual_seed(0)
    model = NextWordModel(ModelConfig(vocab_size=len(data.vocab), objective=objective,
                                      cell=cell, layers=layers, embed=8, hidden=8,
                                      seq_len=seq_len))
    scorer = NeuralScorer(model, data.vocab)
    contexts = [[], [5], [9, 4, 3, 12], [7, 7, 8, 9, 10, 11]]
    got = Wrapped(scorer).log_probs(contexts)
    assert torch.allclose(got, scorer.log_probs(contexts), atol=1e-5)
    _agree_on_split(scorer, data.split("test"))


def test_a_scorer_must_write_start_and_step_batch():
    class StepOnly(Scorer[int]):
        def start(self) -> int:
            return 0

    with pytest.raises(TypeError):
        StepOnly()
