"""The IBus engine: its key handling as a state machine (fast, no IBus), its install file, and
the real thing — a private dbus-daemon and ibus-daemon, the engine started by hand with the
small model, and an input context driven through IBus's own client API.

The tests marked `ibus` skip, saying why, where PyGObject, IBus's typelib, ibus-daemon or
dbus-daemon is missing (.ci/run installs them).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

from rnn_ime.cli import main
from rnn_ime.errors import ConfigError
from rnn_ime.ibus import Machine, NoLearning, keys
from rnn_ime.ibus import component as comp
from rnn_ime.ibus.gir import IBusMissing, gi_from
from rnn_ime.ime import Candidate, Decoding

# ---------------------------------------------------------------- a fake model
SYLLABLES = {"ni": "你", "hao": "好", "jin": "今", "tian": "天", "qi": "气", "wo": "我"}


def pieces(letters: str) -> list[tuple[str, str]]:
    """Greedy longest syllables: (typed, character); letters that fit none, as typed."""
    out, i = [], 0
    while i < len(letters):
        for size in (4, 3, 2, 1):
            typed = letters[i:i + size]
            if typed in SYLLABLES or size == 1:
                out.append((typed, SYLLABLES.get(typed, typed)))
                i += size
                break
    return out


class FakeRanker:
    """Decodes with the table above: the whole input, k fillers, and the first character (a
    partial pick); suggests 的 了 在 …; remembers what it was asked."""

    def __init__(self) -> None:
        self.decoded: list[tuple[str, str, int]] = []
        self.suggested: list[str] = []
        self.followed: list[str] = []  # the marks decodings were asked to rank with
        self.first_before: dict[str, str] = {}  # a mark → the phrase it ranks first

    def decode(self, letters: str, context: str, k: int, followed_by: str = "") -> Decoding:
        self.decoded.append((letters, context, k))
        if followed_by:
            self.followed.append(followed_by)
        found = pieces(letters.replace("'", ""))
        whole = self.first_before.get(followed_by) or "".join(char for _, char in found)
        phrases = [Candidate((whole,), len(letters), -1.0, -1.0)]
        phrases += [Candidate((f"字{i}",), len(letters), -5.0 - i, -5.0 - i) for i in range(k)]
        first = [Candidate((found[0][1],), len(found[0][0]), -2.0, -2.0)] if found else []
        return Decoding(phrases, first, letters=letters)

    def suggest(self, context: str, k: int) -> list[str]:
        self.suggested.append(context)
        return ["的", "了", "在", "是", "我"][:k]


class RecordingLearner:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def learn(self, text: str, picks: list[tuple[str, str]] | None = None,
              before: str = "") -> None:
        self.calls.append(("learn", text, picks))
        self.before = before

    def undo(self) -> None:
        self.calls.append(("undo",))


RELEASE, SHIFT = keys.RELEASE_MASK, keys.SHIFT_MASK


def make() -> tuple[Machine, FakeRanker, RecordingLearner]:
    ranker, learner = FakeRanker(), RecordingLearner()
    return Machine(ranker, learner), ranker, learner


def type_into(machine: Machine, text: str) -> list:
    return [machine.key(ord(c), 0) for c in text]


# ---------------------------------------------------------------- the state machine
def test_letters_build_a_preedit_and_a_table_of_the_ranked_candidates():
    machine, ranker, _ = make()
    reactions = type_into(machine, "nihao")
    assert all(r.handled and not r.commits for r in reactions)
    view = reactions[-1].view
    assert view.preedit == "nihao" and view.kind == "candidates"
    assert view.entries == tuple(c.text for c in ranker.decode("nihao", "", 9).ranked(9))
    assert view.shown[0] == "你好" and len(view.shown) == 9
    assert ranker.decoded[0] == ("n", "", 9)


def test_space_commits_the_first_then_suggestions_and_learning():
    machine, ranker, learner = make()
    type_into(machine, "nihao")
    reaction = machine.key(keys.SPACE, 0)
    assert reaction.handled and reaction.commits == ("你好",)
    assert reaction.view.preedit == "" and reaction.view.kind == "suggestions"
    assert reaction.view.entries == ("的", "了", "在", "是", "我")
    assert ranker.suggested[-1] == "你好"
    assert learner.calls == [("learn", "你好", [("你好", "nihao")])]


def test_a_partial_pick_leaves_the_rest_composing_decoded_after_it():
    machine, ranker, learner = make()
    view = type_into(machine, "jintiantianqi")[-1].view
    first = view.shown.index("今")
    reaction = machine.key(ord(str(first + 1)), 0)
    assert reaction.commits == ("今",)
    assert reaction.view.preedit == "tiantianqi" and reaction.view.kind == "candidates"
    assert ranker.decoded[-1][:2] == ("tiantianqi", "今")
    assert learner.calls == []  # the composition goes on
    reaction = machine.key(ord(str(reaction.view.shown.index("天") + 1)), 0)
    assert reaction.commits == ("天",) and reaction.view.preedit == "tianqi"
    reaction = machine.key(keys.SPACE, 0)
    assert reaction.commits == ("天气",) and reaction.view.preedit == ""
    assert learner.calls == [("learn", "今天天气",
                              [("今", "jin"), ("天", "tian"), ("天气", "tianqi")])]


def test_enter_commits_the_letters_as_typed_and_esc_commits_nothing():
    machine, _, learner = make()
    type_into(machine, "ni'hao")
    assert machine.key(keys.RETURN, 0).commits == ("ni'hao",)
    assert learner.calls == [("learn", "ni'hao", [])]
    type_into(machine, "wo")
    reaction = machine.key(keys.ESCAPE, 0)
    assert reaction.handled and reaction.commits == ()
    assert reaction.view.preedit == "" and reaction.view.kind == ""
    assert len(learner.calls) == 1


def test_backspace_edits_and_an_emptied_composition_ends():
    machine, _, learner = make()
    type_into(machine, "nih")
    assert machine.key(keys.BACKSPACE, 0).view.preedit == "ni"
    machine.key(keys.BACKSPACE, 0)
    reaction = machine.key(keys.BACKSPACE, 0)
    assert reaction.handled and reaction.view.preedit == "" and reaction.view.kind == ""
    assert not machine.key(keys.BACKSPACE, 0).handled  # nothing composing: the application's
    assert learner.calls == []


def test_backspace_right_after_a_commit_undoes_its_learning_once():
    machine, _, learner = make()
    type_into(machine, "nihao")
    machine.key(keys.SPACE, 0)
    assert not machine.key(keys.BACKSPACE, 0).handled  # it deletes the character too
    assert not machine.key(keys.BACKSPACE, 0).handled
    assert learner.calls[1:] == [("undo",)]
    assert machine.context == ""  # 你好 minus two characters


def test_paging_asks_for_more_and_space_commits_the_first_of_the_page():
    machine, ranker, _ = make()
    type_into(machine, "nihao")
    reaction = machine.key(keys.EQUAL, 0)
    assert ranker.decoded[-1] == ("nihao", "", 20)
    assert reaction.view.page == 1 and len(reaction.view.entries) > 9
    assert set(reaction.view.entries[:9]) & set(reaction.view.shown) == set()
    second_page = reaction.view.shown
    assert machine.key(keys.PAGE_UP, 0).view.page == 0
    assert machine.key(keys.DOWN, 0).view.page == 1
    assert machine.key(keys.PAGE_DOWN, 0).view.page == 2
    assert machine.key(keys.MINUS, 0).view.page == 1
    assert machine.key(keys.SPACE, 0).commits == (second_page[0],)


def test_a_mark_commits_the_best_phrase_in_full_width_or_types_alone():
    machine, _, learner = make()
    type_into(machine, "nihao")
    reaction = machine.key(ord(","), 0)
    assert reaction.handled and reaction.commits == ("你好，",)
    assert learner.calls == [("learn", "你好，", [("你好", "nihao")])]
    reaction = machine.key(ord("?"), SHIFT)
    assert reaction.commits == ("？",) and reaction.view.kind == "suggestions"
    assert learner.calls[-1] == ("learn", "？", None)


def test_a_mark_ranks_the_phrases_again_knowing_the_clause_ends_with_it():
    machine, ranker, learner = make()
    ranker.first_before["？"] = "你好吗"  # p(？ | 你好吗) beats p(？ | 你号码)
    type_into(machine, "nihaoma")
    assert machine.view().shown[0] != "你好吗"
    assert machine.key(ord("?"), SHIFT).commits == ("你好吗？",)
    assert ranker.followed == ["？"]
    assert learner.calls[-1] == ("learn", "你好吗？", [("你好吗", "nihaoma")])


def test_marks_after_a_digit_stay_half_width():
    machine, _, _ = make()
    assert not machine.key(ord("3"), 0).handled
    assert not machine.key(ord("."), 0).handled
    assert not machine.key(ord("1"), 0).handled
    assert machine.key(ord("."), 0).commits == ()  # 3.1. — still after a digit
    assert machine.key(ord(" "), 0).commits == ()
    assert machine.key(ord("."), 0).commits == ("。",)
    assert machine.context.endswith("3.1. 。")


def test_shift_alone_toggles_english_and_shift_with_a_key_does_not():
    machine, _, _ = make()
    machine.key(keys.SHIFT_L, 0)
    machine.key(ord("A"), SHIFT)
    machine.key(ord("A"), SHIFT | RELEASE)
    machine.key(keys.SHIFT_L, SHIFT | RELEASE)
    assert machine.chinese
    type_into(machine, "ni")
    machine.key(keys.SHIFT_R, 0)
    reaction = machine.key(keys.SHIFT_R, SHIFT | RELEASE)
    assert not reaction.view.chinese and reaction.commits == ("ni",)
    assert not any(r.handled for r in type_into(machine, "hao,"))
    machine.key(keys.SHIFT_L, 0)
    assert machine.key(keys.SHIFT_L, SHIFT | RELEASE).view.chinese


def test_suggestions_a_digit_picks_any_other_key_dismisses_and_goes_on():
    machine, _, learner = make()
    type_into(machine, "nihao")
    machine.key(keys.SPACE, 0)
    reaction = machine.key(ord("2"), 0)
    assert reaction.commits == ("了",) and reaction.view.kind == "suggestions"
    assert learner.calls[-1] == ("learn", "了", None)
    assert machine.context == "你好了"
    reaction = machine.key(keys.SPACE, 0)
    assert not reaction.handled and reaction.view.kind == ""  # the space is typed
    machine.key(keys.SPACE, 0)
    type_into(machine, "wo")
    machine.key(keys.SPACE, 0)
    reaction = machine.key(ord("7"), 0)  # five suggestions: 7 is typed, and hides them
    assert not reaction.handled and reaction.commits == () and reaction.view.kind == ""
    machine.key(keys.SPACE, 0)
    type_into(machine, "wo")
    machine.key(keys.SPACE, 0)
    reaction = machine.key(ord("q"), 0)  # hides them and starts a composition
    assert reaction.view.kind == "candidates" and reaction.view.preedit == "q"


def test_password_fields_learn_nothing_and_suggest_nothing():
    machine, ranker, learner = make()
    machine.set_password(True)
    type_into(machine, "nihao")
    reaction = machine.key(keys.SPACE, 0)
    assert reaction.commits == ("你好",) and reaction.view.kind == ""
    assert machine.key(ord(","), 0).commits == ("，",)
    machine.key(keys.BACKSPACE, 0)
    assert learner.calls == [] and ranker.suggested == []


def test_the_context_is_the_text_before_the_caret():
    machine, ranker, _ = make()
    machine.surrounding("我今天去北京玩", 4, 4)
    type_into(machine, "wo")
    assert ranker.decoded[-1][1] == "我今天去"
    machine.key(keys.SPACE, 0)
    assert ranker.suggested[-1] == "我今天去我"
    machine.surrounding("选中的字", 4, 2)  # a selection: what is before it
    assert machine.context == "选中"
    machine.key(keys.LEFT, 0)  # the caret moved and the client does not say where
    assert machine.context == ""


def test_shortcuts_releases_and_keys_in_english_go_to_the_application():
    machine, _, _ = make()
    assert not machine.key(ord("c"), keys.CONTROL_MASK).handled
    assert not machine.key(ord("n"), RELEASE).handled
    type_into(machine, "ni")
    assert not machine.key(ord("a"), keys.MOD1_MASK).handled
    assert machine.key(keys.LEFT, 0).handled  # composing: caret keys do nothing
    assert machine.letters == "ni"


def test_a_failing_learner_or_suggester_loses_no_commit(caplog):
    class Broken(RecordingLearner):
        def learn(self, text, picks=None, before=""):
            raise OSError("disk full")

    ranker = FakeRanker()
    ranker.suggest = lambda context, k: 1 / 0
    machine = Machine(ranker, Broken())
    type_into(machine, "nihao")
    reaction = machine.key(keys.SPACE, 0)
    assert reaction.commits == ("你好",) and reaction.view.kind == ""
    assert "learning '你好' failed" in caplog.text and "suggestions failed" in caplog.text


def test_no_learning_is_the_default():
    machine = Machine(FakeRanker())
    assert isinstance(machine.learner, NoLearning)
    type_into(machine, "nihao")
    assert machine.key(keys.SPACE, 0).commits == ("你好",)


def test_a_learner_is_told_the_picks_with_the_small_model(small_model):
    """The learned-word case in process, with the real decoder: the learner gets the
    composition's text and its picks (the lead turns this into `a learned word comes first`
    once the user model is wired)."""
    from rnn_ime.ibus.ranker import ModelRanker
    from rnn_ime.predict import Predictor

    learner = RecordingLearner()
    machine = Machine(ModelRanker(Predictor.from_dir(small_model)), learner)
    view = type_into(machine, "jintianqu")[-1].view
    partial = next(i for i, c in enumerate(machine._candidates) if c.letters < 9)
    chosen = machine._candidates[partial]
    reaction = machine.pick(partial)
    assert reaction.commits == (chosen.text,) and view.shown[partial] == chosen.text
    rest = reaction.view.preedit
    assert rest == "jintianqu"[chosen.letters:]
    reaction = machine.key(keys.SPACE, 0)
    assert learner.calls == [("learn", chosen.text + reaction.commits[0],
                              [(chosen.text, "jintianqu"[:chosen.letters]),
                               (reaction.commits[0], rest)])]


def test_the_ranker_keeps_a_compositions_steps_until_its_context_or_profile_changes(
        small_model, tmp_path):
    """The next keystroke re-steps nothing the last one stepped; a new context, or a profile
    that learned in between, starts anew, and what is ranked is always what a fresh ranker
    ranks."""
    from rnn_ime.ibus.ranker import ModelRanker
    from rnn_ime.predict import Predictor
    from rnn_ime.user import Profile

    predictor = Predictor.from_dir(small_model)
    profile = Profile.open(predictor.scorer, tmp_path / "u.db")
    ranker = ModelRanker(predictor, profile=profile)

    def ranked(letters: str, context: str, fresh: bool = False):
        found = (ModelRanker(predictor, profile=profile) if fresh else ranker).decode(
            letters, context, 9)
        return found, [(c.text, round(c.score, 4)) for c in found.ranked(9)]

    assert ranked("jintianqu", "我")[0].steps > 0
    again, shown = ranked("jintianqu", "我")
    assert again.steps == 0 and shown == ranked("jintianqu", "我", fresh=True)[1]
    assert ranked("jintianqu", "你")[0].steps > 0  # another context
    assert ranked("jintianqu", "你")[0].steps == 0
    profile.learn("你今天")
    learned, shown = ranked("jintianqu", "你")
    assert learned.steps > 0 and shown == ranked("jintianqu", "你", fresh=True)[1]


def test_a_profile_damaged_while_typing_keeps_typing(small_model, tmp_path, caplog):
    """Another program damages the profile's file while the engine has it open: decoding goes
    on with what was read before, learning is refused; each says so in one log line, no
    traceback, and the file is left as it is."""
    import sqlite3

    from rnn_ime.ibus.learning import ProfileLearner
    from rnn_ime.ibus.ranker import ModelRanker
    from rnn_ime.predict import Predictor
    from rnn_ime.user import Profile

    predictor = Predictor.from_dir(small_model)
    profile = Profile.open(predictor.scorer, tmp_path / "u.db")
    profile.learn("你好")
    machine = Machine(ModelRanker(predictor, profile=profile), ProfileLearner(profile, None))
    with sqlite3.connect(tmp_path / "u.db") as db:
        db.execute("UPDATE meta SET value = 'abc' WHERE key = 'clock'")
    db.close()
    before = (tmp_path / "u.db").read_bytes()
    type_into(machine, "nihao")
    assert machine.key(keys.SPACE, 0).commits == ("你好",)
    assert "damaged: clock 'abc'" in caplog.text and "Traceback" not in caplog.text
    assert "learning '你好' failed" in caplog.text
    assert (tmp_path / "u.db").read_bytes() == before


# ---------------------------------------------------------------- keys, install, gi
def test_key_constants_are_ibus_s():
    from rnn_ime.ibus.gir import load

    try:
        load()
    except IBusMissing as exc:
        pytest.skip(str(exc))

    IBus = load()[0]
    for ours, theirs in (("BACKSPACE", "BackSpace"), ("RETURN", "Return"),
                         ("ESCAPE", "Escape"), ("PAGE_UP", "Page_Up"),
                         ("PAGE_DOWN", "Page_Down"), ("UP", "Up"), ("DOWN", "Down"),
                         ("LEFT", "Left"), ("SHIFT_L", "Shift_L"), ("SHIFT_R", "Shift_R"),
                         ("KP_ENTER", "KP_Enter"), ("KP_0", "KP_0"), ("SPACE", "space"),
                         ("MINUS", "minus"), ("EQUAL", "equal"), ("DELETE", "Delete")):
        assert getattr(keys, ours) == getattr(IBus, f"KEY_{theirs}"), ours
    mask = IBus.ModifierType
    for name in ("SHIFT", "LOCK", "CONTROL", "MOD1", "MOD4", "SUPER", "HYPER", "META",
                 "RELEASE"):
        assert getattr(keys, f"{name}_MASK") == int(getattr(mask, f"{name}_MASK")), name


def test_install_writes_a_component_that_runs_the_engine_with_ibus(tmp_path, small_model,
                                                                   monkeypatch):
    monkeypatch.delenv("IBUS_COMPONENT_PATH", raising=False)
    done = comp.install(small_model, tmp_path / "rnn-ime.xml")
    root = ET.parse(done.path).getroot()
    command = root.findtext("exec")
    assert command.endswith(f"-m rnn_ime ibus --model {small_model.resolve()} --ibus")
    assert root.findtext("name") == "org.freedesktop.IBus.RnnIme"
    engine = root.find("engines/engine")
    assert engine.findtext("name") == "rnn-ime" and engine.findtext("language") == "zh"
    assert engine.findtext("longname") == "RNN 输入法"
    assert done.copy_command == (f"sudo cp {done.path} "
                                 "/usr/share/ibus/component/rnn-ime.xml")
    monkeypatch.setenv("IBUS_COMPONENT_PATH", str(tmp_path))
    assert comp.install(small_model, tmp_path / "rnn-ime.xml").copy_command is None


def test_install_cli_and_its_errors(tmp_path, small_model, capsys):
    out = tmp_path / "c" / "rnn-ime.xml"
    main(["ibus", "install", "--model", str(small_model), "--out", str(out),
          "--fuzzy", "z-zh"])
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "ibus restart" in printed
    assert "--fuzzy z-zh" in ET.parse(out).getroot().findtext("exec")
    for argv, message in ((["ibus", "install", "--model", str(tmp_path)], "not a model dir"),
                          (["ibus", "--model", str(small_model), "--out", "x"],
                           "--out goes with"),
                          (["ibus", "--model", str(small_model), "--fuzzy", "q-x"],
                           "unknown fuzzy")):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        error = capsys.readouterr().err
        assert message in error and len(error.strip().splitlines()) == 1


def test_install_refuses_a_missing_model(tmp_path):
    with pytest.raises(ConfigError, match="not a model dir"):
        comp.install(tmp_path / "none", tmp_path / "x.xml")


def test_missing_gi_is_one_line(tmp_path):
    with pytest.raises(IBusMissing, match="install ibus gir1.2-ibus-1.0 python3-gi"):
        gi_from(tmp_path)


# ---------------------------------------------------------------- through a real ibus-daemon
def _skip_without_ibus() -> None:
    from rnn_ime.ibus.harness import missing

    if why := missing():
        pytest.skip(why)


@pytest.fixture(scope="module")
def ibus_session(tmp_path_factory, small_model):
    """A private dbus-daemon and ibus-daemon, the engine started by hand with the small model;
    this process's IBus client talks to them."""
    _skip_without_ibus()
    from rnn_ime.ibus.harness import start_engine, start_ibus, stop_process

    ibus = start_ibus(tmp_path_factory.mktemp("ibus"))
    engine = None
    # the engine learns into a profile of its own; the `decoder` below reads the same file, so
    # it ranks as the engine does while the engine learns
    user_db = tmp_path_factory.mktemp("ibus-user") / "user.db"
    try:
        engine = start_engine(small_model, ibus.env, ("--user-db", str(user_db)))
        with pytest.MonkeyPatch.context() as patch:
            for name, value in ibus.env.items():
                patch.setenv(name, value)
            ibus.user_db = user_db
            yield ibus
    finally:
        if engine is not None:
            stop_process(engine)
        ibus.stop()


