"""The served path's caches give what reading the whole text from scratch gives, keystroke by
keystroke, edits included, for every scorer; and typing costs a step, not a re-read."""

import random
import threading

import pytest
import torch

from conftest import template_passages
from rnn_ime.context_cache import ContextCache
from rnn_ime.model import ModelConfig, NextWordModel
from rnn_ime.ngram import NgramScorer
from rnn_ime.predict import ContextReader, Predictor
from rnn_ime.scoring import NeuralScorer
from rnn_ime.vocab import Vocab


@pytest.fixture(scope="module")
def predictor(small_model) -> Predictor:
    return Predictor.from_dir(small_model)


def keystrokes(seed: int = 0) -> list[str]:
    """Texts as a person makes them: typed a character at a time, with a few backspaces, a
    word replaced in the middle, a clause deleted and a paste."""
    passage = "".join(template_passages(3, seed))
    texts = [passage[:i] for i in range(len(passage) + 1)]
    text = texts[-1]
    texts += [text[:-1], text[:-2], text[:-1]]  # backspace, backspace, retype
    middle = len(text) // 2
    texts.append(text[:middle] + "周末" + text[middle + 2:])  # replace in the middle
    texts.append(text[:middle] + text[middle + 4:])  # delete in the middle
    texts.append(text[:3])  # select all but the start, delete
    texts.append(text[:3] + "".join(template_passages(2, seed + 1)))  # paste
    texts.append("")
    return texts


def assert_same_answer(reader: ContextReader, predictor: Predictor, text: str) -> None:
    ids = predictor.encode(text)[1]
    _, expected = predictor.scorer.read(ids)  # from scratch, no cache
    context = reader.read(text)
    assert context.ids == ids, text
    assert torch.allclose(context.log_probs, expected, atol=1e-5), text
    got, want = reader.suggest(text, 5), predictor.suggest(text, 5)
    assert [s.word for s in got] == [s.word for s in want] or _tied(expected), text
    assert [s.probability for s in got] == pytest.approx([s.probability for s in want],
                                                         rel=1e-4), text


def _tied(log_probs: torch.Tensor) -> bool:
    """Whether the top 6 holds two log-probabilities within float rounding (order undefined)."""
    values = log_probs[3:].topk(6).values
    return bool((values[:-1] - values[1:]).min() < 1e-5)


def test_a_typing_sequence_with_edits_gets_the_answers_of_reading_from_scratch(predictor):
    reader = ContextReader(predictor, entries=16)
    for text in keystrokes():
        assert_same_answer(reader, predictor, text)
    assert len(reader.states) <= 16


def test_typing_one_more_character_costs_at_most_a_step_or_two(predictor):
    reader = ContextReader(predictor, entries=64)
    passage = "".join(template_passages(4, seed=3))
    reader.read(passage[:1]).log_probs  # noqa: B018 — read now (it reads when asked)
    stats = reader.states.stats
    for i in range(2, len(passage) + 1):
        before = dict(stats)
        reader.read(passage[:i]).log_probs  # noqa: B018
        assert stats["reads"] == before["reads"], passage[:i]
        assert stats["steps"] - before["steps"] <= 2, passage[:i]
    steps = stats["steps"]
    reader.read(passage).log_probs  # noqa: B018 — the same text again: no work
    assert stats["steps"] == steps and stats["hits"] >= 1


def test_an_edit_far_back_reads_the_context_in_one_pass(predictor):
    reader = ContextReader(predictor, entries=64)
    passage = "".join(template_passages(6, seed=4))
    reader.read(passage).log_probs  # noqa: B018
    reads = reader.states.stats["reads"]
    assert_same_answer(reader, predictor, "你" + passage[1:])
    assert reader.states.stats["reads"] == reads + 1


def test_the_cache_holds_at_most_its_entries(predictor):
    cache = ContextCache(predictor.scorer, entries=5)
    rng = random.Random(0)
    for _ in range(50):
        ids = [rng.randrange(3, len(predictor.vocab)) for _ in range(rng.randrange(0, 8))]
        state, log_probs = cache.read(ids)
        assert torch.allclose(log_probs, predictor.scorer.read(ids)[1], atol=1e-5)
        assert len(cache) <= 5
    cache.clear()
    assert len(cache) == 0


def test_prefixes_whose_hashes_collide_are_told_apart(predictor, monkeypatch):
    import rnn_ime.context_cache as module

    monkeypatch.setattr(module, "_prefix_keys",
                        lambda ids: [(length, 0) for length in range(len(ids) + 1)])
    cache = ContextCache(predictor.scorer, entries=8)
    for ids in ([5, 6, 7], [8, 9, 10], [5, 6, 7, 11], [8, 9, 10, 11]):
        _, log_probs = cache.read(ids)
        assert torch.allclose(log_probs, predictor.scorer.read(ids)[1], atol=1e-5)


@pytest.mark.parametrize("objective, cell", [("lm", "lstm"), ("lm", "gru"), ("window", "rnn")])
def test_every_neural_shape_reads_the_same_through_the_cache(objective, cell):
    torch.manual_seed(0)
    vocab = Vocab(("<pad>", "<unk>", "<s>", *"abcdefghij"), (0,) * 13)
    model = NextWordModel(ModelConfig(vocab_size=len(vocab), objective=objective, cell=cell,
                                      layers=2 if cell == "lstm" else 1, embed=8, hidden=8,
                                      seq_len=4))
    scorer = NeuralScorer(model, vocab)
    check_sequence(scorer)


def test_an_ngram_scorer_reads_the_same_through_the_cache(small_data):
    from rnn_ime.data import DataDir

    data = DataDir(small_data)
    check_sequence(NgramScorer.train(data.split("train"), data.vocab, 3))


def check_sequence(scorer) -> None:
    """Ids typed one at a time, a last word changed, an edit in the middle, a fresh start."""
    rng = random.Random(1)
    words = [rng.randrange(3, len(scorer.vocab)) for _ in range(30)]
    sequence = [words[:i] for i in range(len(words) + 1)]
    sequence += [[*words[:10], 3, *words[11:]], words[:20] + [4], words[:2], []]
    cache = ContextCache(scorer, entries=6)
    for ids in sequence:
        _, cached = cache.read(ids)
        _, expected = scorer.read(ids)
        assert torch.allclose(cached.float(), expected.float(), atol=1e-5), ids


def test_threads_reading_at_once_get_the_answers_of_one_thread(predictor):
    texts = keystrokes(5)
    expected = [predictor.scorer.read(predictor.encode(t)[1])[1] for t in texts]
    reader = ContextReader(predictor, entries=8)
    failures = []

    def work(offset: int) -> None:
        for i in range(len(texts)):
            index = (i + offset) % len(texts)
            log_probs = reader.read(texts[index]).log_probs
            if not torch.allclose(log_probs, expected[index], atol=1e-5):
                failures.append(texts[index])

    threads = [threading.Thread(target=work, args=(n * 7,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures


def test_no_cache_is_the_plain_path(predictor):
    reader = ContextReader(predictor, entries=0)
    assert reader.states is None and reader.clauses is None
    assert [s.word for s in reader.suggest("我今天", 3)] == [
        s.word for s in predictor.suggest("我今天", 3)]
