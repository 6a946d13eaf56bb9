"""The profile's own copy of the recurrent model, trained on what the user commits: it learns,
the base model and other profiles do not change, Backspace right after a commit drops its step,
forget starts it again, and it is saved into the user's file and read back exactly."""

from __future__ import annotations

import sqlite3

import pytest
import torch

from rnn_ime.ime import open_lexicon
from rnn_ime.ngram import NgramScorer
from rnn_ime.predict import ContextReader, Predictor
from rnn_ime.user import LearnOptions, Profile, UserStore, memo_key, scoring
from rnn_ime.user.adaptation import model_key

TAUGHT = "我们明天去图书馆看看书。"


@pytest.fixture(scope="module")
def predictor(small_model) -> Predictor:
    return Predictor.from_dir(small_model, mixture=False)


def log_prob_after(scorer, predictor: Predictor, context: str, word: str) -> float:
    _, log_probs = scorer.read(predictor.encode(context)[1])
    return float(log_probs[predictor.vocab.id(word)])


def weights(model) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def taught(profile: Profile, times: int) -> None:
    for _ in range(times):
        profile.learn(TAUGHT)
    profile.adaptation.settle(flush=True)


def test_the_model_learns_what_is_committed_and_nothing_else_changes(predictor, tmp_path):
    base_weights = weights(predictor.scorer.model)
    profile = Profile.open(predictor.scorer, tmp_path / "a.db")
    other = Profile.open(predictor.scorer, tmp_path / "b.db")
    assert profile.adaptation is not None and not profile.adaptation.active
    before = log_prob_after(profile.adaptation.scorer, predictor, "我们明天去", "图书馆")
    taught(profile, 8)
    assert profile.adaptation.steps == 8
    after = log_prob_after(profile.adaptation.scorer, predictor, "我们明天去", "图书馆")
    assert after > before + 0.1
    for name, tensor in predictor.scorer.model.state_dict().items():
        assert torch.equal(tensor, base_weights[name]), name
    # the embedding is shared with the base, not copied; the other profile is the base still
    assert profile.adaptation.model.embedding.weight.data_ptr() == \
        predictor.scorer.model.embedding.weight.data_ptr()
    assert log_prob_after(other.adaptation.scorer, predictor, "我们明天去", "图书馆") == \
        pytest.approx(before, abs=1e-6)
    profile.close()
    other.close()


def test_a_commit_waits_for_the_next_and_undo_drops_it(predictor):
    profile = Profile.in_memory(predictor.scorer)
    profile.learn("我们明天去北京。")
    profile.adaptation.settle()
    assert profile.adaptation.steps == 0  # the newest waits: Backspace may still take it back
    profile.learn("今天天气很好。")
    profile.adaptation.settle()
    assert profile.adaptation.steps == 1  # the first, once the second came
    assert profile.undo() is not None
    profile.adaptation.settle(flush=True)
    assert profile.adaptation.steps == 1  # the undone one never taught the model
    profile.learn("我们去看看。")
    profile.adaptation.settle(flush=True)
    assert profile.adaptation.steps == 2


def test_the_adaptation_is_saved_and_read_back_exactly(predictor, tmp_path):
    path = tmp_path / "u.db"
    profile = Profile.open(predictor.scorer, path)
    taught(profile, 3)
    ids = predictor.encode("我们明天去")[1]
    _, adapted = profile.adaptation.scorer.read(ids)
    profile.close()
    again = Profile.open(predictor.scorer, path, LearnOptions(learn=False))
    assert again.adaptation.steps == 3 and again.stats()["model_steps"] == 3
    _, read_back = again.adaptation.scorer.read(ids)
    assert torch.equal(adapted, read_back)
    # the served path (a context from the shared reader, then start_after) ranks with the
    # copy, and the base model never reads that context (the reader's states stay empty)
    reader = ContextReader(predictor)
    read = reader.read("我们明天去")
    state, served = again.start_after(read)
    _, direct = again.scorer.read(ids)
    assert torch.allclose(served, direct, atol=1e-5)
    assert len(reader.states) == 0
    ranking = scoring(again, predictor.scorer, open_lexicon(predictor.vocab), read)
    assert memo_key(ranking, "我们明天去", again)[-1] == (again.model.counts.version,
                                                    again.adaptation.version)
    again.close()


