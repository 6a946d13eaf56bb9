"""Learning from the user: the SQLite store, counts that fade, undo, forget, profiles kept
apart, durability across kill -9, and the user model behind the Scorer interface."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from rnn_ime.ime import DecoderSettings, decode
from rnn_ime.ime.lexicon import base_of, build_lexicon
from rnn_ime.scoring import Scorer
from rnn_ime.user import Profile, UserModel, UserScorer, UserStore, UserStoreError, UserWeights
from rnn_ime.user.model import Lesson, made_from_picks
from rnn_ime.vocab import SPECIALS, UNK_ID, Vocab

WORDS = ["我", "们", "我们", "明天", "去", "北京", "看看", "，", "。", "其次", "全村"]


class FlatScorer(Scorer[int]):
    """Every word alike, whatever came before: what the user teaches is all that differs."""
    name = "flat"

    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab
        self.table = torch.log_softmax(torch.zeros(len(vocab), dtype=torch.float64), 0)

    def start(self) -> int:
        return 0

    def step_batch(self, states, word_ids):
        return [(0, self.table) for _ in word_ids]


@pytest.fixture()
def vocab() -> Vocab:
    return Vocab(SPECIALS + tuple(WORDS), (0, 0, 0) + (10,) * len(WORDS))


@pytest.fixture()
def lexicon(vocab):
    return build_lexicon(vocab, base_of({"蕲春": 5.0, "气虚": 50.0}, "蕲春其次全村气虚"))


# ---------------------------------------------------------------- the store
def test_store_creates_its_schema_and_refuses_other_files(tmp_path):
    path = tmp_path / "user.db"
    UserStore(path).close()
    assert UserStore(path).clock() == 0.0
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE notes (x TEXT)")
    with pytest.raises(UserStoreError, match="not a user file"):
        UserStore(foreign)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(UserStoreError, match="not a user file"):
        UserStore(garbage)
    newer = tmp_path / "newer.db"
    UserStore(newer).db.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    with pytest.raises(UserStoreError, match="schema 99"):
        UserStore(newer)


DAMAGES = [  # (SQL that damages a user file, what the error says)
    ("INSERT INTO words VALUES ('坏', 'x', 'y', NULL, 0)", "word '坏' has count 'x'"),
    ("INSERT INTO words VALUES ('坏', 1.0, 'y', NULL, 0)", "word '坏' has time 'y'"),
    ("INSERT INTO words VALUES (X'00', 1.0, 0, NULL, 0)", "not text"),
    ("INSERT INTO words VALUES ('坏', -1.0, 0, NULL, 0)", "has count -1.0"),
    ("INSERT INTO words VALUES ('坏', 1e308, 0, NULL, 0)", "has count 1e+308"),
    ("INSERT INTO words VALUES ('坏', 1.0, 1e308, NULL, 0)", "out of range"),
    ("INSERT INTO words VALUES ('坏', 1.0, 0, X'00', 1)", "has reading"),
    ("INSERT INTO bigrams VALUES ('我们', '坏', 'x', 0)", "pair '我们' '坏' has count"),
    ("UPDATE meta SET value = 'abc' WHERE key = 'clock'", "clock 'abc'"),
    ("UPDATE meta SET value = '1e308' WHERE key = 'clock'", "clock '1e308'"),
    ("DELETE FROM meta WHERE key = 'clock'", "no clock"),
    ("DROP TABLE bigrams", "no bigrams table"),
    ("DROP TABLE commits", "no commits table"),
    ("ALTER TABLE words DROP COLUMN reading", "no reading column"),
    ("UPDATE meta SET value = 'abc' WHERE key = 'schema'", "schema version 'abc'"),
    ("DELETE FROM meta WHERE key = 'schema'", "no schema version"),
]


def damaged_file(path, sql: str):
    """A user file with a word or two learned, then damaged by `sql` (as another program
    might); every connection closed, so the file is one file."""
    model = UserModel(UserStore(path))
    model.learn_words(["我们", "去", "北京"])
    model.store.close()
    with sqlite3.connect(path) as db:
        db.execute(sql)
    db.close()
    return path


def file_bytes(directory) -> dict[str, bytes]:
    """The user file and its write-ahead log (not SQLite's shared-memory index, -shm)."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())
            if not p.name.endswith("-shm")}


@pytest.mark.parametrize("sql, message", DAMAGES)
def test_a_damaged_file_is_refused_in_one_line_and_left_as_it_is(tmp_path, sql, message):
    path = damaged_file(tmp_path / "u.db", sql)
    before = file_bytes(tmp_path)
    for opener in (lambda: UserModel(UserStore(path)),
                   lambda: UserModel(UserStore(path, create=False))):
        with pytest.raises(UserStoreError) as error:
            opener()
        assert str(error.value).startswith(f"{path}: damaged: ") and message in str(error.value)
        assert "\n" not in str(error.value) and "upgrade" not in str(error.value)
    assert file_bytes(tmp_path) == before  # never written to


@pytest.mark.parametrize("sql, message", DAMAGES[:3] + DAMAGES[8:12])
def test_a_file_damaged_while_open_keeps_what_was_read(tmp_path, sql, message):
    path = tmp_path / "u.db"
    model = UserModel(UserStore(path))
    model.learn_words(["我们", "去", "北京"])
    with sqlite3.connect(path) as db:
        db.execute(sql)
    db.close()
    before = file_bytes(tmp_path)
    for act in (model.refresh, lambda: model.learn_words(["你好"]), lambda: model.forget("我们"),
                model.undo):
        with pytest.raises(UserStoreError, match=f"damaged: .*({message}|cannot read its)"):
            act()
        assert set(model.counts.unigram) == {"我们", "去", "北京"}
    assert file_bytes(tmp_path) == before


