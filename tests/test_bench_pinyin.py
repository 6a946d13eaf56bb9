"""bench/pinyin.py's pure parts: cutting raw text into pieces, OOV pieces, the peer's spelling;
and `documents_by_split`, which the bench uses to recover the raw test text, against prepare."""

import importlib.util
import sys
from pathlib import Path

import numpy as np

from conftest import hanzi_number, write_lines
from rnn_ime.data import DataDir
from rnn_ime.prepare import PrepareConfig, documents_by_split, encode_split, prepare
from rnn_ime.text import get_tokenizer

_PATH = Path(__file__).resolve().parent.parent / "bench" / "pinyin.py"
_SPEC = importlib.util.spec_from_file_location("bench_pinyin", _PATH)
bench = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = bench  # dataclasses look their module up there
_SPEC.loader.exec_module(bench)


def test_clauses_cut_at_punctuation_and_strip_quotes_at_their_edges():
    passage = "他说：“我们今天去北京。”明天呢？好 的,再见!"
    assert bench.clauses(passage) == [(0, "他说"), (4, "我们今天去北京"), (13, "明天呢"),
                                      (17, "好"), (19, "的"), (21, "再见")]
    for offset, clause in bench.clauses(passage):
        assert passage[offset:offset + len(clause)] == clause


def test_a_piece_is_four_to_twelve_chinese_characters_and_the_rest_is_counted():
    assert bench.classify("我们今天") == "piece" and bench.classify("我" * 12) == "piece"
    assert bench.classify("我们去") == "short" and bench.classify("我" * 13) == "long"
    assert bench.classify("房间有3张床") == "digits_latin"
    assert bench.classify("我喜欢用iPhone") == "digits_latin"
    assert bench.classify("读了《红楼梦》这本书") == "other"
    found, counts = bench.passage_pieces("我今天去北京玩，有2个人。他们很开心！好")
    assert found == [(0, "我今天去北京玩"), (13, "他们很开心")]
    assert counts == {"piece": 2, "digits_latin": 1, "short": 1}


def test_a_piece_keeps_the_mark_one_types_after_it():
    from rnn_ime.corpus import Document
    from rnn_ime.vocab import SPECIALS, Vocab

    passage = "我们今天去北京吗？“明天再去看看”，大家都很高兴"
    vocab = Vocab(SPECIALS + ("我们",), (0, 0, 0, 1))
    pieces, _ = bench.source_pieces([Document("s", (passage,))], vocab, 10, 0, "s")
    marks = {p.text: p.mark for p in pieces}
    # a quote or the passage's end after a piece is not a mark one types
    assert marks == {"我们今天去北京吗": "？", "明天再去看看": "", "大家都很高兴": ""}


def test_oov_pieces_hold_a_word_outside_the_vocabulary():
    vocab = {"<pad>", "<unk>", "<s>", "我", "今天", "去"}
    assert bench.oov_words(["我", "今天", "去"], vocab) == []
    assert bench.oov_words(["我", "今天", "去", "北京"], vocab) == ["北京"]
    assert bench.oov_words(["<unk>"], vocab) == ["<unk>"]


def test_syllables_and_the_peers_spelling():
    assert bench.syllables_of("绿色的") == ("lv", "se", "de")
    known = frozenset({"jve", "lv", "se", "de", "xve"})
    simplify = lambda s: s.replace("ue", "ve")  # noqa: E731  Pinyin2Hanzi's rule
    assert bench.peer_syllables(("jue", "de"), simplify, known) == ["jve", "de"]
    assert bench.peer_syllables(("n", "de"), simplify, known) is None


def test_scores_of_a_ranking():
    assert bench.score(["我们", "我门"], "我们") == (True, True, 2)
    assert bench.score(["我门", "我们"], "我们") == (False, True, 1)
    assert bench.score([], "我们") == (False, False, 0)


def test_documents_by_split_are_the_documents_prepare_encodes(tmp_path):
    lines = [f"酒店第{hanzi_number(i)}条评论不错，下次还来" for i in range(40)]
    a = write_lines(tmp_path / "a.txt", lines + lines[:3])  # duplicates are dropped alike
    b = write_lines(tmp_path / "b.txt", [f"新闻第{hanzi_number(i)}条报道发布" for i in range(30)])
    config = PrepareConfig(corpus=[str(a), str(b)], out=str(tmp_path / "d"), min_count=1,
                           progress=False)
    prepare(config, log=lambda *_: None)
    splits = documents_by_split(config, log=lambda *_: None)
    data = DataDir(tmp_path / "d")
    tokenizer = get_tokenizer()
    for name, documents in splits.items():
        assert len(documents) == data.manifest["splits"][name]["documents"]
        ids, passages = encode_split(
            [[tokenizer.tokenize(p) for p in d.passages] for d in documents],
            [data.source_names.index(d.source) for d in documents], data.vocab)
        assert np.array_equal(ids, np.load(tmp_path / "d" / f"{name}.npy")), name
        assert np.array_equal(passages, np.load(tmp_path / "d" / f"{name}_passages.npy")), name


def test_each_latency_way_decodes_the_same_candidates(small_model):
    from rnn_ime import modeldir
    from rnn_ime.ime import StepMemo
    from rnn_ime.scoring import NeuralScorer

    model, vocab, _ = modeldir.load(small_model)
    scorer = NeuralScorer(model, vocab)
    context = tuple(vocab.encode(["我们"]))
    afresh = bench.decode_texts(scorer, "womenmingtian", context)
    assert afresh
    assert bench.decode_texts(scorer, "womenmingtian", context,
                              start=scorer.read(context)) == afresh
    memo = StepMemo(key=None)
    for end in range(1, len("womenmingtian")):
        bench.decode_texts(scorer, "womenmingtian"[:end], context, memo=memo)
    assert bench.decode_texts(scorer, "womenmingtian", context, memo=memo) == afresh
    inputs = [("womenmingtian", context), ("mingtian", ())]
    for way in (bench.latency, bench.latency_context_read, bench.latency_typed):
        timing = way(scorer, inputs, 4)
        assert 0 < timing["p50_ms"] <= timing["p99_ms"]