def test_the_weights_are_saved_once_the_typist_pauses_longer(predictor, tmp_path,
                                                           monkeypatch):
    """A save writes megabytes, which slows the commit after it: due after SAVE_EVERY steps, it
    waits for a longer pause (SAVE_PAUSE_S), or for SAVE_AT_MOST unsaved steps."""
    import time

    from rnn_ime.user import adaptation

    monkeypatch.setattr(adaptation, "SAVE_EVERY", 2)
    monkeypatch.setattr(adaptation, "SAVE_AT_MOST", 4)
    monkeypatch.setattr(adaptation, "SAVE_PAUSE_S", 3600.0)
    profile = Profile.open(predictor.scorer, tmp_path / "u.db")
    store = profile.model.store
    taught(profile, 3)
    time.sleep(0.2)
    assert profile.adaptation.steps == 3 and store.adaptation_steps() == 0  # no long pause yet
    taught(profile, 1)
    assert store.adaptation_steps() == 4  # SAVE_AT_MOST: at once
    taught(profile, 2)
    monkeypatch.setattr(adaptation, "SAVE_PAUSE_S", 0.05)
    profile.learn("我们去看看。")
    profile.learn("今天天气很好。")  # hands the one before to the thread, which wakes
    deadline = time.monotonic() + 10
    while store.adaptation_steps() != 7 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.adaptation_steps() == 7  # its step, then the pause: the seven are saved
    profile.close()
    assert UserStore(tmp_path / "u.db").adaptation_steps() == 8  # and the last at close


def test_a_step_that_fails_is_skipped_and_shown(predictor, monkeypatch):
    """A step that raises is skipped (the typing goes on, the counts learned the commit) and
    counted in the profile's stats."""
    profile = Profile.in_memory(predictor.scorer)

    def broken(lesson):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(profile.adaptation, "_step", broken)
    taught(profile, 2)
    stats = profile.stats()
    assert stats["model_steps"] == 0 and stats["model_skipped"] == 2
    assert profile.model.counts.unigram["图书馆"] > 0
    profile.close()


def test_forget_starts_the_adaptation_again(predictor, tmp_path):
    path = tmp_path / "u.db"
    profile = Profile.open(predictor.scorer, path)
    taught(profile, 3)
    profile.close()
    profile = Profile.open(predictor.scorer, path)
    assert profile.adaptation.steps == 3
    assert not profile.forget("没打过的词")  # an unknown word changes nothing
    assert profile.adaptation.steps == 3
    assert profile.forget("图书馆")
    assert profile.adaptation.steps == 0
    ids = predictor.encode("我们明天去")[1]
    assert torch.equal(profile.adaptation.scorer.read(ids)[1], predictor.scorer.read(ids)[1])
    profile.close()
    assert Profile.open(predictor.scorer, path).adaptation.steps == 0


@pytest.mark.parametrize("saved_first", [True, False])
def test_another_process_forgetting_resets_a_profile_kept_open(predictor, tmp_path,
                                                               saved_first):
    """The CLI's `user forget` while a server holds the profile: its copy starts again, whether
    or not it had saved, and a save racing the forget is refused."""
    from rnn_ime.user import UserModel

    path = tmp_path / "u.db"
    profile = Profile.open(predictor.scorer, path)
    taught(profile, 2)
    if saved_first:
        profile.adaptation.save()
    elsewhere = UserModel(UserStore(path))
    assert elsewhere.forget("图书馆")
    elsewhere.store.close()
    forgets = profile.adaptation._forgets
    assert not profile.model.store.save_adaptation(profile.adaptation.key, 2, b"w", forgets)
    profile.learn("今天天气很好。")  # learning picks the forget up too
    assert profile.adaptation.steps == 0
    profile.close()  # trains on the commit after the forget, and only on it
    assert Profile.open(predictor.scorer, path).adaptation.steps == 1