@pytest.mark.parametrize("lesson", ["{}", "not json", '{"words": [["我们", "x"]], "bigrams": [],'
                                    ' "made": []}', '{"words": [["我们", 1e308]], "bigrams": [],'
                                    ' "made": []}'])
def test_undo_of_a_damaged_commit_is_refused(tmp_path, lesson):
    path = tmp_path / "u.db"
    model = UserModel(UserStore(path))
    model.learn_words(["我们", "去"])
    model.learn_words(["北京"])
    with sqlite3.connect(path) as db:
        db.execute("UPDATE commits SET lesson = ? WHERE id = (SELECT MAX(id) FROM commits)",
                   (lesson,))
    db.close()
    with pytest.raises(UserStoreError, match="damaged: (commit .* not a lesson|.*out of range)"):
        model.undo()
    assert set(model.counts.unigram) == {"我们", "去", "北京"}
    assert model.counts.clock == 3


def test_import_keeps_counts_the_file_can_hold(tmp_path):
    path = tmp_path / "u.db"
    model = UserModel(UserStore(path))
    for _ in range(3):
        model.add_counts([("甲", 1e14)])
    assert UserModel(UserStore(path)).counts.unigram["甲"] <= 1e15


# ---------------------------------------------------------------- counts
def test_counts_fade_with_the_words_typed_since(tmp_path):
    model = UserModel(UserStore(tmp_path / "u.db"), half_life=10.0)
    model.learn_words(["甲"])
    model.learn_words(["乙"] * 10)
    counts = model.counts
    assert counts.effective(counts.unigram["甲"]) == pytest.approx(0.5)
    reopened = UserModel(UserStore(tmp_path / "u.db"), half_life=10.0)
    assert reopened.counts.effective(reopened.counts.unigram["甲"]) == pytest.approx(0.5)
    assert reopened.counts.unigram_probability("甲") == pytest.approx(
        counts.unigram_probability("甲"))


def test_rebasing_keeps_the_probabilities(tmp_path):
    model = UserModel(None, half_life=1.0)
    model.learn_words(["甲", "乙"])
    before = (model.counts.bigram_probability("乙", "甲"), *model.counts.after("甲"),
              model.counts.unigram_probability("乙"))
    model.counts.rebase()
    assert (model.counts.bigram_probability("乙", "甲"), *model.counts.after("甲"),
            model.counts.unigram_probability("乙")) == pytest.approx(before)
    for _ in range(3):
        model.learn_words(["丙"] * 400)  # 2^1200 without rebasing
    assert math.isfinite(model.counts.total)


def test_undo_takes_back_exactly_one_commit(tmp_path):
    model = UserModel(UserStore(tmp_path / "u.db"))
    model.learn_words(["我们", "去"])
    before = (dict(model.counts.unigram), model.counts.bigram_probability("去", "我们"))
    model.learn_words(["我们", "去", "蕲春"], made=[("蕲春", "qi'chun")])
    assert "蕲春" in model.counts.made
    assert model.undo() is not None
    assert set(model.counts.unigram) == set(before[0])
    assert model.counts.bigram_probability("去", "我们") == pytest.approx(before[1], rel=1e-6)
    assert "蕲春" not in model.counts.made
    reopened = UserModel(UserStore(tmp_path / "u.db"))
    assert set(reopened.counts.unigram) == set(before[0]) and not reopened.counts.made


def test_forget_removes_a_word_and_what_was_learned_from_it(tmp_path):
    model = UserModel(UserStore(tmp_path / "u.db"))
    model.learn_words(["我们", "去", "蕲春"], made=[("蕲春", "qi'chun")])
    assert model.forget("蕲春")
    assert "蕲春" not in model.counts.unigram and "蕲春" not in model.counts.made
    assert "蕲春" not in model.counts.bigram.get("去", {})
    assert model.undo() is None  # the commit that taught it is gone too
    reopened = UserModel(UserStore(tmp_path / "u.db"))
    assert "蕲春" not in reopened.counts.unigram and not reopened.counts.made
    assert not model.forget("从未")


def test_a_forgotten_word_is_nowhere_in_the_files(tmp_path):
    """Its rows are zeroed in the file (secure_delete), and the log, whose older pages held
    them, is emptied, while the profile is still open."""
    path = tmp_path / "u.db"
    model = UserModel(UserStore(path))
    for i in range(30):
        model.learn_words(["我们", "去", "蕲春", "看看", f"第{i}次"], made=[("蕲春", "qi'chun")])
    model.store.checkpointer.close()  # its copy of the log could come in between
    secret = "蕲春".encode()
    assert model.store.scrub() and secret in path.read_bytes()  # the file holds it now
    # SQLite may be built without it (this one was): set for every file
    assert model.store.db.execute("PRAGMA secure_delete").fetchone()[0] == 1
    assert model.forget("蕲春")
    for file in tmp_path.iterdir():
        assert secret not in file.read_bytes(), file.name
    model.learn_words(["我们", "去", "北京"])  # and the profile goes on
    assert "蕲春" not in UserModel(UserStore(path)).counts.unigram


def test_profiles_are_kept_apart(tmp_path, vocab, lexicon):
    one = Profile.open(FlatScorer(vocab), tmp_path / "one.db")
    two = Profile.open(FlatScorer(vocab), tmp_path / "two.db")
    one.learn("蕲春", picks=[("蕲", "qi"), ("春", "chun")], known=lexicon)
    assert one.model.counts.unigram and not two.model.counts.unigram
    assert UserModel(UserStore(tmp_path / "two.db")).counts.unigram == {}


def test_another_process_writes_are_seen(tmp_path):
    mine = UserModel(UserStore(tmp_path / "u.db"))
    theirs = UserModel(UserStore(tmp_path / "u.db"))
    theirs.learn_words(["他们"])
    assert mine.refresh() and "他们" in mine.counts.unigram


