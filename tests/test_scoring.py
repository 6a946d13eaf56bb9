"""Reading a typed context in one pass gives what stepping word by word gives."""

import pytest
import torch

from rnn_ime.model import ModelConfig, NextWordModel
from rnn_ime.predict import Predictor
from rnn_ime.scoring import NeuralScorer, read_context
from rnn_ime.vocab import Vocab


@pytest.fixture(scope="module")
def predictor(small_model) -> Predictor:
    return Predictor.from_dir(small_model)


class StepOnly:
    """A scorer that offers nothing but the interface: the context is stepped word by word."""

    def __init__(self, scorer: NeuralScorer) -> None:
        self.vocab, self.start, self.step = scorer.vocab, scorer.start, scorer.step


@pytest.mark.parametrize("objective, cell, layers, seq_len", [
    ("lm", "lstm", 2, 5), ("lm", "gru", 1, 5), ("window", "rnn", 1, 4), ("window", "lstm", 1, 1)])
@pytest.mark.parametrize("length", [0, 1, 3, 7])
def test_one_pass_over_the_context_equals_stepping_word_by_word(objective, cell, layers,
                                                                  seq_len, length):
    torch.manual_seed(0)
    vocab = Vocab(("<pad>", "<unk>", "<s>", *"abcdefghij"), (0,) * 13)
    model = NextWordModel(ModelConfig(vocab_size=len(vocab), objective=objective, cell=cell,
                                      layers=layers, embed=8, hidden=8, seq_len=seq_len))
    scorer = NeuralScorer(model, vocab)
    context = [3 + (i * 7) % 10 for i in range(length)]
    fast_state, fast = read_context(scorer, context)
    slow_state, slow = read_context(StepOnly(scorer), context)
    assert torch.allclose(fast, slow, atol=1e-5)
    # and the states carry on alike
    _, fast_next = scorer.step(fast_state, 4)
    _, slow_next = scorer.step(slow_state, 4)
    assert torch.allclose(fast_next, slow_next, atol=1e-5)
