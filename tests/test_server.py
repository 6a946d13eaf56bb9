"""The HTTP API in process (FastAPI's TestClient): answers, validation, concurrency, the page."""

import asyncio
import json
import socket

import httpx
import pytest
from fastapi.testclient import TestClient

from rnn_ime.cli import main
from rnn_ime.limits import SERVER_MAX_BODY_BYTES as MAX_BODY_BYTES
from rnn_ime.predict import Predictor
from rnn_ime.server import STATIC, LimitBodySize, create_app, listen
from rnn_ime.user.directory import ProfileDirConfig, ProfileDirectory, ProfileLimitError
from rnn_ime.user.model import UserModel
from rnn_ime.user.store import UserStore


@pytest.fixture(scope="module")
def predictor(small_model) -> Predictor:
    return Predictor.from_dir(small_model)


@pytest.fixture(scope="module")
def client(predictor) -> TestClient:
    return TestClient(create_app(predictor))


def error_of(response, status: int = 422) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["error"], str) and "\n" not in body["error"]
    return body["error"]


# ---------------------------------------------------------------- answers
def test_suggest_returns_the_predictors_top_k(client, predictor):
    response = client.post("/api/suggest", json={"text": "我今天", "k": 5})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "small" and body["latency_ms"] >= 0
    expected = predictor.suggest("我今天", 5)
    assert [s["word"] for s in body["suggestions"]] == [s.word for s in expected]
    probabilities = [s["probability"] for s in body["suggestions"]]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1


def test_suggest_defaults_to_five_first_words(client):
    body = client.post("/api/suggest", json={}).json()
    assert len(body["suggestions"]) == 5
    assert not {s["word"] for s in body["suggestions"]} & {"<pad>", "<unk>", "<s>"}


def test_health_names_the_model_and_its_vocabulary(client, predictor):
    body = client.get("/api/health").json()
    assert body["status"] == "ok" and body["model"] == "small"
    assert body["vocab_size"] == len(predictor.vocab)
    assert body["config"]["model"]["cell"] == "lstm"


def test_health_shows_the_config_it_is_given(predictor):
    client = TestClient(create_app(predictor, {"model": {"cell": "gru"}, "train": {}}))
    assert client.get("/api/health").json()["config"] == {"model": {"cell": "gru"}, "train": {}}


def test_health_never_shows_local_paths(predictor):
    config = {"model": {"cell": "gru"}, "train": {"data": "/home/me/corpus", "out": "/home/me/m",
                                                  "lr": 0.002, "extra": {"note": "x"}},
              "data_manifest": {"sources": [{"path": "/home/me/corpus/a.txt"}]}}
    shown = TestClient(create_app(predictor, config)).get("/api/health").json()["config"]
    assert "/home/me" not in json.dumps(shown)
    assert shown == {"model": {"cell": "gru"}, "train": {"lr": 0.002}}


def test_openapi_schema_lists_the_api(client):
    schema = client.get("/openapi.json").json()
    assert {"/api/suggest", "/api/complete", "/api/health"} <= set(schema["paths"])


# ---------------------------------------------------------------- complete
def test_complete_returns_ranked_continuations(client):
    response = client.post("/api/complete", json={"text": "我今天", "beam": 3, "length": 4})
    assert response.status_code == 200
    body = response.json()
    assert body["latency_ms"] >= 0
    found = body["continuations"]
    assert 1 <= len(found) <= 3
    assert all(len(c["words"]) == 4 and c["text"] == "".join(c["words"]) for c in found)
    probabilities = [c["probability"] for c in found]
    assert probabilities == sorted(probabilities, reverse=True)


def test_long_continuations_keep_their_small_probabilities_and_say_their_log(client):
    import math

    found = client.post("/api/complete", json={"text": "GPU", "beam": 8, "length": 8}
                        ).json()["continuations"]
    assert len(found) == 8
    for one in found:
        assert one["probability"] == pytest.approx(math.exp(one["log_prob"]), rel=1e-4)
    assert [c["log_prob"] for c in found] == sorted((c["log_prob"] for c in found), reverse=True)
    suggestions = client.post("/api/suggest", json={"text": "GPU", "k": 20}).json()["suggestions"]
    assert all(s["probability"] > 0 for s in suggestions)
    from rnn_ime.predict import shown_probability

    assert shown_probability(1.2345678e-12) == 1.23457e-12  # 6 significant digits, never 0