@pytest.fixture(scope="module")
def decoder(small_model, ibus_session):
    """The same model and profile in this process: what the engine should show."""
    from rnn_ime.ibus.ranker import ModelRanker
    from rnn_ime.predict import Predictor
    from rnn_ime.user import LearnOptions, Profile

    predictor = Predictor.from_dir(small_model)
    profile = Profile.open(predictor.scorer, ibus_session.user_db, LearnOptions(learn=False))
    return ModelRanker(predictor, profile=profile)


@pytest.fixture
def client(ibus_session):
    from rnn_ime.ibus.harness import Client

    found = Client(surrounding=True)
    found.use_engine("rnn-ime")
    yield found
    found.ic.focus_out()
    found.ic.destroy()


def _table_shown(client) -> list[str]:
    entries, cursor, visible = client.last_table()
    assert visible
    return entries[cursor - cursor % 9:][:9]


@pytest.mark.ibus
def test_nihao_space_commits_nihao(client, decoder):
    client.type("nihao")
    expected = [c.text for c in decoder.decode("nihao", "", 9).ranked(9)]
    client.wait(lambda: client.last_table() and client.last_table()[0] == expected)
    assert client.preedits[-1] == ("nihao", True)
    assert expected[0] == "你好"
    assert client.key(keys.SPACE)
    client.wait(lambda: client.commits)
    assert client.commits == ["你好"]