def test_an_acknowledged_commit_survives_kill_9(tmp_path):
    path = tmp_path / "u.db"
    script = textwrap.dedent(f"""
        import os, signal, sys
        from rnn_ime.user import UserModel, UserStore
        model = UserModel(UserStore({str(path)!r}))
        for i in range(50):
            model.learn_words(["词" + str(i)])
        print("acknowledged", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == -signal.SIGKILL and "acknowledged" in done.stdout
    model = UserModel(UserStore(path))
    assert len(model.counts.unigram) == 50 and model.counts.clock == 50


def test_the_log_is_copied_into_the_file_once_the_typist_pauses(tmp_path):
    """Not inside a commit (SQLite's automatic checkpoint would sync the file there, a pause
    typing feels): a thread of the store's own, once commits stop for a moment."""
    import shutil
    import time

    from rnn_ime.user.store import AUTOCHECKPOINT_PAGES

    waiting = UserStore(tmp_path / "u.db")
    assert waiting.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == AUTOCHECKPOINT_PAGES
    waiting.checkpointer.idle_s = 60.0
    UserModel(waiting).learn_words(["我们", "去"])
    assert waiting.checkpointer.done == 0  # none within the commit, nor before the pause
    waiting.close()  # at once, not after the pause
    assert waiting.checkpointer.thread is None
    store = UserStore(tmp_path / "u.db")
    store.checkpointer.idle_s = 0.02
    UserModel(store).learn_words(["他们"])
    deadline = time.monotonic() + 10.0
    while store.checkpointer.done == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.checkpointer.done == 1
    shutil.copyfile(tmp_path / "u.db", tmp_path / "alone.db")  # the file without its log
    assert {"我们", "去", "他们"} <= set(UserModel(UserStore(tmp_path / "alone.db")).counts.unigram)
    store.close()


def test_without_a_thread_for_the_checkpoint_learning_and_closing_go_on(tmp_path, monkeypatch):
    import threading

    def refused(self):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refused)
    store = UserStore(tmp_path / "u.db")
    UserModel(store).learn_words(["我们"])  # SQLite's own checkpoint stays, as a bound
    store.close()
    assert "我们" in UserModel(UserStore(tmp_path / "u.db")).counts.unigram


def test_the_checkpoint_never_makes_a_file_that_was_deleted(tmp_path):
    import time

    store = UserStore(tmp_path / "u.db")
    store.checkpointer.idle_s = 0.05
    UserModel(store).learn_words(["我们"])
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"u.db{suffix}").unlink(missing_ok=True)  # the user forgets everything
    time.sleep(0.3)
    assert not (tmp_path / "u.db").exists()
    store.close()


# ---------------------------------------------------------------- new words
def test_a_word_assembled_from_single_characters_is_made():
    assert made_from_picks([("蕲", "qi"), ("春", "chun")], set()) == ("蕲春", "qi'chun")
    # typed through a fuzzy rule: the word keeps its real reading
    assert made_from_picks([("中", "zong"), ("锅", "guo")], set()) == ("中锅", "zhong'guo")
    assert made_from_picks([("我们", "women"), ("明天", "mingtian")], set()) is None
    assert made_from_picks([("蕲", "qi"), ("春", "chun")], {"蕲春"}) is None
    assert made_from_picks([("蕲", "qi")], set()) is None


# ---------------------------------------------------------------- scoring
def test_a_new_profile_changes_nothing(vocab):
    base = FlatScorer(vocab)
    scorer = UserScorer(base, UserModel(None))
    assert torch.equal(scorer.read([3, 4])[1], base.read([3, 4])[1])


def test_the_words_after_a_word_count_by_how_often_and_how_alike(vocab):
    """p(w | prev) = (1 − β)·[(1 − λ)·p_base + λ·p_uni] + β·p_bi, λ = unigram·n / (n + prior),
    β = bigram·c(prev) / (c(prev) + spread·t(prev)) (no warm-up): exact, and β grows with the
    times a word was followed and shrinks with the different words that followed it."""
    weights = UserWeights(unigram=0.1, prior=50.0, bigram=0.8, spread=2.0, trigram=0.0,
                          warmup=0.0)
    model = UserModel(None, half_life=1e12)  # no fading between these few words
    model.learn_words(["我们", "去", "北京"])
    model.learn_words(["我们", "去", "北京"])
    model.learn_words(["明天", "去", "看看"])
    scorer = UserScorer(FlatScorer(vocab), model, weights)
    n = model.counts.words_typed()
    lam = 0.1 * n / (n + 50.0)
    beta = 0.8 * 3 / (3 + 2.0 * 2)  # 去 followed 3 times, by 2 different words
    flat = 1.0 / len(vocab)
    state, log_probs = scorer.read([vocab.id("我们"), vocab.id("去")])
    for word, p_uni, p_bi in (("北京", 2 / 9, 2 / 3), ("看看", 1 / 9, 1 / 3), ("明天", 1 / 9, 0)):
        expected = (1 - beta) * ((1 - lam) * flat + lam * p_uni) + beta * p_bi
        assert math.exp(log_probs[vocab.id(word)]) == pytest.approx(expected)
    # always the same word after 我们, seen twice: trusted more than the two words after 去
    assert scorer.mixing("我们").bigram == pytest.approx(0.8 * 2 / (2 + 2.0))
    assert scorer.mixing("我们").bigram > scorer.mixing("去").bigram
    assert scorer.mixing("北京").bigram == 0.0  # nothing typed after it: the unigram alone


