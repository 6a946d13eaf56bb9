import json
import shutil

import pytest
import torch

from rnn_ime import modeldir
from rnn_ime.cli import main
from rnn_ime.data import DataDir
from rnn_ime.errors import ModelError
from rnn_ime.metrics import evaluate
from rnn_ime.mixture import MixtureScorer, fit, load_scorer, mix_log_probs
from rnn_ime.ngram import NgramScorer
from rnn_ime.predict import Predictor
from rnn_ime.scoring import NeuralScorer
from rnn_ime.vocab import BOS_ID


@pytest.fixture(scope="module")
def parts(small_data, small_model):
    model, vocab, _ = modeldir.load(small_model)
    data = DataDir(small_data)
    ngram = NgramScorer.train(data.split("train"), vocab, 3)
    return NeuralScorer(model, vocab), ngram, data


def test_the_mixture_is_a_distribution_and_each_end_is_one_scorer(parts):
    neural, ngram, _ = parts
    contexts = [[], [5, 6], [7]]
    mixed = MixtureScorer(neural, ngram, [0.3] * 6).log_probs(contexts)
    assert torch.allclose(mixed.exp().sum(-1), torch.ones(3), atol=1e-4)
    a, b = neural.log_probs(contexts), ngram.log_probs(contexts)
    expected = torch.log(0.7 * a.double().exp() + 0.3 * b.double().exp())
    assert torch.allclose(mixed.double(), expected, atol=1e-4)
    assert torch.equal(mix_log_probs(a, b, 0.0), a) and torch.equal(mix_log_probs(a, b, 1.0), b)


def test_typing_and_evaluation_give_the_mixture_the_same_numbers(parts):
    """One weight per words-of-context bucket: stepping, reading and evaluation must agree on
    how many words precede each one."""
    neural, ngram, data = parts
    scorer = MixtureScorer(neural, ngram, [1.0, 0.0, 0.3, 0.5, 0.7, 0.2])
    split = data.split("test")
    words = [int(w) for w in split.passage_tokens(0)[1:]]
    state, stepped = scorer.step(scorer.start(), BOS_ID)
    by_step = [stepped]
    for word in words[:-1]:
        state, stepped = scorer.step(state, word)
        by_step.append(stepped)
    chunks = {int(o): lp for lps, _, offs in scorer.split_log_probs(split)
              for lp, o in zip(lps, offs, strict=True)}
    start = int(split.starts[0])
    for i, log_probs in enumerate(by_step):
        assert torch.allclose(log_probs, chunks[start + 1 + i], atol=1e-4)
    for n in (0, 3, len(by_step) - 1):
        _, read = scorer.read(words[:n])
        assert torch.allclose(read, by_step[n], atol=1e-4)
        assert torch.allclose(scorer.log_probs([words[:n]])[0], by_step[n], atol=1e-4)
    # after an inner <s>, the count starts again
    _, again = scorer.read([*words[:4], BOS_ID])
    assert torch.allclose(again, by_step[0], atol=1e-4)


def test_evaluation_at_either_end_equals_each_scorer_alone(parts):
    neural, ngram, data = parts
    split = data.split("valid")
    alone = evaluate(neural, split)
    mixed = evaluate(MixtureScorer(neural, ngram, [0.0] * 6), split)
    assert mixed["top1"] == alone["top1"] and mixed["loss"] == pytest.approx(alone["loss"])
    assert evaluate(MixtureScorer(neural, ngram, [1.0] * 6), split)["top1"] == \
        evaluate(ngram, split)["top1"]