# ---------------------------------------------------------------- the served path: cached contexts
def test_typing_through_the_api_gets_the_answers_of_reading_each_text_whole(client, predictor):
    passage = "我今天想去公园散步，房间很干净。"
    texts = [passage[:i] for i in range(len(passage) + 1)]
    texts += [passage[:5] + "明天" + passage[7:], passage[:3], ""]  # an edit, a deletion
    for text in texts:
        body = client.post("/api/suggest", json={"text": text, "k": 5}).json()
        expected = predictor.suggest(text, 5)  # reads the whole text, no cache
        assert [s["word"] for s in body["suggestions"]] == [s.word for s in expected], text
        assert [s["probability"] for s in body["suggestions"]] == pytest.approx(
            [round(s.probability, 6) for s in expected], abs=2e-6), text


@pytest.mark.parametrize("path, body", [
    ("/api/complete", {"text": "我今天想去", "beam": 3, "length": 3}),
    ("/api/complete", {"text": "", "beam": 2, "length": 2}),
    ("/api/pinyin", {"letters": "qugongyuan", "context": "我今天想", "k": 5}),
    ("/api/pinyin", {"letters": "wo", "k": 3}),
])
def test_complete_and_pinyin_answer_alike_with_and_without_the_cache(predictor, path, body):
    cached = TestClient(create_app(predictor))
    plain = TestClient(create_app(predictor, context_cache=0))
    for _ in range(2):  # the second time, the context comes from the cache
        got, want = cached.post(path, json=body).json(), plain.post(path, json=body).json()
        del got["latency_ms"], want["latency_ms"]
        assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True) or \
            _close(got, want)


def _close(got, want) -> bool:
    """Equal but for the last digits of floats (a context stepped vs read in one pass)."""
    if isinstance(got, dict):
        return got.keys() == want.keys() and all(_close(got[k], want[k]) for k in got)
    if isinstance(got, list):
        return len(got) == len(want) and all(map(_close, got, want))
    if isinstance(got, float):
        return got == pytest.approx(want, rel=1e-4, abs=1e-5)
    return got == want


def test_answers_fit_their_documented_models(client):
    from rnn_ime.server import CompleteResponse, PinyinResponse, SuggestResponse

    SuggestResponse.model_validate(client.post("/api/suggest", json={"text": "我"}).json())
    CompleteResponse.model_validate(client.post("/api/complete", json={"text": "我"}).json())
    PinyinResponse.model_validate(client.post("/api/pinyin", json={"letters": "wo"}).json())


def test_serve_refuses_a_context_cache_of_one(small_model, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--model", str(small_model), "--context-cache", "1"])
    assert exc.value.code == 2
    assert "--context-cache" in capsys.readouterr().err


# ---------------------------------------------------------------- validation: 4xx, never 500
@pytest.mark.parametrize("body, field", [
    ({"text": "好" * 2001}, "text"),
    ({"text": "x", "k": 0}, "k"),
    ({"text": "x", "k": 21}, "k"),
    ({"text": "x", "k": "5"}, "k"),
    ({"text": 5}, "text"),
    ({"text": "x", "kk": 5}, "kk"),
    ([1, 2], "body"),
])
def test_bad_suggest_requests_get_a_422_naming_the_field(client, body, field):
    assert error_of(client.post("/api/suggest", json=body)).startswith(f"{field}: ")


@pytest.mark.parametrize("body", [{"beam": 0}, {"beam": 9}, {"length": 0}, {"length": 9},
                                  {"text": "好" * 2001}])
def test_bad_complete_requests_get_a_422(client, body):
    error_of(client.post("/api/complete", json=body))


def test_the_longest_text_allowed_is_answered(client):
    assert client.post("/api/suggest", json={"text": "好" * 2000, "k": 20}).status_code == 200


def test_a_body_that_is_not_json_gets_a_400(client):
    response = client.post("/api/suggest", content=b"{text: ",
                           headers={"content-type": "application/json"})
    assert error_of(response, 400) == "the request body is not valid JSON"
    assert error_of(client.post("/api/suggest", content=b"[1]",
                                headers={"content-type": "application/json"})) == \
        'body: must be a JSON object, like {"text": "我今天"}'
    assert error_of(client.post("/api/suggest")).startswith("body: missing")


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain",
                                          None])