@pytest.mark.ibus
def test_a_digit_commits_that_candidate_and_the_rest_keeps_composing(client, decoder):
    letters = "jintiantianqi"
    ranked = decoder.decode(letters, "", 9).ranked(9)
    client.type(letters)
    client.wait(lambda: client.last_table() and client.last_table()[0] == [c.text
                                                                           for c in ranked])
    assert client.key(ord("2"))
    client.wait(lambda: client.commits)
    assert client.commits == [ranked[1].text]
    rest = letters[ranked[1].letters:]
    if rest:
        client.wait(lambda: client.preedits and client.preedits[-1] == (rest, True))
    # a pick of one word: the rest composes, decoded after it
    client.key(keys.ESCAPE)
    client.clear()
    ranked = decoder.decode(letters, "", 9).ranked(9)  # after what the engine learned
    client.type(letters)
    partial = next(i for i, c in enumerate(ranked) if c.letters < len(letters))
    client.wait(lambda: client.last_table() and client.last_table()[0][0] == ranked[0].text)
    client.key(ord(str(partial + 1)))
    client.wait(lambda: client.commits)
    rest = letters[ranked[partial].letters:]
    after = [c.text for c in decoder.decode(rest, ranked[partial].text, 9).ranked(9)]
    client.wait(lambda: client.last_table()[0][:1] == after[:1])
    assert client.commits == [ranked[partial].text]
    assert client.preedits[-1] == (rest, True)


