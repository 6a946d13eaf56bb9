import pytest
import torch

from rnn_ime.errors import ConfigError
from rnn_ime.model import ModelConfig, NextWordModel


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("objective", ["lm", "window"])
def test_shapes_for_each_cell_and_objective(cell, objective):
    model = NextWordModel(ModelConfig(vocab_size=50, cell=cell, objective=objective, layers=2,
                                      embed=8, hidden=6, dropout=0.1))
    features, state = model(torch.randint(0, 50, (3, 5)))
    assert features.shape == ((3, 5, 6) if objective == "lm" else (3, 6))
    assert model.log_probs(features).shape == features.shape[:-1] + (50,)
    assert model.loss(features, torch.randint(0, 50, features.shape[:-1])).ndim == 0


def test_bidirectional_window_model_uses_both_directions():
    model = NextWordModel(ModelConfig(vocab_size=30, objective="window", bidirectional=True,
                                      embed=4, hidden=5))
    features, _ = model(torch.randint(0, 30, (2, 4)))
    assert features.shape == (2, 10)


def test_bidirectional_lm_is_refused_with_a_reason():
    with pytest.raises(ConfigError, match="would read the words it must predict"):
        NextWordModel(ModelConfig(vocab_size=30, objective="lm", bidirectional=True))


def test_unknown_cell_is_refused():
    with pytest.raises(ConfigError, match="unknown cell 'transformer'"):
        NextWordModel(ModelConfig(vocab_size=30, cell="transformer"))


def test_relu_rnn_and_nonlinearity_only_for_rnn():
    NextWordModel(ModelConfig(vocab_size=30, cell="rnn", nonlinearity="relu"))
    with pytest.raises(ConfigError):
        NextWordModel(ModelConfig(vocab_size=30, cell="lstm", nonlinearity="relu"))


def test_tied_weights_share_one_matrix():
    model = NextWordModel(ModelConfig(vocab_size=40, embed=8, hidden=8, tie_weights=True))
    assert model.decoder.weight is model.embedding.weight
    with pytest.raises(ConfigError, match="--embed"):
        NextWordModel(ModelConfig(vocab_size=40, embed=8, hidden=6, tie_weights=True))


def test_adaptive_softmax_gives_exact_normalised_probabilities():
    config = ModelConfig(vocab_size=6000, embed=8, hidden=8)
    model = NextWordModel(config)
    assert model.config.softmax == "adaptive" and model.config.cutoffs == [2000]
    features, _ = model(torch.randint(0, 6000, (2, 3)))
    probs = model.log_probs(features).exp().sum(-1)
    assert torch.allclose(probs, torch.ones_like(probs), atol=1e-4)
    targets = torch.randint(0, 6000, (2, 3))
    by_log_probs = -model.log_probs(features).gather(-1, targets[..., None]).mean()
    assert torch.allclose(model.loss(features, targets), by_log_probs, atol=1e-4)


def test_small_vocabularies_use_the_full_softmax():
    assert NextWordModel(ModelConfig(vocab_size=100)).config.softmax == "full"


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_lm_reads_every_passage_from_the_zero_state_as_evaluation_does(cell):
    """Training streams passages back to back in a row and carries the state across batches;
    the words after a <s> must still be read as a typing session reads them: from zeros."""
    from rnn_ime.vocab import BOS_ID

    torch.manual_seed(0)
    model = NextWordModel(ModelConfig(vocab_size=40, cell=cell, layers=2, embed=8, hidden=6)).eval()
    passage = torch.tensor([[BOS_ID, 7, 8, 9, 10]])
    alone, _ = model(passage)
    # row 0: the passage after three words of another one; row 1: after one word; both rows
    # start from a carried (nonzero) state
    rows = torch.tensor([[11, 12, 13, *passage[0].tolist()],
                         [11, *passage[0].tolist(), 14, 15]])
    shape = (2, 2, 6)
    carried = (torch.randn(shape), torch.randn(shape)) if cell == "lstm" else torch.randn(shape)
    features, _ = model(rows, carried)
    assert torch.allclose(features[0, 3:], alone[0], atol=1e-6)
    assert torch.allclose(features[1, 1:6], alone[0], atol=1e-6)
    # and the words before the <s> still follow the carried state
    plain, _ = model(rows[:, :1], carried)
    assert torch.allclose(features[:, :1], plain, atol=1e-6)


def test_lm_state_after_a_passage_start_ignores_what_came_before():
    from rnn_ime.vocab import BOS_ID

    model = NextWordModel(ModelConfig(vocab_size=20, cell="gru", embed=4, hidden=5)).eval()
    _, after_reset = model(torch.tensor([[3, 4, BOS_ID, 5]]), torch.randn(1, 1, 5))
    _, fresh = model(torch.tensor([[BOS_ID, 5]]))
    assert torch.allclose(after_reset, fresh, atol=1e-6)


def test_a_typing_step_on_s_starts_from_the_zero_state_like_read():
    from rnn_ime.scoring import NeuralScorer
    from rnn_ime.vocab import BOS_ID, Vocab

    vocab = Vocab(("<pad>", "<unk>", "<s>", *(f"w{i}" for i in range(17))), (0,) * 20)
    model = NextWordModel(ModelConfig(vocab_size=20, cell="lstm", embed=4, hidden=5)).eval()
    scorer = NeuralScorer(model, vocab)
    state, _ = scorer.read([5, 6, 7])
    _, stepped = scorer.step(state, BOS_ID)
    _, fresh = scorer.step(scorer.start(), BOS_ID)
    assert torch.allclose(stepped, fresh, atol=1e-6)
    assert torch.allclose(scorer.read([5, 6, 7, BOS_ID])[1], fresh, atol=1e-5)