def test_pairs_and_triples_count_in_full_only_once_the_user_has_typed_a_while(vocab):
    """β and γ are scaled by n / (n + warmup), n the words typed: at first a pair seen once
    weighs little (most do not come back), and the scale grows as the user types."""
    def mixing(warmup: float, repeats: int):
        model = UserModel(None, half_life=1e12)
        for _ in range(repeats):
            model.learn_words(["我们", "去", "北京"])
        scorer = UserScorer(FlatScorer(vocab), model, UserWeights(warmup=warmup))
        return scorer.mixing("去", "我们"), model.counts.words_typed()

    for repeats in (1, 10):
        full, n = mixing(0.0, repeats)
        scaled, _ = mixing(30.0, repeats)
        grown = n / (n + 30.0)
        assert scaled.trigram == pytest.approx(grown * full.trigram)
        assert scaled.bigram / (1 - scaled.trigram) == \
            pytest.approx(grown * full.bigram / (1 - full.trigram))
    assert mixing(30.0, 1)[0].bigram < mixing(30.0, 10)[0].bigram


def test_the_words_after_two_words_come_on_top_of_the_bigram(vocab):
    """p = (1 − γ)·{bigram mixture} + γ·p_tri(w | prev2, prev), γ = trigram·c / (c + spread·t):
    exact; after 我们 去 (always 北京) the trigram is trusted, after 明天 去 it is not used for
    北京, and a trigram needs its two words in order."""
    weights = UserWeights(unigram=0.1, prior=50.0, bigram=0.8, spread=2.0, trigram=0.5,
                          trigram_spread=1.0, warmup=0.0)
    model = UserModel(None, half_life=1e12)
    model.learn_words(["我们", "去", "北京"])
    model.learn_words(["我们", "去", "北京"])
    model.learn_words(["明天", "去", "看看"])
    scorer = UserScorer(FlatScorer(vocab), model, weights)
    n = model.counts.words_typed()
    lam, beta = 0.1 * n / (n + 50.0), 0.8 * 3 / (3 + 2.0 * 2)
    gamma = 0.5 * 2 / (2 + 1.0 * 1)  # 我们 去 followed twice, by one word
    flat = 1.0 / len(vocab)
    _, log_probs = scorer.read([vocab.id("我们"), vocab.id("去")])
    for word, p_uni, p_bi, p_tri in (("北京", 2 / 9, 2 / 3, 1.0), ("看看", 1 / 9, 1 / 3, 0.0)):
        below = (1 - beta) * ((1 - lam) * flat + lam * p_uni) + beta * p_bi
        expected = (1 - gamma) * below + gamma * p_tri
        assert math.exp(log_probs[vocab.id(word)]) == pytest.approx(expected)
    assert scorer.mixing("去", "我们").trigram == pytest.approx(gamma)
    assert scorer.mixing("去", "明天").trigram == pytest.approx(0.5 * 1 / 2)
    assert scorer.mixing("去", "北京").trigram == 0.0  # never typed in that order
    assert scorer.mixing("去").trigram == 0.0
    _, after_tomorrow = scorer.read([vocab.id("明天"), vocab.id("去")])
    assert after_tomorrow[vocab.id("看看")] > log_probs[vocab.id("看看")]


def test_a_trigram_is_undone_and_forgotten_with_its_words(tmp_path):
    model = UserModel(UserStore(tmp_path / "u.db"))
    model.learn_words(["我们", "去", "北京"])
    model.learn_words(["看看"], prev="北京", prev2="去")
    assert model.counts.trigram_probability("看看", "去", "北京") == 1.0
    model.undo()
    assert model.counts.after_two("去", "北京") == (0.0, 0)
    assert model.counts.trigram_probability("北京", "我们", "去") == 1.0
    model.store.close()
    again = UserModel(UserStore(tmp_path / "u.db"))  # what the file holds
    assert again.counts.trigram_probability("北京", "我们", "去") == 1.0
    assert again.stats()["trigrams"] == 1
    again.forget("北京")
    assert again.counts.after_two("我们", "去") == (0.0, 0) and not again.counts.trigram
    again.store.close()
    assert not UserModel(UserStore(tmp_path / "u.db")).counts.trigram


def test_a_user_file_of_schema_1_gains_the_trigrams_table(tmp_path):
    """A profile written before trigrams opens, keeps its words and learns trigrams."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE words (word TEXT PRIMARY KEY, count REAL NOT NULL, seen REAL NOT NULL,
                            reading TEXT, made INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE bigrams (prev TEXT NOT NULL, word TEXT NOT NULL, count REAL NOT NULL,
                              seen REAL NOT NULL, PRIMARY KEY (prev, word));
        CREATE TABLE commits (id INTEGER PRIMARY KEY AUTOINCREMENT, clock REAL NOT NULL,
                              lesson TEXT NOT NULL);
        INSERT INTO meta VALUES ('application', 'rnn-ime user model'), ('schema', '1'),
                                ('clock', '2');
        INSERT INTO words VALUES ('我们', 1, 2, NULL, 0), ('去', 1, 2, NULL, 0);
        INSERT INTO bigrams VALUES ('我们', '去', 1, 2);
        INSERT INTO commits (clock, lesson) VALUES
            (2, '{"words": [["我们", 1], ["去", 2]], "bigrams": [["我们", "去", 2]], "made": []}');
    """)
    db.close()
    model = UserModel(UserStore(path))
    assert model.counts.bigram_probability("去", "我们") == 1.0
    _, _, stored = model.store.last_commit()
    assert Lesson.from_json(stored).trigrams == ()  # a lesson of schema 1 still reads
    model.learn_words(["我们", "去", "北京"])
    assert model.counts.trigram_probability("北京", "我们", "去") == 1.0
    schema = model.store.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    assert schema == ("3",)
    tables = {row[0] for row in model.store.db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"trigrams", "adaptation"} <= tables
    model.store.close()