def test_json_sent_as_another_media_type_gets_a_415_that_says_so(client, content_type):
    """curl -d sends a form: the JSON in it is not read (a page elsewhere could post it without
    the browser asking), and the answer says how to send it."""
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/api/forget", content=b'{"user": "me", "word": "\xe4\xbd\xa0"}',
                           headers=headers)
    assert error_of(response, 415) == (
        "the request body must be sent as JSON (Content-Type: application/json); it came as "
        + (content_type or "no Content-Type"))
    assert client.post("/api/suggest", content=b'{"text": "x"}', headers={
        "content-type": "application/json; charset=utf-8"}).status_code == 200


def test_a_body_that_is_not_utf8_gets_a_400(client):
    response = client.post("/api/suggest", content=b'{"text": "\xff\xfe"}',
                           headers={"content-type": "application/json"})
    assert error_of(response, 400) == "the request body is not valid JSON"


def test_unknown_paths_and_methods_answer_in_the_same_shape(client):
    assert error_of(client.get("/api/nope"), 404) == "Not Found"
    assert error_of(client.get("/api/suggest"), 405) == "Method Not Allowed"


def test_errors_never_echo_the_input(client):
    # a lone surrogate cannot be encoded as UTF-8: echoing it back would be a 500
    response = client.post("/api/suggest", content=b'{"text": "\\ud800", "k": "\\ud800"}',
                           headers={"content-type": "application/json"})
    assert response.status_code == 422 and "ud800" not in response.text


