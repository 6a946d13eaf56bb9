"""Learning through a real ibus-daemon: a word picked character by character comes first the
next time it is typed (its full pinyin and its initials), and Backspace right after a commit
takes the learning back. Skips, with the reason, where IBus cannot be had."""

from __future__ import annotations

import pytest

from rnn_ime.ibus import keys


@pytest.fixture(scope="module")
def session(tmp_path_factory, small_model):
    from rnn_ime.ibus.harness import missing, start_engine, start_ibus, stop_process

    if why := missing():
        pytest.skip(why)
    ibus = start_ibus(tmp_path_factory.mktemp("ibus-learning"))
    user_db = tmp_path_factory.mktemp("profile") / "user.db"
    engine = None
    try:
        engine = start_engine(small_model, ibus.env, ("--user-db", str(user_db)))
        with pytest.MonkeyPatch.context() as patch:
            for name, value in ibus.env.items():
                patch.setenv(name, value)
            yield user_db
    finally:
        if engine is not None:
            stop_process(engine)
        ibus.stop()


@pytest.fixture
def client(session):
    from rnn_ime.ibus.harness import Client

    found = Client(surrounding=False)
    found.use_engine("rnn-ime")
    yield found
    found.ic.focus_out()
    found.ic.destroy()


def _pick_single_character(client, letters_left: str) -> str:
    """Pick the first one-character candidate on the table; its text."""
    client.wait(lambda: client.last_table() and client.last_table()[0])
    entries = client.last_table()[0][:9]
    index = next(i for i, text in enumerate(entries) if len(text) == 1)
    before = len(client.commits)
    assert client.key(ord(str(index + 1)))
    client.wait(lambda: len(client.commits) > before)
    return client.commits[-1]


@pytest.mark.ibus
def test_a_word_picked_character_by_character_comes_first_next_time(client, session):
    from rnn_ime.user import UserModel, UserStore

    client.type("kemi")
    first = _pick_single_character(client, "kemi")
    second = _pick_single_character(client, "mi")
    word = first + second
    client.wait(lambda: UserModel(UserStore(session)).counts.unigram.get(word, 0) > 0)
    for typed in ("kemi", "km"):
        client.clear()
        client.type(typed)
        client.wait(lambda: client.last_table() and client.last_table()[0]
                    and client.last_table()[0][0] == word)
        client.key(keys.ESCAPE)


@pytest.mark.ibus
def test_backspace_right_after_a_commit_undoes_its_learning(client, session):
    from rnn_ime.user import UserModel, UserStore

    def typed_words() -> float:
        return UserModel(UserStore(session)).counts.clock

    client.clear()
    client.type("nihao")
    client.wait(lambda: client.last_table() and client.last_table()[0])
    before = typed_words()
    assert client.key(keys.SPACE)
    client.wait(lambda: typed_words() > before)
    client.key(keys.BACKSPACE)
    client.wait(lambda: typed_words() == before)