def test_fit_keeps_the_best_weight_of_each_context_bucket(parts):
    neural, ngram, data = parts
    record = fit(neural, ngram, data.split("valid"), None, grid=(0.0, 0.5, 1.0))
    assert len(record["weights"]) == len(record["buckets"]) == 6
    for label, weight in zip(record["buckets"], record["weights"], strict=True):
        curve = record["by_bucket"][label]
        assert set(curve) == {"0.0", "0.5", "1.0"}
        if curve["0.0"].get("words"):
            if label == "0":  # a passage's first word: the lowest loss
                loss = {w: r["loss"] for w, r in curve.items()}
                assert loss[str(weight)] == min(loss.values())
            else:
                score = {w: r["top1"] + r["ksr5"] for w, r in curve.items()}
                assert score[str(weight)] == pytest.approx(max(score.values()))
    validation = record["validation"]
    fitted = validation["weights by context"]
    assert record["chosen"] == ("rnn" if not any(record["weights"]) else "mixture")
    # and the fitted scorer, evaluated, gives the figures the fit reported
    scorer = MixtureScorer(neural, ngram, record["weights"])
    assert evaluate(scorer, data.split("valid"))["ksr5"] == pytest.approx(fitted["ksr5"],
                                                                          abs=1e-4)


def test_a_passage_start_keeps_the_weight_of_lowest_loss_not_of_top1():
    from rnn_ime.metrics import KS, Tally
    from rnn_ime.mixture import best_first_word_weight, best_weight

    def tally(loss: float, top1_hits: int) -> Tally:
        return Tally(100, loss * 100, {k: top1_hits if k == 1 else 50 for k in KS})

    # λ 0.3 ranks first the word the validation passages happen to start with (5 hits more);
    # λ 0.5 gives every first word more probability (a lower loss)
    curve = {0.0: tally(6.9, 3), 0.3: tally(6.84, 8), 0.5: tally(6.83, 3), 1.0: tally(6.88, 3)}
    assert best_weight(curve) == 0.3
    assert best_first_word_weight(curve) == 0.5
    assert best_first_word_weight({0.0: Tally(), 0.5: Tally()}) == 0.0  # no words: the model


def test_a_saved_ngram_loads_with_the_same_numbers_and_refuses_garbage(parts, tmp_path):
    _, ngram, data = parts
    ngram.save(tmp_path / "ngram.npz")
    loaded = NgramScorer.load(tmp_path / "ngram.npz", data.vocab)
    assert torch.equal(loaded.log_probs([[5], []]), ngram.log_probs([[5], []]))
    (tmp_path / "bad.npz").write_bytes(b"not an npz at all")
    cut = tmp_path / "cut.npz"
    cut.write_bytes((tmp_path / "ngram.npz").read_bytes()[:5000])  # a copy cut short
    for bad in (tmp_path / "bad.npz", cut, tmp_path / "missing.npz"):
        with pytest.raises(ModelError, match="not a saved n-gram"):
            NgramScorer.load(bad, data.vocab)


def test_mix_command_writes_the_choice_and_every_front_end_loads_it(small_model, tmp_path,
                                                                       capsys):
    model = tmp_path / "m"
    shutil.copytree(small_model, model)
    main(["mix", "--model", str(model), "--order", "3", "--valid-words", "0"])
    out = capsys.readouterr().out
    record = json.loads((model / "mixture.json").read_text())
    assert record["order"] == 3 and "using the" in out
    # force the mixture, so that loading it is tested whatever the tiny model chose
    record.update(chosen="mixture", weights=[0.5] * 6)  # keeps its weights_sha256
    (model / "mixture.json").write_text(json.dumps(record))
    if not (model / "ngram.npz").exists():
        data_dir = modeldir.load_config(model)["train"]["data"]
        NgramScorer.from_data_dir(data_dir, 3).save(model / "ngram.npz")
    assert isinstance(Predictor.from_dir(model).scorer, MixtureScorer)
    assert isinstance(Predictor.from_dir(model, mixture=False).scorer, NeuralScorer)
    main(["evaluate", "--model", str(model), "--json"])
    assert "+kn-3gram" in json.loads(capsys.readouterr().out)["scorer"]
    main(["evaluate", "--model", str(model), "--json", "--no-mixture"])
    assert json.loads(capsys.readouterr().out)["scorer"] == "rnn"
    # metrics.json keeps the figures of the model dir's own scorer, the mixture
    assert "+kn-3gram" in json.loads((model / "metrics.json").read_text())["test"]["scorer"]