# ---------------------------------------------------------------- concurrency
def test_concurrent_requests_get_the_same_answers_as_sequential_ones(predictor):
    app = create_app(predictor)
    texts = ["我今天", "他明天去", "", "我们周末想去公园", "妈妈"] * 4

    async def ask_all() -> list[list[str]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            responses = await asyncio.gather(*(
                http.post("/api/suggest", json={"text": t, "k": 3}) for t in texts))
        return [[s["word"] for s in r.json()["suggestions"]] for r in responses]

    expected = [[s.word for s in predictor.suggest(t, 3)] for t in texts]
    assert asyncio.run(ask_all()) == expected


# ---------------------------------------------------------------- the page
def test_the_page_and_its_files_are_served_without_outside_links(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name in ("app.js", "style.css"):
        assert name in page.text
        assert client.get(f"/static/{name}").status_code == 200
    for path in STATIC.iterdir():
        text = path.read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text, path.name


# ---------------------------------------------------------------- the command
def test_serve_with_a_bad_model_dir_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--model", str(tmp_path / "missing")])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip().startswith("rnn-ime: error: ")


def test_serve_on_a_busy_port_is_a_one_line_error(small_model, capsys):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit) as exc:
            main(["serve", "--model", str(small_model), "--port", str(port)])
    assert exc.value.code == 2
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err


def test_the_listening_socket_says_tcp_so_that_nagle_is_turned_off():
    # asyncio sets TCP_NODELAY only when sock.proto is TCP; without it a keep-alive request
    # waits ~40 ms for a delayed ACK
    with listen("127.0.0.1", 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP


def test_an_oversized_body_is_refused_with_413(client):
    response = client.post("/api/suggest", content=b'{"text": "' + b"a" * 70_000 + b'"}',
                           headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "larger than" in response.json()["error"]


def test_a_chunked_body_is_counted_as_it_arrives_and_refused_past_the_limit(client):
    def pieces(total: int):  # a generator body: sent chunked, without a Content-Length
        yield b'{"text": "'
        for _ in range(total // 1000):
            yield b"a" * 1000
        yield b'"}'

    response = client.post("/api/suggest", content=pieces(70_000),
                           headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "larger than 65,536 bytes" in response.json()["error"]
    ok = client.post("/api/suggest", content=(p for p in [b'{"text": "', "我今天".encode(),
                                                          b'", "k": 2}']),
                     headers={"content-type": "application/json"})
    assert ok.status_code == 200, ok.text
    assert len(ok.json()["suggestions"]) == 2


def test_the_body_limit_stops_reading_an_endless_chunked_body():
    called, sent, pulled = [], [], []

    async def app(scope, receive, send):
        called.append(scope)

    async def receive():  # a client that never stops sending 8 KiB pieces
        pulled.append(1)
        return {"type": "http.request", "body": b"x" * 8192, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/suggest", "headers": []}
    asyncio.run(LimitBodySize(app, MAX_BODY_BYTES)(scope, receive, send))
    assert not called and sent[0]["status"] == 413
    assert len(pulled) == MAX_BODY_BYTES // 8192 + 1


# ---------------------------------------------------------------- profiles: learning per user
def profiled(predictor, directory, **options) -> TestClient:
    return TestClient(create_app(predictor, profiles=ProfileDirConfig(directory, **options)))


def suggested(client, text: str, user: str | None = None, k: int = 5) -> list[str]:
    body = {"text": text, "k": k} | ({"user": user} if user else {})
    response = client.post("/api/suggest", json=body)
    assert response.status_code == 200, response.text
    return [s["word"] for s in response.json()["suggestions"]]


def pinyin_of(client, letters: str, user: str | None = None) -> list[str]:
    body = {"letters": letters} | ({"user": user} if user else {})
    response = client.post("/api/pinyin", json=body)
    assert response.status_code == 200, response.text
    return [c["text"] for c in response.json()["candidates"]]


def learn(client, user: str, text: str, **more):
    response = client.post("/api/learn", json={"user": user, "text": text, **more})
    assert response.status_code == 200, response.text
    return response.json()


KEMI = [{"text": "克", "letters": "ke"}, {"text": "密", "letters": "mi"}]  # 克密: no such word


def test_a_learned_word_comes_first_after_its_previous_word_for_its_user_only(predictor,
                                                                               tmp_path):
    client = profiled(predictor, tmp_path)
    plain = suggested(client, "我今天去")
    assert plain[0] != "公园"
    answer = learn(client, "alice", "我今天去公园")
    assert answer == {"user": "alice", "learned": True, "words": ["我", "今天", "去", "公园"],
                      "made": []}
    for _ in range(39):  # a user who writes it often
        learn(client, "alice", "我今天去公园")
    assert suggested(client, "我今天去", "alice")[0] == "公园"
    assert suggested(client, "他明天去", "alice")[0] == "公园"  # after 去, whatever came before
    assert suggested(client, "我今天去", "bob") == plain  # kept apart
    assert suggested(client, "我今天去") == plain  # no user: the plain model
    first = client.post("/api/complete", json={"text": "我今天去", "beam": 2, "length": 1,
                                               "user": "alice"}).json()["continuations"][0]
    assert first["words"] == ["公园"]
    assert (tmp_path / "profiles" / "alice.db").is_file()
    assert not (tmp_path / "profiles" / "bob.db").exists()  # reading creates nothing


def test_completion_offers_the_user_s_own_new_words_as_suggest_does(predictor, tmp_path):
    client = profiled(predictor, tmp_path)
    assert "蕲春" not in predictor.vocab
    for _ in range(30):
        learn(client, "carol", "我们去蕲春看看")
    words = suggested(client, "我们去", "carol")
    assert "蕲春" in words
    found = client.post("/api/complete", json={"user": "carol", "text": "我们去", "beam": 5,
                                               "length": 1}).json()["continuations"]
    assert [c["text"] for c in found] == words  # length 1: the suggestions, in order
    found = client.post("/api/complete", json={"user": "carol", "text": "我们去", "beam": 8,
                                               "length": 2}).json()["continuations"]
    assert ["蕲春", "看看"] in [c["words"] for c in found]  # stepped on with its text
    plain = client.post("/api/complete", json={"text": "我们去", "beam": 5, "length": 1}).json()
    assert "蕲春" not in [c["text"] for c in plain["continuations"]]


def test_a_word_made_from_picks_is_typable_for_its_user_only(predictor, tmp_path):
    client = profiled(predictor, tmp_path)
    assert "克密" not in pinyin_of(client, "kemi")
    answer = learn(client, "alice", "克密", picks=KEMI)
    assert answer["made"] == [{"word": "克密", "reading": "ke'mi"}]
    assert pinyin_of(client, "kemi", "alice")[0] == "克密"
    assert "克密" not in pinyin_of(client, "kemi", "bob")


def test_undo_takes_back_the_last_commit_and_then_the_one_before(predictor, tmp_path):
    client = profiled(predictor, tmp_path)
    learn(client, "alice", "我今天去公园")
    learn(client, "alice", "克密", picks=KEMI, before="我今天去公园")
    undone = client.post("/api/undo", json={"user": "alice"}).json()
    assert undone == {"user": "alice", "undone": True, "words": ["克密"],
                      "made": [{"word": "克密", "reading": "ke'mi"}]}
    assert "克密" not in pinyin_of(client, "kemi", "alice")
    stats = client.get("/api/user/alice/stats").json()
    assert (stats["words"], stats["made_words"], stats["words_typed"]) == (4, 0, 4)
    assert client.post("/api/undo", json={"user": "alice"}).json()["words"] == \
        ["我", "今天", "去", "公园"]
    assert client.post("/api/undo", json={"user": "alice"}).json()["undone"] is False
    assert client.post("/api/undo", json={"user": "nobody"}).json() == \
        {"user": "nobody", "undone": False, "words": [], "made": []}


def test_forget_a_word(predictor, tmp_path):
    client = profiled(predictor, tmp_path)
    learn(client, "alice", "克密", picks=KEMI)
    learn(client, "alice", "我今天去公园")
    forget = {"user": "alice", "word": "克密"}
    assert client.post("/api/forget", json=forget).json() == {**forget, "forgotten": True}
    assert client.post("/api/forget", json=forget).json()["forgotten"] is False
    assert "克密" not in pinyin_of(client, "kemi", "alice")
    assert client.get("/api/user/alice/stats").json()["made_words"] == 0
    assert client.post("/api/forget", json={"user": "bob", "word": "我"}).json()["forgotten"] \
        is False
    assert not (tmp_path / "profiles" / "bob.db").exists()


def test_stats_and_where_profiles_live(predictor, tmp_path):
    client = profiled(predictor, tmp_path)
    empty = client.get("/api/user/default/stats").json()
    assert empty["exists"] is False and empty["words"] == 0 and empty["learn"] is True
    learn(client, "default", "我今天去公园")
    stats = client.get("/api/user/default/stats")
    assert stats.status_code == 200 and str(tmp_path) not in stats.text  # never a local path
    body = stats.json()
    assert body["exists"] is True and (body["words"], body["bigrams"]) == (4, 3)
    assert (tmp_path / "user.db").is_file()  # the default profile: the CLI's file
    from rnn_ime.server import StatsResponse

    StatsResponse.model_validate(body)
    assert client.get("/api/health").json()["user"] == {"enabled": True, "learn": True}


def test_another_process_writing_the_file_is_seen(predictor, tmp_path):
    from rnn_ime.user import Profile

    client = profiled(predictor, tmp_path)
    assert suggested(client, "我今天去", "carol")[0] != "公园"  # no file yet
    cli = Profile.open(predictor.scorer, tmp_path / "profiles" / "carol.db")
    for _ in range(40):
        cli.learn("我今天去公园")
    assert suggested(client, "我今天去", "carol")[0] == "公园"
    cli.model.forget("公园")  # the server has it open now: it must notice the change
    assert "公园" not in suggested(client, "我今天去", "carol")[:1]


def test_profiles_are_bounded(predictor, tmp_path):
    """Past --max-profiles, the profile used least recently is closed (what it learned is in
    its file), so a server never runs out of room for a new user while others are idle."""
    client = profiled(predictor, tmp_path, max_profiles=2, max_words=6)
    learn(client, "one", "我今天")
    learn(client, "two", "我今天")
    learn(client, "one", "我明天")  # "two" is now the least recently used
    learn(client, "three", "我后天")  # closes "two"
    assert client.app.state.engine.profiles.names() == ["one", "three"]
    assert learn(client, "two", "我昨天")["learned"]  # opens again from its file, closes "one"
    two = UserModel(UserStore(tmp_path / "profiles" / "two.db"))
    assert two.counts.words_typed() == pytest.approx(4, abs=0.01)  # 我 今天 我 昨天: all kept
    assert suggested(client, "我", "four")  # a name without a file reads as the plain model
    message = error_of(client.post("/api/learn", json={"user": "two",
                                                       "text": "他们周末去北京看看"}), 413)
    assert "forget some first" in message
    assert error_of(client.post("/api/learn", json={"user": "two", "text": "好" * 2001})
                    ).startswith("text: ")


def test_a_new_profile_is_refused_only_while_every_open_one_is_in_use(predictor, tmp_path):
    directory = ProfileDirectory(predictor.scorer, ProfileDirConfig(tmp_path, max_profiles=1))
    with directory.using("one", create=True) as one:
        one.learn("我今天")
        with pytest.raises(ProfileLimitError, match="in use right now"):
            with directory.using("two", create=True):
                pass
    with directory.using("two", create=True) as two:  # "one" is idle now: closed for room
        two.learn("我明天")
    assert directory.names() == ["two"]
    with directory.using("one") as one:
        assert one.model.counts.words_typed() == pytest.approx(2, abs=0.01)
    directory.close()


BAD_NAMES = ["", "a/b", "../x", "x" * 33, "名字", "a b", 5, None]


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.parametrize("path, body", [
    ("/api/learn", {"text": "我"}), ("/api/undo", {}), ("/api/forget", {"word": "我"}),
    ("/api/suggest", {"text": "我"}), ("/api/pinyin", {"letters": "wo"}),
    ("/api/complete", {"text": "我"})])
def test_a_bad_profile_name_gets_a_422_on_user(predictor, tmp_path, path, body, name):
    client = profiled(predictor, tmp_path)
    if name is None and path in ("/api/suggest", "/api/pinyin", "/api/complete"):
        return  # null: no profile
    assert error_of(client.post(path, json={**body, "user": name})).startswith("user: ")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["a.b", "x" * 33, "名字"])
def test_a_bad_profile_name_in_the_stats_path_gets_a_422(predictor, tmp_path, name):
    assert error_of(profiled(predictor, tmp_path).get(f"/api/user/{name}/stats")).startswith(
        "path.name: ")


@pytest.mark.parametrize("body", [
    {"user": "a", "text": ""}, {"user": "a"}, {"text": "我"},
    {"user": "a", "text": "我", "picks": [{"text": "我"}]},
    {"user": "a", "text": "我", "picks": [{"text": "我", "letters": "wo1"}]},
    {"user": "a", "text": "我", "picks": [{"text": "我", "letters": "''"}]},
    {"user": "a", "text": "我", "picks": [{"text": "", "letters": "wo"}]},
    {"user": "a", "text": "我", "before": "好" * 2001},
    {"user": "a", "text": "我", "extra": 1}])
def test_bad_learn_requests_get_a_422(predictor, tmp_path, body):
    error_of(profiled(predictor, tmp_path).post("/api/learn", json=body))


def test_an_unusable_profile_file_is_a_409_without_its_path(predictor, tmp_path):
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "broken.db").write_bytes(b"not sqlite at all" * 100)
    client = profiled(predictor, tmp_path)
    for response in (client.post("/api/learn", json={"user": "broken", "text": "我"}),
                     client.post("/api/suggest", json={"user": "broken", "text": "我"})):
        message = error_of(response, 409)
        assert "profile broken" in message and str(tmp_path) not in message


PROFILE_REQUESTS = [("post", "/api/suggest", {"text": "我"}),
                    ("post", "/api/complete", {"text": "我"}),
                    ("post", "/api/pinyin", {"letters": "women"}),
                    ("post", "/api/learn", {"text": "我们"}),
                    ("post", "/api/undo", {}), ("post", "/api/forget", {"word": "我们"}),
                    ("get", "/api/user/{user}/stats", None)]


def ask(client, user: str, method: str, path: str, body: dict | None):
    if method == "get":
        return client.get(path.format(user=user))
    return client.post(path, json={**body, "user": user})


@pytest.mark.parametrize("sql", ["INSERT INTO words VALUES ('坏', 'x', 'y', NULL, 0)",
                                 "UPDATE meta SET value = 'abc' WHERE key = 'clock'",
                                 "DROP TABLE bigrams",
                                 "INSERT INTO words VALUES ('坏', 1.0, 1e308, NULL, 0)"])
def test_a_damaged_profile_is_a_409_on_every_endpoint(predictor, tmp_path, sql):
    """Damaged before the server opened it (erin) or while it had it open (dave): a 409 that
    says so without the server's paths, never a 500, and the file is not written to."""
    import sqlite3

    from rnn_ime.user import UserModel, UserStore

    client = profiled(predictor, tmp_path)
    learn(client, "dave", "我们去北京")
    erin = UserModel(UserStore(tmp_path / "profiles" / "erin.db"))
    erin.learn_words(["我们", "去", "北京"])
    erin.store.close()
    for name in ("erin", "dave"):
        with sqlite3.connect(tmp_path / "profiles" / f"{name}.db") as db:
            db.execute(sql)
        db.close()
    before = (tmp_path / "profiles" / "erin.db").read_bytes()
    for user in ("erin", "dave"):
        for method, path, body in PROFILE_REQUESTS:
            message = error_of(ask(client, user, method, path, body), 409)
            assert message.startswith(f"profile {user}: its file cannot be used (damaged: ")
            assert str(tmp_path) not in message
    assert (tmp_path / "profiles" / "erin.db").read_bytes() == before
    assert suggested(client, "我", "carol") == suggested(client, "我")  # others unaffected


def test_no_learn_uses_profiles_but_never_updates_them(predictor, tmp_path):
    from rnn_ime.user import Profile

    writer = Profile.open(predictor.scorer, tmp_path / "user.db")
    for _ in range(40):
        writer.learn("我今天去公园")
    client = profiled(predictor, tmp_path, learn=False)
    assert client.get("/api/health").json()["user"] == {"enabled": True, "learn": False}
    assert suggested(client, "我今天去", "default")[0] == "公园"
    for path, body in [("/api/learn", {"text": "我"}), ("/api/undo", {}),
                       ("/api/forget", {"word": "公园"})]:
        assert error_of(client.post(path, json={"user": "default", **body}), 403) == \
            "learning is off on this server"
    assert client.get("/api/user/default/stats").json()["learn"] is False
    assert not (tmp_path / "profiles").exists()


def test_no_user_answers_as_without_a_profile(client):
    assert client.get("/api/health").json()["user"] == {"enabled": False, "learn": False}
    assert suggested(client, "我今天去", "alice") == suggested(client, "我今天去")
    for path, body in [("/api/learn", {"text": "我"}), ("/api/undo", {}),
                       ("/api/forget", {"word": "我"})]:
        assert "profiles are off" in error_of(client.post(path, json={"user": "a", **body}), 403)
    assert "profiles are off" in error_of(client.get("/api/user/a/stats"), 403)


def test_concurrent_learning_and_reading_of_one_profile(predictor, tmp_path):
    app = create_app(predictor, profiles=ProfileDirConfig(tmp_path))

    async def ask_all() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            learning = [http.post("/api/learn", json={"user": "a", "text": "我今天去公园"})
                        for _ in range(20)]
            reading = [http.post("/api/suggest", json={"user": "a", "text": "我今天去"})
                       for _ in range(20)]
            responses = await asyncio.gather(*learning, *reading)
        return [r.status_code for r in responses]

    assert set(asyncio.run(ask_all())) == {200}
    stats = TestClient(app).get("/api/user/a/stats").json()
    assert stats["words_typed"] == 80 and stats["bigrams"] == 3


@pytest.mark.parametrize("options, message", [
    (["--no-user", "--user-dir", "x"], "--no-user"),
    (["--max-profiles", "0"], "--max-profiles"),
])
def test_serve_checks_the_profile_options_first(tmp_path, capsys, options, message):
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--model", str(tmp_path / "missing"), *options])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnn-ime: error: ") and message in err and "\n" not in err


def test_serve_refuses_a_user_dir_that_is_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit):
        main(["serve", "--model", str(tmp_path / "missing"), "--user-dir",
              str(tmp_path / "file")])
    assert "is not a directory" in capsys.readouterr().err


def test_a_word_forgotten_and_another_made_are_typed_as_such(predictor, tmp_path):
    """The lexicon a profile adds its words to follows the words, not their number."""
    client = profiled(predictor, tmp_path)
    learn(client, "alice", "克密", picks=KEMI)
    assert pinyin_of(client, "kemi", "alice")[0] == "克密"
    client.post("/api/forget", json={"user": "alice", "word": "克密"})
    learn(client, "alice", "客米", picks=[{"text": "客", "letters": "ke"},
                                         {"text": "米", "letters": "mi"}])
    found = pinyin_of(client, "kemi", "alice")
    assert found[0] == "客米" and "克密" not in found


def test_pinyin_typed_key_by_key_answers_as_a_fresh_server(predictor, client):
    """The server keeps each composition's steps (one per user and context): every keystroke's
    answer is the one a server that never saw the earlier keys gives."""
    typed, context = "jintianqunali", "我"
    for end in range(1, len(typed) + 1):
        body = {"letters": typed[:end], "context": context, "k": 9}
        kept = client.post("/api/pinyin", json=body).json()
        fresh = TestClient(create_app(predictor)).post("/api/pinyin", json=body).json()
        del kept["latency_ms"], fresh["latency_ms"]
        assert kept == fresh or _close(kept, fresh)  # the context may come from the cache
