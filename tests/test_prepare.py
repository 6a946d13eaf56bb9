import numpy as np
import pytest

from conftest import hanzi_number, write_lines
from rnn_ime.corpus import Document
from rnn_ime.data import DataDir
from rnn_ime.errors import CorpusError
from rnn_ime.prepare import PrepareConfig, deduplicate, prepare, split_documents
from rnn_ime.vocab import BOS_ID


def _prepare(corpus, out, **kw):
    return prepare(PrepareConfig(corpus=[str(c) for c in corpus], out=str(out), progress=False,
                                 **{"min_count": 1, **kw}), log=lambda *_: None)


def test_preparing_twice_gives_byte_identical_files(tmp_path, small_corpus):
    _prepare([small_corpus], tmp_path / "a")
    _prepare([small_corpus], tmp_path / "b")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert "manifest.json" in names and "train.npy" in names
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_deduplicate_keeps_the_first_copy_and_counts_per_source():
    docs = [Document("a", ("x",)), Document("b", ("x",)), Document("a", ("y",))]
    unique, dropped = deduplicate(docs)
    assert unique == [docs[0], docs[2]] and dropped.exact == {"b": 1} and not dropped.near


def test_near_duplicates_differ_only_in_punctuation_spaces_and_digits():
    docs = [Document("r", ("房间很好，下次还住！",)), Document("r", ("房间很好 下次还住。。",)),
            Document("r", ("房间1很好，下次还住",)), Document("r", ("房间很大，下次还住！",)),
            Document("r", ("！！",)), Document("r", ("？",))]
    unique, dropped = deduplicate(docs)
    assert unique == [docs[0], docs[3], docs[4], docs[5]]
    assert dropped.near == {"r": 2} and not dropped.exact


def test_split_is_by_document_seeded_and_complete():
    parts = split_documents(100, seed=3, valid_ratio=0.1, test_ratio=0.1)
    assert [len(parts[s]) for s in ("train", "valid", "test")] == [80, 10, 10]
    assert sorted(np.concatenate(list(parts.values()))) == list(range(100))
    assert all((split_documents(100, 3, 0.1, 0.1)[s] == parts[s]).all() for s in parts)
    assert any((split_documents(100, 4, 0.1, 0.1)[s] != parts[s]).any() for s in ("test",))


def test_no_test_passage_is_seen_in_training(tmp_path):
    names = [f"第{hanzi_number(i)}句话很好" for i in range(50)]
    corpus = write_lines(tmp_path / "c.txt", names * 2 + [f"{n}！" for n in names[:10]])
    manifest = _prepare([corpus], tmp_path / "d")
    assert manifest["sources"][0]["duplicates_dropped"] == 50
    assert manifest["sources"][0]["near_duplicates_dropped"] == 10
    data = DataDir(tmp_path / "d")
    seen = {tuple(data.split(s).passage_tokens(i)) for s in ("train",)
            for i in range(len(data.split(s).passages))}
    test = data.split("test")
    assert all(tuple(test.passage_tokens(i)) not in seen for i in range(len(test.passages)))


def test_token_arrays_start_each_passage_with_a_marker(tmp_path, small_corpus):
    _prepare([small_corpus], tmp_path / "d")
    split = DataDir(tmp_path / "d").split("train")
    assert split.tokens.dtype == np.int32
    assert (np.asarray(split.tokens)[split.starts] == BOS_ID).all()
    assert split.tokens[-1] == BOS_ID


def test_vocabulary_comes_from_the_training_split_only(tmp_path, small_corpus):
    manifest = _prepare([small_corpus], tmp_path / "d")
    data = DataDir(tmp_path / "d")
    train_ids = set(np.asarray(data.split("train").tokens).tolist())
    assert set(range(len(data.vocab))) - train_ids <= {0, 1}  # every word occurs in train
    assert manifest["tokenizer"]["name"] == "jieba"
    assert manifest["sources"][0]["sha256"]


def test_empty_corpus_is_an_error(tmp_path):
    corpus = write_lines(tmp_path / "empty.txt", ["", "   "])
    with pytest.raises(CorpusError, match="0 distinct"):
        _prepare([corpus], tmp_path / "d")


def test_two_sources_are_split_separately_and_named(tmp_path):
    a = write_lines(tmp_path / "a.txt", [f"酒店第{hanzi_number(i)}条评论不错" for i in range(40)])
    b = write_lines(tmp_path / "b.txt", [f"新闻第{hanzi_number(i)}条报道发布" for i in range(40)])
    manifest = _prepare([a, b], tmp_path / "d")
    assert [s["name"] for s in manifest["sources"]] == [str(a), str(b)]
    test = DataDir(tmp_path / "d").split("test")
    assert sorted(set(test.passages[:, 1].tolist())) == [0, 1]


def test_a_source_of_two_documents_goes_to_train_beside_a_larger_one(tmp_path, small_corpus):
    tiny = write_lines(tmp_path / "tiny.txt", ["我今天去北京玩", "他明天去上海看看"])
    manifest = _prepare([tiny, small_corpus], tmp_path / "d")
    data = DataDir(tmp_path / "d")
    tiny_index = next(s["index"] for s in manifest["sources"] if s["name"] == str(tiny))
    assert (data.split("train").passages[:, 1] == tiny_index).sum() == 2
    assert all(manifest["splits"][s]["documents"] > 0 for s in ("valid", "test"))


def test_sources_of_two_documents_each_still_fill_valid_and_test(tmp_path):
    from conftest import tiny_train_config
    from rnn_ime.train import train

    a = write_lines(tmp_path / "a.txt", ["我今天去北京玩", "他明天去上海看看"])
    b = write_lines(tmp_path / "b.txt", ["老师周末去公园散步", "同学晚上去超市买东西"])
    manifest = _prepare([a, b], tmp_path / "d")
    assert [manifest["splits"][s]["documents"] for s in ("train", "valid", "test")] == [2, 1, 1]
    again = _prepare([a, b], tmp_path / "d2")
    assert again["files"] == manifest["files"]  # still deterministic
    summary = train(tiny_train_config(tmp_path / "d", tmp_path / "m", batch_size=2, bptt=4,
                                      max_steps=4), log=lambda *_: None)
    assert summary["steps"] == 4 and summary["validation"]


def test_a_corpus_of_two_documents_alone_is_a_clear_error(tmp_path):
    a = write_lines(tmp_path / "a.txt", ["我今天去北京玩", "他明天去上海看看"])
    with pytest.raises(CorpusError, match="2 distinct non-empty documents; need at least 3"):
        _prepare([a], tmp_path / "d")


def test_the_training_words_outside_the_vocabulary_are_kept_beside_it(tmp_path):
    corpus = write_lines(tmp_path / "c.txt", [f"今天天气很好{hanzi_number(i)}" for i in range(40)])
    manifest = _prepare([corpus], tmp_path / "d", min_count=3)
    vocab = DataDir(tmp_path / "d").vocab
    assert vocab.outside and all(count < 3 and word not in vocab
                                 for word, count in vocab.outside)
    assert manifest["vocab"]["outside_words"] == len(vocab.outside)
    assert "outside.txt" in manifest["files"]
    assert sum(c for _, c in vocab.outside) == vocab.counts[1]  # exactly what became <unk>
    from conftest import tiny_train_config
    from rnn_ime.modeldir import load
    from rnn_ime.train import train

    train(tiny_train_config(tmp_path / "d", tmp_path / "m", batch_size=2, bptt=4, max_steps=2),
          log=lambda *_: None)
    assert load(tmp_path / "m")[1].outside == vocab.outside  # the model dir keeps them too