def test_a_broken_or_stale_mixture_record_is_a_clear_error(small_model, tmp_path, capsys):
    model = tmp_path / "m"
    shutil.copytree(small_model, model)
    scorer = NeuralScorer(*modeldir.load(model)[:2])
    for text, message in (('{"chosen": "both"}', "not a mixture record"),
                          ('{"chosen": "mixture", "weights": [0.5, true, 0.5, 0.5, 0.5, 0.5]}',
                           "not a mixture record"),
                          ('{"chosen": "mixture", "weights": [0.5]}', "not a mixture record"),
                          ("{not json", "not valid JSON")):
        (model / "mixture.json").write_text(text)
        with pytest.raises(ModelError, match=message):
            load_scorer(model, scorer)
    main(["mix", "--model", str(model), "--order", "3"])
    load_scorer(model, scorer)
    # the model trained again after `mix`: its weights no longer match the record
    (model / "best.safetensors").write_bytes((model / "last.safetensors").read_bytes() + b" ")
    with pytest.raises(ModelError, match="fitted for other weights"):
        load_scorer(model, scorer)
    assert load_scorer(model, scorer, use_mixture=False) is scorer
    with pytest.raises(SystemExit):
        main(["mix", "--model", str(model), "--valid-words", "-5"])
    assert "--valid-words" in capsys.readouterr().err


def test_mixing_probabilities_equals_mixing_log_probabilities():
    """The step's fast path (both scorers' probabilities mixed as they are, one log) gives
    the numbers of mix_log_probs, down to words both scorers give almost nothing."""
    from rnn_ime.mixture import mix_log_probs, mix_probabilities

    generator = torch.Generator().manual_seed(0)
    first = torch.log_softmax(3 * torch.randn(3, 50, generator=generator), dim=-1)
    second = torch.log_softmax(2 * torch.randn(3, 50, generator=generator), dim=-1)
    first[2, 7], second[2, 7] = -60.0, -50.0
    weights = torch.tensor([0.3, 0.6, 1.0])
    fast = mix_probabilities(first.exp(), second.exp(), weights)
    assert torch.allclose(fast, mix_log_probs(first, second, weights), atol=1e-5)
    assert torch.allclose(fast[2], second[2], atol=1e-5)


def test_a_mixture_step_is_mixing_the_two_steps(parts):
    """The step mixes probabilities (every weight above 0) or log-probabilities (a row of
    weight 0, which must be the model's own numbers exactly); both give what mixing the two
    scorers' own steps gives."""
    neural, ngram, _ = parts
    for weights in ([0.3, 0.6, 0.7, 0.4, 0.5, 0.4], [0.0, 0.6, 0.7, 0.4, 0.5, 1.0]):
        scorer = MixtureScorer(neural, ngram, weights)
        start, _ = scorer.step(scorer.start(), BOS_ID)
        states = [start, scorer.step(start, 5)[0], scorer.start()]
        words = [6, 7, BOS_ID]
        stepped = scorer.step_batch(states, words)
        alone = neural.step_batch([s[0] for s in states], words)
        for (state, got), before, word, (_, own) in zip(stepped, states, words, alone,
                                                         strict=True):
            a_state, a = neural.step(before[0], word)
            b_state, b = ngram.step(before[1], word)
            lengths = 0 if word == BOS_ID else before[2] + 1
            want = mix_log_probs(a[None], b[None], scorer.weight_of([lengths]))[0]
            assert state[1] == b_state and state[2] == lengths
            assert torch.allclose(got, want, atol=1e-5)
            if scorer.weight_of([lengths])[0] == 0.0:
                assert torch.equal(got, own)