def test_the_user_mixture_sums_to_one_over_vocabulary_and_lexicon(vocab, lexicon):
    """Over the vocabulary, the lexicon and the user's words neither lists."""
    model = UserModel(None)
    model.learn_words(["我们", "去", "蕲春", "我们", "去", "北京", "气虚"])
    scorer = UserScorer(FlatScorer(vocab), model)
    state, log_probs = scorer.read([vocab.id("我们"), vocab.id("去")])
    probs = log_probs.double().exp().numpy()
    assert probs.sum() == pytest.approx(1.0)
    words = np.arange(len(lexicon.words))
    open_lp = scorer.lexicon_log_probs(state, log_probs.double().numpy(), lexicon, words)
    in_lexicon = np.exp(open_lp).sum()
    vocab_only = sum(probs[i] for i in range(len(vocab))
                     if i != UNK_ID and vocab.word(i) not in lexicon.position)
    assert in_lexicon + vocab_only == pytest.approx(1.0)
    # the user's words that neither the vocabulary nor the lexicon lists keep their share
    model.learn_words(["我们", "OK", "2024"])
    state, log_probs = scorer.read([vocab.id("我们")])
    open_lp = scorer.lexicon_log_probs(state, log_probs.double().numpy(), lexicon, words)
    probs = log_probs.double().exp().numpy()
    vocab_only = sum(probs[i] for i in range(len(vocab))
                     if i != UNK_ID and vocab.word(i) not in lexicon.position)
    unlisted = sum(scorer.user_probability(w, "我们") for w in ("OK", "2024"))
    assert np.exp(open_lp).sum() + vocab_only + unlisted == pytest.approx(1.0)
    # the decoder's batched path gives the same numbers
    [(unmixed_state, unmixed)] = scorer.step_words_for_lexicon(
        [scorer.read([])[0]], ["我们"])
    np.testing.assert_allclose(scorer.lexicon_log_probs_batch(
        [unmixed_state], [unmixed], lexicon, words)[0], open_lp, rtol=1e-5, atol=1e-6)


def test_the_decoder_s_unmixed_steps_give_the_mixed_numbers(vocab, lexicon):
    """step_words_for_lexicon hands the decoder the base's log-probabilities and mixes only at
    the words looked up: the same numbers as mixing over the whole vocabulary first."""
    model = UserModel(None)
    model.learn_words(["我们", "去", "蕲春", "我们", "去", "北京", "气虚", "我们", "去", "蕲春"])
    scorer = UserScorer(FlatScorer(vocab), model)
    start, _ = scorer.read([vocab.id("我们")])
    words = np.arange(len(lexicon.words))
    after = ("去", "蕲春", "北京")
    stepped = scorer.step_words_for_lexicon([start] * 3, after)
    expected = []
    for word, (state, unmixed) in zip(after, stepped, strict=True):
        [(mixed_state, mixed)] = scorer.step_words([start], [word])
        assert state.unmixed and not mixed_state.unmixed
        assert model.counts.after(word)[0] > 0  # its bigram row mixes in
        expected.append(scorer.lexicon_log_probs(mixed_state, mixed.double().numpy(), lexicon,
                                                 words))
        found = scorer.lexicon_log_probs(state, unmixed, lexicon, words)
        np.testing.assert_allclose(found, expected[-1], rtol=1e-5, atol=1e-6)
    # the decoder's hypotheses at one position, all at once
    batch = scorer.lexicon_log_probs_batch([s for s, _ in stepped], [lp for _, lp in stepped],
                                           lexicon, words)
    np.testing.assert_allclose(batch, np.stack(expected), rtol=1e-5, atol=1e-6)
    # one vocabulary word (the mark typed after a phrase), unmixed steps or mixed
    for word, (state, unmixed) in zip(after, stepped, strict=True):
        [(mixed_state, mixed)] = scorer.step_words([start], [word])
        for word_id in (vocab.id("我们"), vocab.id("去")):
            assert scorer.word_log_prob(state, unmixed, word_id) == pytest.approx(
                float(mixed[word_id]), abs=1e-5)
            assert scorer.word_log_prob(mixed_state, mixed.numpy(), word_id) == pytest.approx(
                float(mixed[word_id]), abs=1e-6)


def test_beam_completion_offers_the_user_s_own_words_as_suggest_does(vocab):
    """A word outside the vocabulary the user taught: beam completion proposes it (with its
    text, not <unk>), length 1 agrees with the suggestions, and the words the user typed
    after it follow it."""
    from rnn_ime.beam import beam_search

    model = UserModel(None)
    for _ in range(30):
        model.learn_words(["我们", "去", "蕲春", "看看"])
    scorer = UserScorer(FlatScorer(vocab), model)
    assert "蕲春" not in vocab
    state, log_probs = scorer.read([vocab.id("我们"), vocab.id("去")])
    suggested = scorer.suggest(state, log_probs, 3)
    one = beam_search(scorer, [vocab.id("我们"), vocab.id("去")], beam=3, length=1)
    assert suggested[0][0] == "蕲春" and [c.words[0] for c in one] == [w for w, _ in suggested]
    assert [c.log_prob for c in one] == pytest.approx([math.log(p) for _, p in suggested])
    two = beam_search(scorer, [vocab.id("我们"), vocab.id("去")], beam=3, length=2)
    assert two[0].words == ("蕲春", "看看")  # stepped with its text: the user's bigram counts