def test_a_second_undo_takes_back_a_commit_still_waiting(predictor, tmp_path):
    profile = Profile.open(predictor.scorer, tmp_path / "u.db")
    profile.learn("我们明天去北京。")
    profile.learn("今天天气很好。")  # the first now waits for a pause
    assert profile.undo() is not None and profile.undo() is not None
    profile.adaptation.settle(flush=True)
    assert profile.adaptation.steps == 0
    profile.close()


def test_a_process_that_never_closes_its_profile_exits_cleanly(small_model):
    """The training thread of a profile nobody closed is stopped at exit (a thread left inside
    torch aborts the process)."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        from rnn_ime.predict import Predictor
        from rnn_ime.user import Profile, adaptation
        adaptation.PAUSE_S = 0.0
        profile = Profile.in_memory(Predictor.from_dir({str(small_model)!r}).scorer)
        for i in range(40):
            profile.learn("我们明天去北京看看。" * 3)
        print("done")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.strip() == "done" and "terminate" not in done.stderr


def test_a_save_the_file_refuses_is_a_note_and_the_file_still_closes(predictor, tmp_path,
                                                                      monkeypatch):
    from rnn_ime.user import UserStoreError

    profile = Profile.open(predictor.scorer, tmp_path / "u.db")
    taught(profile, 1)

    def refuse(*_):
        raise UserStoreError("u.db: could not save the model adaptation (disk I/O error)")

    monkeypatch.setattr(profile.model.store, "save_adaptation", refuse)
    profile.close()
    assert profile.notes == ["the model adaptation was not saved (u.db: could not save the "
                             "model adaptation (disk I/O error))"]
    with pytest.raises(sqlite3.ProgrammingError):  # closed
        profile.model.store.db.execute("SELECT 1")


def test_a_tied_model_saves_and_reloads_its_adaptation(predictor, tmp_path):
    from rnn_ime.model import ModelConfig, NextWordModel
    from rnn_ime.scoring import NeuralScorer

    config = ModelConfig(vocab_size=len(predictor.vocab), embed=16, hidden=16, cell="gru",
                         tie_weights=True, softmax="full")
    tied = NeuralScorer(NextWordModel(config.resolved()).eval(), predictor.vocab)
    path = tmp_path / "u.db"
    profile = Profile.open(tied, path)
    assert "decoder.weight" not in dict(profile.adaptation.model.named_parameters())
    taught(profile, 2)
    profile.close()
    again = Profile.open(tied, path)
    assert again.adaptation.steps == 2 and not again.notes
    again.close()


def test_a_damaged_adaptation_row_leaves_the_counts_usable(predictor, tmp_path):
    path = tmp_path / "u.db"
    profile = Profile.open(predictor.scorer, path)
    taught(profile, 1)
    profile.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE adaptation SET weights = 'text, not weights', steps = 3")
    profile = Profile.open(predictor.scorer, path)
    assert profile.adaptation.steps == 0 and len(profile.notes) == 1
    assert "\n" not in profile.notes[0] and "cannot be used" in profile.notes[0]
    assert profile.model.counts.unigram["图书馆"] > 0
    profile.close()


def test_the_user_unigram_kept_between_commits_is_the_plain_sum(predictor):
    """The unigram arrays are updated by what each commit changed, not rebuilt; with a lexicon
    rebuilt after each new word (a new object, maybe at a freed one's address), through undo,
    forget and a rebase of the counts, they hold what looking every word up gives."""
    import numpy as np

    from rnn_ime.vocab import SPECIALS, UNK_ID

    base = open_lexicon(predictor.vocab)
    profile = Profile.in_memory(predictor.scorer, LearnOptions(adapt=False))
    scorer = profile.scorer

    def check(step):
        lexicon, counts = profile.lexicon(base), profile.model.counts
        want = np.zeros(len(lexicon.words))
        dense = np.zeros(len(predictor.vocab))
        for word, value in counts.unigram.items():
            if (j := lexicon.position.get(word)) is not None:
                want[j] = value
            i = predictor.vocab.id(word)
            dense[i if i >= len(SPECIALS) else UNK_ID] += value
        assert np.array_equal(scorer._lexicon_arrays(lexicon)[0], want), step
        held = scorer._vocabulary_counts()
        logs = held.current_logs(counts).double().numpy()
        assert np.allclose(held.array, dense, rtol=1e-9), step
        with np.errstate(divide="ignore"):
            assert np.allclose(logs, np.log(dense), rtol=1e-6), step  # −inf where none

    names = ["柯谧", "蕲春", "芈月", "邗江"]
    for name in names:
        profile.learn(f"我们去{name}看看。", picks=[(name[0], "x"), (name[1], "y")],
                      known=base)
        check(name)
    assert profile.model.counts.changes, "updated by the changes, not rebuilt"
    profile.undo()
    check("undo")
    lexicon = profile.lexicon(base)
    assert scorer._lexicon_arrays(lexicon)[0][lexicon.position["邗江"]] == 0.0
    profile.forget("芈月")
    check("forget")
    generation = profile.model.counts.generation
    profile.model.counts.rebase()
    assert profile.model.counts.generation != generation
    profile.learn("蕲春的天气很好", known=base)
    check("rebase")


def test_an_adaptation_for_another_model_or_a_damaged_one_is_left_alone(predictor, tmp_path):
    path = tmp_path / "u.db"
    store = UserStore(path)
    store.save_adaptation("0" * 64, 5, b"weights of some other model", 0)
    store.save_adaptation(model_key(predictor.scorer), 7, b"not a torch file", 0)
    store.close()
    profile = Profile.open(predictor.scorer, path)
    assert profile.adaptation.steps == 0
    assert "cannot be used" in profile.adaptation.load_problem
    taught(profile, 1)
    profile.close()
    rows = dict(sqlite3.connect(path).execute("SELECT model, steps FROM adaptation"))
    assert rows == {"0" * 64: 5, model_key(predictor.scorer): 1}


def test_the_cli_says_a_damaged_adaptation_in_one_line(small_model, tmp_path, capsys):
    from rnn_ime.cli import main

    path = tmp_path / "u.db"
    predictor = Predictor.from_dir(small_model)
    store = UserStore(path)
    store.save_adaptation(model_key(predictor.scorer), 7, b"not a torch file", 0)
    store.close()
    main(["pinyin", "--model", str(small_model), "--user-db", str(path), "women"])
    err = capsys.readouterr().err
    assert "the saved model adaptation cannot be used" in err and "Traceback" not in err


def test_only_a_torch_recurrent_model_adapts(predictor, small_data):
    """The n-gram alone has no adaptation; in the mixture the recurrent model adapts and the
    n-gram is shared; --no-adapt turns it off."""
    from rnn_ime.data import DataDir
    from rnn_ime.mixture import CONTEXT_BUCKETS, MixtureScorer

    data = DataDir(small_data)
    ngram = NgramScorer.train(data.split("train"), data.vocab, order=3)
    assert Profile.in_memory(ngram).adaptation is None
    assert Profile.in_memory(predictor.scorer, LearnOptions(adapt=False)).adaptation is None
    mixture = MixtureScorer(predictor.scorer, ngram, [0.5] * len(CONTEXT_BUCKETS))
    profile = Profile.in_memory(mixture)
    adapted = profile.adaptation.scorer
    assert isinstance(adapted, MixtureScorer) and adapted.ngram is ngram
    taught(profile, 2)
    ids = predictor.encode("我们明天去")[1]
    assert not torch.equal(adapted.read(ids)[1], mixture.read(ids)[1])