@pytest.mark.ibus
def test_paging_moves_the_table_and_space_commits_the_page_s_first(client):
    client.type("shi")
    client.wait(lambda: client.last_table())
    assert client.key(keys.EQUAL)
    client.wait(lambda: client.last_table()[1] == 9)
    entries = client.last_table()[0]
    assert len(entries) > 9
    assert client.key(keys.SPACE)
    client.wait(lambda: client.commits)
    assert client.commits == [entries[9]]


@pytest.mark.ibus
def test_a_password_field_gets_no_suggestions(client):
    client.ic.set_content_type(int(client.IBus.InputPurpose.PASSWORD), 0)
    client.type("nihao")
    client.wait(lambda: client.last_table())
    client.key(keys.SPACE)
    client.wait(lambda: client.commits and not client.last_table()[2])
    client.pump(0.2)
    assert client.commits == ["你好"] and not client.last_table()[2]


@pytest.mark.ibus
def test_esc_commits_nothing(client):
    client.type("nihao")
    client.wait(lambda: client.last_table())
    assert client.key(keys.ESCAPE)
    client.wait(lambda: client.preedits[-1] == ("", False) and not client.last_table()[2])
    client.pump(0.2)
    assert client.commits == []


@pytest.mark.ibus
def test_after_a_commit_the_table_holds_next_word_suggestions(client, decoder):
    client.set_surrounding("我今天去", 4)
    client.type("beijing")
    client.wait(lambda: client.last_table())
    client.key(keys.SPACE)
    client.wait(lambda: client.commits)
    committed = client.commits[0]
    expected = decoder.suggest("我今天去" + committed, 9)
    client.wait(lambda: client.last_table()[0] == expected)
    client.key(ord("1"))
    client.wait(lambda: len(client.commits) == 2)
    assert client.commits[1] == expected[0]
    assert not client.key(ord("x"), keys.CONTROL_MASK)  # a shortcut: the application's


