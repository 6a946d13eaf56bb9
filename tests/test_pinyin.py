"""Pinyin input: syllables, lexicon, lattice, the search (against brute force), CLI and API."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from rnn_ime.cli import main
from rnn_ime.pinyin import (
    LITERAL_PENALTY,
    PinyinError,
    build_lattice,
    decode,
    lexicon_for,
    normalize,
    segmentations,
    word_readings,
)
from rnn_ime.scoring import Scorer
from rnn_ime.vocab import SPECIALS, Vocab

WORDS = ["西安", "西", "安", "先", "今天", "今", "天", "金", "田", "气", "天气", "很", "好", "绿",
         "题", "是"]


class BigramScorer(Scorer[int]):
    """A fake scorer: log p(next | last word) from a fixed random table."""
    name = "bigram"

    def __init__(self, vocab: Vocab, seed: int = 0) -> None:
        self.vocab = vocab
        generator = torch.Generator().manual_seed(seed)
        logits = torch.randn(len(vocab), len(vocab), generator=generator, dtype=torch.float64)
        self.table = torch.log_softmax(3 * logits, dim=1)
        self.steps = 0

    def start(self) -> int:
        return 0

    def step_batch(self, states: list[int], word_ids: list[int]
                   ) -> list[tuple[int, torch.Tensor]]:
        self.steps += len(word_ids)
        return [(word_id, self.table[word_id]) for word_id in word_ids]


@pytest.fixture(scope="module")
def vocab() -> Vocab:
    return Vocab(SPECIALS + tuple(WORDS), (0, 0, 0) + tuple(range(100, 100 - len(WORDS), -1)))


def texts(decoding) -> list[str]:
    return [c.text for c in decoding.phrases]


# ---------------------------------------------------------------- syllables and input
def test_segmentations_ambiguous_and_apostrophes():
    assert segmentations("xian")[:2] == [("xian",), ("xi", "an")]
    assert segmentations("xi'an")[0] == ("xi", "an")  # then xi a n (n: 嗯)
    assert all(cut[0] == "xi" for cut in segmentations("xi'an"))
    assert ("fang", "an") in segmentations("fang'an")
    assert ("fan", "gan") in segmentations("fangan") and ("fang", "an") in segmentations("fangan")
    assert segmentations("jintiantianqi")[0] == ("jin", "tian", "tian", "qi")
    assert segmentations("iv") == []


def test_normalize_keeps_apostrophes_as_breaks_and_counts_characters():
    letters, breaks, consumed = normalize("Xi'an")
    assert (letters, breaks) == ("xian", frozenset({2}))
    assert consumed == [0, 1, 3, 4, 5]  # after "xi" the apostrophe is consumed too


@pytest.mark.parametrize("bad", ["ni hao", "ni3hao", "你好", "a" * 65])
def test_normalize_rejects_bad_input(bad):
    with pytest.raises(PinyinError):
        normalize(bad)


def test_word_readings_heteronyms_and_v():
    assert word_readings("今天") == [("jin", "tian")]
    assert ("lv",) in word_readings("绿")
    assert word_readings("ok") == [] and word_readings("，") == []


# ---------------------------------------------------------------- lattice
def _edges(vocab, raw):
    letters, breaks, _ = normalize(raw)
    lattice = build_lattice(letters, breaks, lexicon_for(vocab))
    return {(s, e.end, vocab.word(int(i)) if not e.literal else letters[s:e.end])
            for s, group in enumerate(lattice) for e in group for i in e.ids}


def test_lattice_full_syllables_and_apostrophe(vocab):
    edges = _edges(vocab, "xian")
    assert {(0, 4, "先"), (0, 4, "西安"), (0, 2, "西"), (2, 4, "安")} <= edges
    edges = _edges(vocab, "xi'an")
    assert (0, 4, "西安") in edges and (0, 4, "先") not in edges


def test_lattice_abbreviations_and_partial_last_syllable(vocab):
    assert (0, 2, "今天") in _edges(vocab, "jt")
    assert (0, 4, "今天") in _edges(vocab, "jint")
    assert (0, 5, "今天") in _edges(vocab, "jinti")  # ti → tian, at the end only
    assert not any(w == "今天" and e == 5 for _, e, w in _edges(vocab, "jintiqi"))


def test_letters_that_fit_no_syllable_are_kept(vocab):
    found = decode(BigramScorer(vocab), "iuv", k=3)
    assert texts(found) == ["iuv"] and found.literal
    found = decode(BigramScorer(vocab), "xianv", k=3)
    assert all(t.endswith("v") for t in texts(found))
    assert found.phrases[0].letters == 5


# ---------------------------------------------------------------- search vs brute force
def _all_paths(vocab, raw, scorer):
    """Every path through the lattice with its exact score."""
    letters, breaks, _ = normalize(raw)
    lattice = build_lattice(letters, breaks, lexicon_for(vocab))
    out = []

    def walk(s, state, lp, words, score):
        if s == len(letters):
            out.append(("".join(words), score))
            return
        for group in lattice[s]:
            for i, pen in zip(group.ids.tolist(), group.penalty.tolist(), strict=True):
                word = letters[s:group.end] if group.literal else vocab.word(i)
                gain = 0.0 if group.literal else float(lp[i])
                nxt, nlp = scorer.step(state, i)
                walk(group.end, nxt, nlp, [*words, word], score + gain - pen)

    walk(0, *scorer.step(scorer.start(), 2), [], 0.0)
    return sorted(out, key=lambda t: -t[1])


@pytest.mark.parametrize("raw", ["xian", "jintianqi", "jttq", "xiantianqihenhao", "jinti",
                                 "xi'antian"])
@pytest.mark.parametrize("seed", [0, 1])
def test_search_finds_the_best_path_of_brute_force(vocab, raw, seed):
    scorer = BigramScorer(vocab, seed)
    expected = _all_paths(vocab, raw, scorer)
    found = decode(scorer, raw, k=3, beam=16, margin=math.inf)
    assert found.phrases[0].score == pytest.approx(expected[0][1])
    assert found.phrases[0].text == expected[0][0]
    small = decode(scorer, raw, k=1, beam=1)  # a narrow beam still returns a full path
    assert small.phrases and small.phrases[0].letters == len(raw)


def test_context_changes_the_ranking(vocab):
    scorer = BigramScorer(vocab)
    after = {w: texts(decode(scorer, "xian", [vocab.id(w)], k=1))[0] for w in WORDS}
    assert len(set(after.values())) > 1
    best = max(["先", "西安"], key=lambda w: float(scorer.table[vocab.id("好"), vocab.id(w)]))
    assert after["好"] in (best, "西安", "先")


def test_first_words_lead_with_the_best_phrase_and_consume_letters(vocab):
    found = decode(BigramScorer(vocab), "jintianhenhao", k=5)
    assert found.first_words[0].text == found.phrases[0].words[0]
    assert found.phrases[0].letters == 13
    assert {c.text for c in found.first_words} >= {"今天", "今"}


def test_literal_penalty_is_applied(vocab):
    found = decode(BigramScorer(vocab), "v", k=1)
    assert found.phrases[0].score == pytest.approx(-LITERAL_PENALTY)
    assert np.isfinite(found.phrases[0].log_prob)


def test_bad_options(vocab):
    with pytest.raises(PinyinError):
        decode(BigramScorer(vocab), "xian", k=0)
    with pytest.raises(PinyinError):
        decode(BigramScorer(vocab), "xian", beam=1000)
    assert decode(BigramScorer(vocab), "'").phrases == []


# ---------------------------------------------------------------- CLI and API
def test_cli_pinyin_json(small_model, capsys):
    main(["pinyin", "--model", str(small_model), "--json", "-k", "3", "--context", "我",
          "jintianqu"])
    answer = json.loads(capsys.readouterr().out)
    assert answer["letters"] == "jintianqu" and answer["context"] == "我"
    assert answer["phrases"][0]["text"] == "今天去"
    assert answer["phrases"][0]["words"] == ["今天", "去"]
    assert answer["first_words"][0]["text"] == "今天" and answer["first_words"][0]["letters"] == 7
    main(["pinyin", "--model", str(small_model), "wmt"])  # initials only
    assert capsys.readouterr().out.split("\n")[0].startswith("1.我明天")


def test_cli_pinyin_user_errors(small_model, capsys):
    for argv in (["pinyin", "--model", str(small_model), "ni3hao"],
                 ["pinyin", "--model", str(small_model), "-k", "0", "nihao"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        assert capsys.readouterr().err.startswith("rnn-ime: error: ")


@pytest.fixture(scope="module")
def client(small_model):
    from fastapi.testclient import TestClient

    from rnn_ime.predict import Predictor
    from rnn_ime.server import create_app

    return TestClient(create_app(Predictor.from_dir(small_model)))


def test_api_pinyin(client):
    response = client.post("/api/pinyin", json={"letters": "wo'jintian", "context": "", "k": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["phrases"][0]["text"] == "我今天" and body["phrases"][0]["letters"] == 10
    assert len(body["phrases"]) <= 3 and body["latency_ms"] >= 0


@pytest.mark.parametrize("body, status, field", [
    ({"letters": ""}, 422, "letters"),
    ({"letters": "ni hao"}, 422, "letters"),
    ({"letters": "a" * 65}, 422, "letters"),
    ({"letters": "nihao", "k": 0}, 422, "k"),
    ({"letters": "nihao", "context": 5}, 422, "context"),
    ({"letters": "nihao", "extra": 1}, 422, "extra"),
    ({}, 422, "letters"),
])
def test_api_pinyin_validation(client, body, status, field):
    response = client.post("/api/pinyin", json=body)
    assert response.status_code == status
    assert field in response.json()["error"]


def test_api_pinyin_not_json(client):
    response = client.post("/api/pinyin", content=b"{", headers={"content-type":
                                                                    "application/json"})
    assert response.status_code == 400
