"""The fallback beam search behind /api/complete, and reading a context in one pass."""

import pytest
import torch

from rnn_ime.completion import fallback_beam_search, state_after
from rnn_ime.model import ModelConfig, NextWordModel
from rnn_ime.predict import Predictor
from rnn_ime.scoring import NeuralScorer
from rnn_ime.vocab import Vocab


@pytest.fixture(scope="module")
def predictor(small_model) -> Predictor:
    return Predictor.from_dir(small_model)


def test_fallback_with_beam_one_is_greedy(predictor):
    session = predictor.session()
    session.commit_text("我今天")
    greedy = []
    for _ in range(3):
        best = session.suggestions(1)[0].word
        greedy.append(best)
        session.commit(best)
    _, ids = predictor.encode("我今天")
    [(word_ids, log_prob)] = fallback_beam_search(predictor.scorer, ids, beam=1, length=3)
    assert [predictor.vocab.word(i) for i in word_ids] == greedy
    assert log_prob < 0


def test_a_wider_beam_finds_a_continuation_at_least_as_likely(predictor):
    _, ids = predictor.encode("我")
    greedy = fallback_beam_search(predictor.scorer, ids, beam=1, length=4)[0][1]
    wide = fallback_beam_search(predictor.scorer, ids, beam=4, length=4)
    assert wide[0][1] >= greedy - 1e-6
    assert [lp for _, lp in wide] == sorted((lp for _, lp in wide), reverse=True)


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
    fast_state, fast = state_after(scorer, context)
    slow_state, slow = state_after(StepOnly(scorer), context)
    assert torch.allclose(fast, slow, atol=1e-5)
    # and the states carry on alike
    _, fast_next = scorer.step(fast_state, 4)
    _, slow_next = scorer.step(slow_state, 4)
    assert torch.allclose(fast_next, slow_next, atol=1e-5)