@pytest.mark.ibus
def test_full_width_marks_and_shift_toggles_english(client):
    assert client.key(ord(","))
    client.wait(lambda: client.commits)
    assert client.commits == ["，"]
    client.key(keys.SHIFT_L)  # pressed and released alone
    assert not client.key(ord(","))
    assert not client.key(ord("a"))
    client.pump(0.2)
    assert client.commits == ["，"]


@pytest.mark.ibus
def test_no_ibus_daemon_is_a_one_line_error(tmp_path, small_model):
    _skip_without_ibus()
    env = {**os.environ, "IBUS_ADDRESS": f"unix:path={tmp_path / 'none'}"}
    done = subprocess.run([sys.executable, "-m", "rnn_ime", "ibus", "--model", str(small_model)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"rnn-ime: error: cannot reach ibus-daemon at unix:path={tmp_path / 'none'}; start it "
        "(ibus-daemon -drx) or set IBUS_ADDRESS"]


@pytest.mark.ibus
def test_the_installed_component_starts_the_engine(tmp_path, small_model):
    """ibus-daemon starts the engine itself from `rnn-ime ibus install`'s file (--ibus): in a
    process of its own, since a process has one IBus bus."""
    _skip_without_ibus()
    components = tmp_path / "components"
    main(["ibus", "install", "--model", str(small_model), "--out",
          str(components / "rnn-ime.xml")])
    script = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from rnn_ime.ibus import keys
        from rnn_ime.ibus.harness import Client, private_ibus
        with private_ibus(Path({str(tmp_path / 'ibus')!r}), Path({str(components)!r})) as ibus:
            os.environ.update(ibus.env)
            client = Client()
            client.use_engine("rnn-ime", timeout=90)
            client.type("nihao")
            client.wait(lambda: client.last_table(), timeout=30)
            client.key(keys.SPACE)
            client.wait(lambda: client.commits, timeout=30)
            print("committed", client.commits[0])
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "committed 你好" in done.stdout


# ---------------------------------------------------------------- learning through the daemon
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
def test_a_word_picked_character_by_character_comes_first_next_time(client, ibus_session):
    session = ibus_session.user_db
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
def test_backspace_right_after_a_commit_undoes_its_learning(client, ibus_session):
    session = ibus_session.user_db
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