def test_the_user_s_own_words_kept_between_commits_are_the_most_frequent(vocab, monkeypatch):
    """The words outside the vocabulary that suggestions offer are updated by each commit's
    changes, not sorted anew; through new words, words that pass the last one kept, undo and
    forget, they are the most frequent, as sorting all of them gives."""
    import random

    from rnn_ime.user.scorer import OutsideWords

    monkeypatch.setattr(OutsideWords, "KEEP", 5)
    model = UserModel(None)
    scorer = UserScorer(FlatScorer(vocab), model)
    rng = random.Random(0)
    names = [f"词{i}" for i in range(12)]

    def check(step):
        counts = model.counts
        outside = sorted((w for w in counts.unigram if w not in vocab),
                         key=lambda w: (-counts.unigram[w], w))
        assert scorer._outside.first(counts, 4) == outside[:4], step

    for i in range(60):
        model.learn_words(rng.choices(names, k=3) + ["我们"])
        check(i)
    model.undo()
    check("undo")
    model.forget(scorer._outside.first(model.counts, 1)[0])
    check("forget")


def test_a_word_typed_once_character_by_character_comes_first(small_model):
    """A name no dictionary lists, picked character by character once: the next time its full
    pinyin and its initials give it first (a real model and the full lexicon)."""
    from rnn_ime.ime import open_lexicon
    from rnn_ime.predict import Predictor

    predictor = Predictor.from_dir(small_model)
    lexicon = open_lexicon(predictor.vocab)
    assert "柯谧" not in lexicon.position
    profile = Profile.in_memory(predictor.scorer)
    before = decode(profile.scorer, "kemi", (), DecoderSettings(k=5), lexicon)
    assert before.phrases[0].text != "柯谧"
    profile.learn("柯谧", picks=[("柯", "ke"), ("谧", "mi")], known=lexicon)
    for typed in ("kemi", "km"):
        found = decode(profile.scorer, typed, (), DecoderSettings(k=5),
                       profile.lexicon(lexicon))
        assert found.phrases[0].text == "柯谧", typed


def test_a_context_read_by_the_server_mixes_as_the_scorer_reading_it(small_model):
    """The served path (a ContextReader's context, then `start_after`) gives the same
    distribution as the profile's scorer reading the words: the previous two words reach the
    trigram, and the learned continuation comes first."""
    from rnn_ime.predict import ContextReader, Predictor

    predictor = Predictor.from_dir(small_model)
    profile = Profile.in_memory(predictor.scorer)
    for _ in range(5):
        profile.learn("我们明天去图书馆看看。")
    context = "老师今天说我们明天去"
    read = ContextReader(predictor).read(context)
    assert len(read.last_words) == 2
    state, served = profile.start_after(read)
    assert state.prev2 == read.last_words[0] and state.prev == read.last_words[1]
    _, direct = profile.scorer.read(predictor.encode(context)[1])
    assert torch.allclose(served, direct, atol=1e-5)
    assert profile.scorer.suggest(state, served, 1)[0][0] == "图书馆"


def test_learning_is_off_with_no_learn(vocab, lexicon, tmp_path):
    from rnn_ime.user import LearnOptions

    profile = Profile.open(FlatScorer(vocab), tmp_path / "u.db", LearnOptions(learn=False))
    assert profile.learn("我们去北京") is None and not profile.model.counts.unigram
    profile = Profile.open(FlatScorer(vocab), tmp_path / "u.db", LearnOptions(use=False))
    assert isinstance(profile.scorer, FlatScorer)


def test_export_and_import(tmp_path):
    model = UserModel(UserStore(tmp_path / "a.db"))
    model.learn_words(["我们", "去", "我们"], made=[("蕲春", "qi'chun")])
    lines = model.export_lines()
    assert lines[0].startswith("我们\t")
    other = UserModel(UserStore(tmp_path / "b.db"))
    imported, skipped = other.import_lines([*lines, "坏\tnot-a-number", ""])
    assert (imported, skipped) == (len(lines), 1)
    assert set(other.counts.unigram) == {"我们", "去"} and other.counts.made == {"蕲春": "qi'chun"}


def test_import_skips_and_counts_lines_that_would_store_nothing(tmp_path):
    """A word of spaces only, no word, a count of 0 (without a made word's reading), a negative
    or non-finite count, a reading that does not spell its word: skipped and counted, never
    stored; blank lines and comments are passed over."""
    model = UserModel(UserStore(tmp_path / "a.db"))
    bad = ["  \t500", "\t7", "\u3000\t9", "词\t0", "词\t-1", "词\tnan", "词\tinf", "坏\tx",
           "我们\t3\tni'hao", "我们\t3\tgarbage"]  # a reading that does not spell the word
    imported, skipped = model.import_lines([*bad, "", "   ", "# a comment", "我们\t3",
                                            "蕲春\t0\tqi'chun", " 去 \t2"])
    assert (imported, skipped) == (3, len(bad))
    assert set(model.counts.unigram) == {"我们", "去"}  # the word's spaces dropped
    assert model.counts.made == {"蕲春": "qi'chun"}
    assert not any(line.split("\t")[0].strip() != line.split("\t")[0]
                   for line in model.export_lines())


def test_importing_twice_adds_the_counts(tmp_path):
    """As the README says: each line's count is added to the count already there."""
    model = UserModel(UserStore(tmp_path / "a.db"))
    lines = ["我们\t3", "去\t2"]
    model.import_lines(lines)
    model.import_lines(lines)
    counts = model.counts
    assert counts.effective(counts.unigram["我们"]) == pytest.approx(6)
    assert counts.effective(counts.unigram["去"]) == pytest.approx(4)


def test_store_refuses_a_directory_and_a_missing_directory_when_told(tmp_path):
    with pytest.raises(UserStoreError, match=r": is a directory, not a user file$"):
        UserStore(tmp_path)
    missing = tmp_path / "nope" / "u.db"
    with pytest.raises(UserStoreError, match=f"its directory {missing.parent} does not exist"):
        UserStore(missing, make_dirs=False)
    assert not missing.parent.exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserStoreError, match="is not a directory"):
        UserStore(tmp_path / "file" / "u.db", make_dirs=False)
    UserStore(missing).close()  # the default: the directories are made
    assert missing.is_file()


