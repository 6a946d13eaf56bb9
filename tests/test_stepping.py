import pytest
import torch

from rnn_ime.model import ModelConfig, NextWordModel
from rnn_ime.scoring import NeuralScorer
from rnn_ime.stepping import (
    TransposedLinear,
    exact_log_probs,
    exact_probabilities,
    recurrent_step,
)
from rnn_ime.vocab import BOS_ID, Vocab


def _model(**options) -> NextWordModel:
    torch.manual_seed(0)
    options = {"vocab_size": 60, "embed": 12, "hidden": 16, **options}
    return NextWordModel(ModelConfig(**options)).eval()


@pytest.mark.parametrize("cell,nonlinearity,layers", [
    ("lstm", "tanh", 1), ("lstm", "tanh", 2), ("gru", "tanh", 2), ("rnn", "tanh", 1),
    ("rnn", "relu", 2)])
def test_recurrent_step_matches_the_module(cell, nonlinearity, layers):
    model = _model(cell=cell, nonlinearity=nonlinearity, layers=layers)
    ids = torch.tensor([[2, 7, 9, 4], [2, 5, 5, 30]])
    with torch.inference_mode():
        expected, expected_state = model.rnn(model.embedding(ids))
        state = None
        for t in range(ids.shape[1]):
            output, state = recurrent_step(model.rnn, model.embedding(ids[:, t]), state)
            assert torch.allclose(output, expected[:, t], atol=1e-6)
    pairs = zip(state, expected_state, strict=True) if cell == "lstm" \
        else [(state, expected_state)]
    for got, want in pairs:
        assert got.shape == want.shape and torch.allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("softmax,cutoffs", [("full", []), ("adaptive", [10, 30])])
def test_exact_log_probs_match_the_model(softmax, cutoffs):
    model = _model(softmax=softmax, cutoffs=cutoffs)
    features = torch.randn(3, 16)
    with torch.inference_mode():
        want = model.log_probs(features)
        for linear in (None, TransposedLinear()):
            got = exact_log_probs(model, features) if linear is None \
                else exact_log_probs(model, features, linear)
            assert got.shape == (3, 60) and torch.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("softmax,cutoffs", [("full", []), ("adaptive", [10, 30])])
def test_exact_probabilities_are_the_exp_of_the_log_probs(softmax, cutoffs):
    model = _model(softmax=softmax, cutoffs=cutoffs)
    features = torch.randn(3, 16)
    with torch.inference_mode():
        want = exact_log_probs(model, features).exp()
        for linear in (None, TransposedLinear()):
            got = exact_probabilities(model, features) if linear is None \
                else exact_probabilities(model, features, linear)
            assert got.shape == (3, 60) and torch.allclose(got, want, atol=1e-6)
            assert torch.allclose(got.sum(-1), torch.ones(3), atol=1e-5)


def test_transposed_linear_follows_weight_updates():
    linear, fast = torch.nn.Linear(4, 3), TransposedLinear()
    x = torch.randn(2, 4)
    assert torch.allclose(fast(linear, x), linear(x), atol=1e-6)
    with torch.no_grad():
        linear.weight.mul_(2.0)  # an optimizer step changes the weight in place
    assert torch.allclose(fast(linear, x), linear(x), atol=1e-6)


@pytest.mark.parametrize("cell,softmax", [("gru", "full"), ("lstm", "adaptive")])
def test_neural_scorer_step_matches_rereading(cell, softmax):
    model = _model(cell=cell, layers=2, softmax=softmax, cutoffs=[10, 30] * (softmax != "full"))
    vocab = Vocab(("<pad>", "<unk>", "<s>", *[f"w{i}" for i in range(57)]), (0,) * 60)
    scorer = NeuralScorer(model, vocab)
    state, _ = scorer.step(scorer.start(), BOS_ID)
    context = [5, 9, 44, 3]
    for word_id in context:
        state, log_probs = scorer.step(state, word_id)
    assert torch.allclose(log_probs, scorer.log_probs([context])[0], atol=1e-5)


def _states_after(scorer, contexts):
    """The scorer's state after <s> + each context (the first one: nothing read yet)."""
    states = [scorer.start()]
    for context in contexts[1:]:
        state, _ = scorer.step(scorer.start(), BOS_ID)
        for word_id in context:
            state, _ = scorer.step(state, word_id)
        states.append(state)
    return states


@pytest.mark.parametrize("options", [
    {"cell": "lstm", "layers": 2, "softmax": "adaptive", "cutoffs": [10, 30]},
    {"cell": "gru"}, {"cell": "rnn", "objective": "window", "seq_len": 3}])
def test_a_batched_step_is_each_step(options):
    vocab = Vocab(("<pad>", "<unk>", "<s>", *[f"w{i}" for i in range(57)]), (0,) * 60)
    scorer = NeuralScorer(_model(**options), vocab)
    states = _states_after(scorer, [[], [5], [9, 44, 3], [7, 7]])
    words = [BOS_ID, 12, 40, 3]
    batched = scorer.step_batch(states, words)
    for (state, log_probs), before, word_id in zip(batched, states, words, strict=True):
        want_state, want = scorer.step(before, word_id)
        assert torch.allclose(log_probs, want, atol=1e-5)
        _, next_want = scorer.step(want_state, 8)  # the state carries on alike
        _, next_got = scorer.step(state, 8)
        assert torch.allclose(next_got, next_want, atol=1e-5)
    assert scorer.step_batch([], []) == []
    new, probabilities = scorer.step_probabilities(states, words)  # what a mixture takes
    for (state, _), also in zip(batched, new, strict=True):
        assert torch.allclose(scorer.step(also, 8)[1], scorer.step(state, 8)[1], atol=1e-6)
    assert torch.allclose(probabilities, torch.stack([lp for _, lp in batched]).exp(), atol=1e-6)
    fresh = scorer.step_batch([scorer.start(), scorer.start()], [BOS_ID, 5])  # all zero states
    assert torch.allclose(fresh[1][1], scorer.step(scorer.start(), 5)[1], atol=1e-5)
