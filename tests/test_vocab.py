import pytest

from rnn_ime.errors import DataDirError
from rnn_ime.vocab import BOS_ID, PAD_ID, UNK_ID, Vocab, build_vocab


def test_build_vocab_orders_by_count_then_word_after_the_specials():
    vocab = build_vocab([["b", "a", "c", "a"], ["b", "d"]])
    assert vocab.words == ("<pad>", "<unk>", "<s>", "a", "b", "c", "d")
    assert vocab.counts[3:] == (2, 2, 1, 1)
    assert (PAD_ID, UNK_ID, BOS_ID) == (0, 1, 2)


def test_min_count_and_max_size_send_the_rest_to_unk():
    vocab = build_vocab([["a", "a", "a", "b", "b", "c"]], min_count=2)
    assert vocab.words[3:] == ("a", "b") and vocab.counts[UNK_ID] == 1
    vocab = build_vocab([["a", "a", "a", "b", "b", "c"]], max_size=4)
    assert vocab.words[3:] == ("a",) and vocab.counts[UNK_ID] == 3
    assert vocab.encode(["a", "c", "zzz"]) == [3, UNK_ID, UNK_ID]


def test_save_load_round_trip_keeps_the_hash(tmp_path):
    vocab = build_vocab([["今天", "天气", "今天", " "]])
    vocab.save(tmp_path / "vocab.txt")
    loaded = Vocab.load(tmp_path / "vocab.txt")
    assert loaded == vocab and loaded.sha256 == vocab.sha256


def test_load_rejects_a_file_without_the_specials(tmp_path):
    (tmp_path / "vocab.txt").write_text("a\t1\n", encoding="utf-8")
    with pytest.raises(DataDirError):
        Vocab.load(tmp_path / "vocab.txt")


def test_specials_are_never_suggestable():
    mask = build_vocab([["a"]]).suggestable_mask()
    assert mask.tolist() == [False, False, False, True]


def test_the_words_left_out_are_kept_with_their_counts():
    vocab = build_vocab([["a", "a", "a", "b", "b", "c", "d"]], min_count=2)
    assert vocab.outside == (("c", 1), ("d", 1))
    vocab = build_vocab([["a", "a", "a", "b", "b", "c"]], max_size=4)
    assert vocab.outside == (("b", 2), ("c", 1))
    assert build_vocab([["a"]]).outside == ()


def test_outside_words_round_trip_beside_the_vocabulary_and_leave_its_identity(tmp_path):
    vocab = build_vocab([["今天", "今天", "天气", "晴朗"]], min_count=2)
    vocab.save(tmp_path / "vocab.txt")
    assert (tmp_path / "outside.txt").read_text(encoding="utf-8") == "天气\t1\n晴朗\t1\n"
    loaded = Vocab.load(tmp_path / "vocab.txt")
    assert loaded.outside == vocab.outside
    bare = Vocab(vocab.words, vocab.counts)
    assert bare == vocab and bare.sha256 == vocab.sha256  # not part of the identity
    assert bare.outside_sha256 != vocab.outside_sha256
    bare.save(tmp_path / "vocab.txt")  # no outside words: a stale file is not left behind
    assert not (tmp_path / "outside.txt").exists()
    assert Vocab.load(tmp_path / "vocab.txt").outside == ()


def test_a_malformed_outside_file_is_a_data_dir_error(tmp_path):
    build_vocab([["a"]]).save(tmp_path / "vocab.txt")
    (tmp_path / "outside.txt").write_text("b 1\n", encoding="utf-8")
    with pytest.raises(DataDirError, match="outside.txt:1: expected 'word<TAB>count'"):
        Vocab.load(tmp_path / "vocab.txt")
