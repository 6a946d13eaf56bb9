import torch

from rnn_ime.modeldir import load
from rnn_ime.predict import Predictor, top_k
from rnn_ime.scoring import NeuralScorer
from rnn_ime.vocab import BOS_ID


def _predictor(model_dir) -> Predictor:
    return Predictor.from_dir(model_dir)


def test_suggestions_are_ranked_probabilities_without_specials(small_model):
    predictor = _predictor(small_model)
    for text in ["我今天", "", "完全没见过的词语", "ABC"]:
        suggestions = predictor.suggest(text, k=10)
        assert len(suggestions) == 10
        probs = [s.probability for s in suggestions]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001
        assert not {s.word for s in suggestions} & {"<pad>", "<unk>", "<s>"}


def test_top_k_never_returns_unk_even_when_it_is_most_likely(small_model):
    _, vocab, _ = load(small_model)
    log_probs = torch.full((len(vocab),), -20.0)
    log_probs[1] = 0.0  # <unk>
    log_probs[5] = -1.0
    assert top_k(log_probs, vocab, 1)[0].word == vocab.word(5)


def test_top_k_is_the_best_suggestable_words_in_order(small_model):
    _, vocab, _ = load(small_model)
    log_probs = torch.randn(len(vocab), generator=torch.Generator().manual_seed(0))
    log_probs[:3] = 10.0  # <pad>, <unk>, <s> above everything
    expected = sorted(range(3, len(vocab)), key=lambda i: -float(log_probs[i]))[:7]
    got = top_k(log_probs, vocab, 7)
    assert [s.word for s in got] == [vocab.word(i) for i in expected]
    assert [s.probability for s in got] == [float(log_probs[i].exp()) for i in expected]
    assert len(top_k(log_probs, vocab, len(vocab))) == len(vocab) - 3


def test_the_model_learned_the_templates(small_model):
    # after a subject and a time word the templates always continue with a verb
    words = [s.word for s in _predictor(small_model).suggest("我今天", k=3)]
    assert set(words) & {"去", "想", "喜欢", "不想", "想去", "喜欢去", "不想去"}


def test_a_typing_session_matches_rereading_the_whole_text(small_model):
    predictor = _predictor(small_model)
    session = predictor.session()
    for word in ["我", "今天", "去", "北京"]:
        session.commit(word)
    stateless = predictor.suggest("我今天去北京", k=5)
    stateful = session.suggestions(k=5)
    assert [s.word for s in stateful] == [s.word for s in stateless]
    for a, b in zip(stateful, stateless, strict=True):
        assert abs(a.probability - b.probability) < 1e-5


def test_scorer_log_probs_and_step_agree(small_model):
    model, vocab, _ = load(small_model)
    scorer = NeuralScorer(model, vocab)
    ids = vocab.encode(["我", "今天"])
    state, _ = scorer.step(scorer.start(), BOS_ID)
    for word_id in ids:
        state, log_probs = scorer.step(state, word_id)
    assert torch.allclose(log_probs, scorer.log_probs([ids])[0], atol=1e-5)