# ---------------------------------------------------------------- the CLI
def test_cli_learn_user_commands_and_options(small_model, tmp_path, capsys):
    from rnn_ime.cli import main

    db = str(tmp_path / "u.db")
    main(["learn", "--model", str(small_model), "--user-db", db, "我们明天去柯谧家玩",
          "我们明天去柯谧家玩"])
    out = capsys.readouterr().out
    assert out.startswith("learned ") and "2 commits" in out
    main(["user", "stats", "--user-db", db])
    stats = json.loads(capsys.readouterr().out)
    assert stats["words"] > 3 and stats["words_typed"] > 6
    main(["user", "export", "--user-db", db])
    exported = capsys.readouterr().out
    assert "我们\t" in exported
    main(["user", "forget", "我们", "--user-db", db])
    assert capsys.readouterr().out.startswith("forgot 我们")
    main(["user", "export", "--user-db", db])
    assert "我们\t" not in capsys.readouterr().out
    listing = tmp_path / "words.txt"
    listing.write_text("柯谧\t3\tke'mi\n坏行\tx\n", encoding="utf-8")
    main(["user", "import", str(listing), "--user-db", str(tmp_path / "v.db")])
    assert capsys.readouterr().out.endswith(
        "v.db; skipped 1 line (not a word with a count above 0)\n")
    main(["learn", "--model", str(small_model), "--user-db", db, "好"])
    assert capsys.readouterr().out.startswith("learned 1 word from 1 commit into ")
    main(["pinyin", "--model", str(small_model), "--user-db", str(tmp_path / "v.db"), "kemi"])
    assert capsys.readouterr().out.startswith("1.柯谧")
    main(["pinyin", "--model", str(small_model), "--user-db", str(tmp_path / "v.db"),
          "--no-user", "kemi"])
    assert not capsys.readouterr().out.startswith("1.柯谧")


def test_cli_user_commands_on_a_profile_without_a_file_yet(tmp_path, capsys, small_model):
    """As the server's stats and forget: an empty profile, exit 0, and no file made; scoring
    with a --user-db that does not exist stays an error (a mistyped path)."""
    from rnn_ime.cli import main

    path = tmp_path / "none.db"
    main(["user", "stats", "--user-db", str(path)])
    stats = json.loads(capsys.readouterr().out)
    assert stats["exists"] is False and stats["words"] == 0 and stats["file"] == str(path)
    main(["user", "export", "--user-db", str(path)])
    assert capsys.readouterr().out == ""
    main(["user", "forget", "蕲春", "--user-db", str(path)])
    assert "not learned" in capsys.readouterr().out
    assert not path.exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--model", str(small_model), "--user-db", str(path), "我们"])
    assert exit_info.value.code == 2 and "no such user file" in capsys.readouterr().err
    main(["learn", "--model", str(small_model), "--user-db", str(path), "我们去北京"])
    capsys.readouterr()
    main(["user", "stats", "--user-db", str(path)])
    stats = json.loads(capsys.readouterr().out)
    assert stats["exists"] is True and stats["words"] == 3


GB18030_HINT = ("{tmp}/gbk.txt: not UTF-8 text (invalid byte 0xce at offset 0); it reads as "
                "GB18030/GBK: convert it with iconv -f GB18030 -t UTF-8")


@pytest.mark.parametrize("argv, message", [
    (["user", "forget", "--user-db", "{tmp}/u.db"], "needs the word"),
    (["user", "import", "{tmp}/nope.txt", "--user-db", "{tmp}/u.db"], "cannot read"),
    (["user", "stats", "--user-db", "{tmp}/foreign.db"], "not a user file"),
    (["user", "import", "{tmp}/gbk.txt", "--user-db", "{tmp}/u.db"], GB18030_HINT),
    (["user", "stats", "--user-db", "{tmp}"], "{tmp}: is a directory, not a user file"),
    (["user", "export", "--user-db", "{tmp}"], "{tmp}: is a directory, not a user file"),
    (["user", "import", "{tmp}/words.txt", "--user-db", "{tmp}/nope/u.db"],
     "{tmp}/nope/u.db: its directory {tmp}/nope does not exist"),
    (["learn", "--model", "{model}", "--user-db", "{tmp}", "我们"],
     "{tmp}: is a directory, not a user file"),
    (["learn", "--model", "{model}", "--user-db", "{tmp}/nope/u.db", "我们"],
     "{tmp}/nope/u.db: its directory {tmp}/nope does not exist"),
    (["learn", "--model", "{model}", "--user-db", "{tmp}/u.db", "--file", "{tmp}/gbk.txt"],
     GB18030_HINT),
    (["pinyin", "--model", "{model}", "--user-db", "{tmp}", "women"],
     "{tmp}: is a directory, not a user file"),
])
def test_cli_user_errors_are_one_line(argv, message, tmp_path, capsys, small_model):
    from rnn_ime.cli import main

    (tmp_path / "foreign.db").write_bytes(b"x" * 4096)
    (tmp_path / "gbk.txt").write_bytes("我们\t3\n".encode("gbk"))
    (tmp_path / "words.txt").write_text("我们\t3\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        main([a.replace("{tmp}", str(tmp_path)).replace("{model}", str(small_model))
              for a in argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message.replace("{tmp}", str(tmp_path)) in err and err.count("\n") == 1
    assert not (tmp_path / "nope").exists()


@pytest.mark.parametrize("action", ["stats", "export"])
def test_cli_user_stats_and_export_take_no_argument(action, tmp_path, capsys):
    from rnn_ime.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["user", action, "extra", "--user-db", str(tmp_path / "u.db")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: rnn-ime") and err.endswith(
        "rnn-ime: error: unrecognized arguments: extra\n")
    assert not (tmp_path / "u.db").exists()


@pytest.mark.parametrize("command", [["user", "stats"], ["user", "export"],
                                     ["user", "forget", "我们"], ["user", "import", "-"],
                                     ["predict", "--model", "{model}", "我们"],
                                     ["predict", "--model", "{model}", "--beam", "2", "我们"],
                                     ["learn", "--model", "{model}", "我们"],
                                     ["pinyin", "--model", "{model}", "women"],
                                     ["evaluate", "--model", "{model}"]])
def test_cli_says_a_damaged_file_in_one_line(command, small_model, tmp_path, capsys,
                                            monkeypatch):
    from rnn_ime.cli import main

    path = damaged_file(tmp_path / "u.db", DAMAGES[0][0])
    before = file_bytes(tmp_path)
    monkeypatch.setattr(sys, "stdin", open(os.devnull))  # noqa: SIM115
    with pytest.raises(SystemExit) as exit_info:
        main([a.replace("{model}", str(small_model)) for a in command] + ["--user-db", str(path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "\n" not in err.strip().splitlines()[-1]
    assert err.strip().splitlines()[-1].startswith(
        f"rnn-ime: error: {path}: damaged: word '坏' has count 'x'")
    assert file_bytes(tmp_path) == before


def test_cli_evaluate_with_a_user_db(small_model, tmp_path, capsys):
    from rnn_ime.cli import main

    db = str(tmp_path / "u.db")
    main(["learn", "--model", str(small_model), "--user-db", db, "我们明天去北京玩"])
    capsys.readouterr()
    main(["evaluate", "--model", str(small_model), "--user-db", db, "--json"])
    captured = capsys.readouterr()
    assert "+user" in json.loads(captured.out)["scorer"]


def test_a_file_locked_by_another_process_is_said_so(tmp_path, monkeypatch):
    """Learning while another process holds the file: a one-line error, and nothing
    half-learned in memory (it goes back to what the file holds)."""
    from rnn_ime.user import store as store_module
    from rnn_ime.user.store import UserStoreBusyError

    path = tmp_path / "u.db"
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.1)
    model = UserModel(UserStore(path))
    model.learn_words(["我们"])
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(UserStoreBusyError, match="locked by another process"):
            model.learn_words(["他们"])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "他们" not in model.counts.unigram and "我们" in model.counts.unigram
    model.learn_words(["他们"])  # once the lock is gone
    assert "他们" in UserModel(UserStore(path)).counts.unigram


# ---------------------------------------------------------------- one file, several writers
def test_two_processes_learning_into_one_file_lose_nothing(tmp_path):
    path = tmp_path / "u.db"
    a, b = UserModel(UserStore(path)), UserModel(UserStore(path))
    a.refresh()
    b.learn_words(["蕲春"])
    a.learn_words(["蕲春"])  # a read before b wrote: it reads again before writing
    fresh = UserModel(UserStore(path))
    assert fresh.counts.effective(fresh.counts.unigram["蕲春"]) == pytest.approx(2.0, rel=1e-3)
    assert fresh.counts.clock == 2


def test_undo_takes_back_only_this_model_s_own_last_commit(tmp_path):
    path = tmp_path / "u.db"
    model = UserModel(UserStore(path))
    model.import_lines(["甲\t100", "乙\t5"])
    model.learn_words(["你好", "蕲春"])
    model.forget("蕲春")
    assert model.undo() is None  # the commit is gone with the word; the import is no commit
    assert model.counts.effective(model.counts.unigram["甲"]) == pytest.approx(100.0, rel=1e-3)
    other = UserModel(UserStore(path))
    model.learn_words(["我们"])
    other.learn_words(["他们"])
    assert model.undo() is None  # another writer committed since
    assert other.undo() is not None


def test_a_write_the_file_refuses_leaves_memory_as_the_file_is(tmp_path):
    model = UserModel(UserStore(tmp_path / "u.db"))
    model.learn_words(["我们"])
    model.store.db.execute("CREATE TEMP TRIGGER refuse BEFORE INSERT ON commits "
                           "BEGIN SELECT RAISE(ABORT, 'disk trouble'); END")
    with pytest.raises(UserStoreError, match="nothing was learned"):
        model.learn_words(["你好"])
    assert "你好" not in model.counts.unigram
    model.store.db.execute("PRAGMA query_only = ON")
    with pytest.raises(UserStoreError):
        model.forget("我们")
    assert "我们" in model.counts.unigram


def test_export_then_import_keeps_the_counts(tmp_path):
    model = UserModel(UserStore(tmp_path / "a.db"))
    model.import_lines([f"w{i}\t{1000 + 50 * (60 - i)}" for i in range(60)])
    lines = model.export_lines()
    other = UserModel(UserStore(tmp_path / "b.db"))
    assert other.import_lines(lines) == (60, 0)
    for line in lines:
        word, count = line.split("\t")[:2]
        assert other.counts.effective(other.counts.unigram[word]) == pytest.approx(
            float(count), rel=1e-3)
    assert other.export_lines()[:5] == lines[:5]


def test_a_file_that_cannot_be_imported_leaves_no_profile_behind(tmp_path, capsys):
    from rnn_ime.cli import main

    store = tmp_path / "user.db"
    gbk = tmp_path / "words.txt"
    gbk.write_bytes("你好\t3\n".encode("gb18030"))
    for source in (str(gbk), str(tmp_path / "missing.txt")):
        with pytest.raises(SystemExit) as exc:
            main(["user", "import", source, "--user-db", str(store)])
        assert exc.value.code == 2
        assert "rnn-ime: error:" in capsys.readouterr().err
        assert not store.exists()
