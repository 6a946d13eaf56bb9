"""The lexicon's cache on disk: a damaged file of any kind is built again with a note."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from rnn_ime.ime.lexicon import base_of, cached_base, load_base_file, save_base

FREQUENCY = {"你好": 10.0, "今天": 5.0, "天气": 3.0}


def small_base():
    return base_of(FREQUENCY, "你好今天气")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _flip_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 16):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _garbage(path: Path) -> None:
    path.write_bytes(b"not a zip file at all")


def _rewrite(path: Path, **changes) -> None:
    with np.load(path) as f:
        arrays = {name: f[name] for name in f.files}
    arrays.update(changes)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())


@pytest.mark.parametrize("damage", [
    _truncate,  # zipfile.BadZipFile
    _flip_middle,  # Bad CRC-32 for file 'word.npy' (or a broken header)
    _garbage,
    lambda p: _rewrite(p, word=np.zeros(3, dtype=np.float32)),  # wrong dtype
    lambda p: _rewrite(p, syllables=np.zeros((2, 3), dtype=np.int16)),  # wrong shape
    lambda p: _rewrite(p, word=np.full(len(load_base_file(p).entries.word), 999,
                                       dtype=np.int32)),  # indexes past the words
    lambda p: _rewrite(p, offsets=np.zeros(1, dtype=np.int64)),
    lambda p: _rewrite(p, words=np.frombuffer(b"\xff\xfe", dtype=np.uint8)),  # not UTF-8
    lambda p: _rewrite(p, frequency=None),  # an object array (needs pickle)
    lambda p: _rewrite(p, start_words=np.full(len(load_base_file(p).starts.words), 999)),
    lambda p: _rewrite(p, start_keys=load_base_file(p).starts.keys[::-1].copy()),  # unsorted
    lambda p: _rewrite(p, start_keys=np.zeros(1, dtype=np.int64)),  # another length
    lambda p: _rewrite(p, prefixes=np.frombuffer(b"n", dtype=np.uint8)),  # keys left out
])
def test_a_damaged_cache_is_built_again_with_a_note(tmp_path, capsys, damage):
    path = tmp_path / "lexicon-test.npz"
    save_base(small_base(), path)
    assert load_base_file(path).words == small_base().words
    damage(path)
    base = cached_base(path, small_base)
    assert base.words == small_base().words
    err = capsys.readouterr().err
    assert "is damaged" in err and "building the lexicon again" in err
    assert "Traceback" not in err
    # rewritten whole (atomically: no temporary file left), and loads now
    assert load_base_file(path).words == small_base().words
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    cached_base(path, lambda: pytest.fail("a good cache is not built again"))


def test_a_cache_that_cannot_be_written_is_noted(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    base = cached_base(blocker / "lexicon.npz", small_base)
    assert base.words == small_base().words
    assert "not cached" in capsys.readouterr().err


def test_the_cache_keeps_the_longer_words_each_character_begins(tmp_path):
    from rnn_ime.ime.syllables import syllable_ids

    path = tmp_path / "lexicon-test.npz"
    save_base(small_base(), path)
    base = load_base_file(path)
    assert np.array_equal(base.starts.keys, small_base().starts.keys)
    assert base.entries.prefixes == small_base().entries.prefixes  # read, as computed
    jin, ni = syllable_ids()["jin"], syllable_ids()["ni"]
    position = base.position
    words, owner = base.starts.of(np.asarray([position["今"], position["你"]]), jin)
    assert [base.words[w] for w in words] == ["今天"] and owner.tolist() == [0]
    words, owner = base.starts.of(np.asarray([position["天"], position["你"]]), ni)
    assert [base.words[w] for w in words] == ["你好"] and owner.tolist() == [1]


def test_the_readings_of_words_laid_over_the_base_are_cached_and_a_bad_cache_is_ignored(
        tmp_path, monkeypatch):
    from rnn_ime.ime import lexicon as lexicon_module
    from rnn_ime.vocab import SPECIALS, Vocab

    monkeypatch.setenv("RNN_IME_CACHE", str(tmp_path))
    vocab = Vocab(SPECIALS + ("今天", "你们"), (0, 0, 0, 5, 3), outside=(("张颖", 2),))
    base = small_base()
    built = lexicon_module.build_lexicon(vocab, base)
    [cache] = tmp_path.glob("readings-*.json")
    calls = []
    monkeypatch.setattr(lexicon_module, "word_readings",
                        lambda word, limit: calls.append(word) or [])
    again = lexicon_module.build_lexicon(vocab, base)
    assert calls == [] and again.words == built.words  # every reading from the file
    for bad in ('{"张颖\\t1": [["zhang", 7]]}', "not json", '["a list"]'):
        cache.write_text(bad, encoding="utf-8")
        calls.clear()
        lexicon_module.build_lexicon(vocab, base)
        assert "张颖" in calls  # ignored, read again, and written anew


def test_the_syllable_table_is_cached_per_pypinyin_version_and_a_bad_file_is_ignored(
        tmp_path, monkeypatch):
    """A cold start reads the syllables from the cache dir instead of importing pypinyin; the
    file holds pypinyin's table, and one that does not read as it is replaced."""
    from rnn_ime.ime import syllables

    monkeypatch.setenv("RNN_IME_CACHE", str(tmp_path))
    expected = syllables._syllables_of_pypinyin()
    assert {"zhuang", "lve", "a", "er"} <= set(expected) and len(expected) > 400
    for bad in (None, "not json", '["zhong"]', '["ZHONG", 3]', "[" + '"a",' * 400 + '"a"]'):
        for old in tmp_path.glob("syllables-*.json"):
            old.write_text(bad, encoding="utf-8") if bad else old.unlink()
        syllables.all_syllables.cache_clear()
        try:
            assert syllables.all_syllables() == expected
        finally:
            syllables.all_syllables.cache_clear()
        [cache] = tmp_path.glob("syllables-*.json")
        assert tuple(json.loads(cache.read_text(encoding="utf-8"))) == expected


def _same_lexicon(a, b) -> None:
    assert a.words == b.words and len(a.parts) == len(b.parts)
    for name in ("step_id", "extra", "frequency", "script"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert (a.seen is None) == (b.seen is None)
    if a.seen is not None:
        assert np.array_equal(a.seen, b.seen)
    for x, y in zip(a.parts, b.parts, strict=True):
        assert x.keys == y.keys and x.prefixes == y.prefixes
        for name in ("word", "syllables", "rank", "offsets"):
            assert np.array_equal(getattr(x, name), getattr(y, name)), name
    for x, y in zip(a.starts, b.starts, strict=True):
        assert np.array_equal(x.keys, y.keys) and np.array_equal(x.words, y.words)


@pytest.mark.parametrize("outside", [(("张颖", 2), ("蕲春", 1)), ()])
@pytest.mark.parametrize("own", [("今天", "你们"), ("今天",)])  # 你们: a word the base lacks
def test_the_vocabulary_laid_over_the_base_is_cached_and_reads_back_the_same(
        tmp_path, monkeypatch, outside, own):
    from rnn_ime.ime import lexicon as lexicon_module
    from rnn_ime.vocab import SPECIALS, Vocab

    monkeypatch.setenv("RNN_IME_CACHE", str(tmp_path))
    vocab = Vocab(SPECIALS + own, (0, 0, 0) + (5,) * len(own), outside=outside)
    base = small_base()
    built = lexicon_module.build_lexicon(vocab, base)
    first = lexicon_module.cached_lexicon(vocab, base)  # built, and written
    _same_lexicon(first, built)
    [cache] = tmp_path.glob("overlay-*.npz")
    monkeypatch.setattr(lexicon_module, "build_lexicon",
                        lambda *a: pytest.fail("a good cache is not built again"))
    again = lexicon_module.cached_lexicon(vocab, base)
    _same_lexicon(again, built)
    assert again.position == built.position  # built when asked for, not stored
    other = Vocab(SPECIALS + ("天气",), (0, 0, 0, 5))  # another vocabulary, another file
    with pytest.raises(pytest.fail.Exception, match="not built again"):
        lexicon_module.cached_lexicon(other, base)


@pytest.mark.parametrize("damage", [
    _truncate,
    _garbage,
    lambda p: _rewrite(p, step_id=np.full(len(np.load(p)["step_id"]), 99)),  # past the vocab
    lambda p: _rewrite(p, extra=np.full(len(np.load(p)["extra"]), np.nan)),
    lambda p: _rewrite(p, script=np.load(p)["script"][:-1].copy()),  # another length
    lambda p: _rewrite(p, word=np.full(len(np.load(p)["word"]), 999, dtype=np.int32)),
    lambda p: _rewrite(p, seen=np.full(len(np.load(p)["seen"]), -1.0)),
    lambda p: _rewrite(p, words=np.frombuffer(b"\xff\xfe", dtype=np.uint8)),
])
def test_a_damaged_overlay_cache_is_built_and_written_again(tmp_path, monkeypatch, damage):
    from rnn_ime.ime import lexicon as lexicon_module
    from rnn_ime.vocab import SPECIALS, Vocab

    monkeypatch.setenv("RNN_IME_CACHE", str(tmp_path))
    vocab = Vocab(SPECIALS + ("今天", "你们"), (0, 0, 0, 5, 3), outside=(("张颖", 2),))
    base = small_base()
    built = lexicon_module.cached_lexicon(vocab, base)
    [cache] = tmp_path.glob("overlay-*.npz")
    damage(cache)
    _same_lexicon(lexicon_module.cached_lexicon(vocab, base), built)
    _same_lexicon(lexicon_module.load_overlay_file(cache, vocab, base), built)  # rewritten


def test_writing_a_cache_file_removes_its_kind_unused_for_30_days(tmp_path, monkeypatch):
    import os
    import time

    from rnn_ime.ime import lexicon as lexicon_module
    from rnn_ime.vocab import SPECIALS, Vocab

    monkeypatch.setenv("RNN_IME_CACHE", str(tmp_path))
    old = time.time() - 31 * 86400
    key = "0123456789abcdef"
    stale, recent, other_kind, left_tmp = (tmp_path / f"overlay-0-{key}.npz",
                                           tmp_path / f"overlay-1-{key[::-1]}.npz",
                                           tmp_path / f"lexicon-{key}.npz",
                                           tmp_path / f".overlay-1-{key}.npz.k2j4s.tmp")
    not_ours = [tmp_path / name for name in ("overlay-1-mine.npz", ".notes.tmp", "x.npz")]
    for path in (stale, recent, other_kind, left_tmp, *not_ours):
        path.write_bytes(b"x")
    for path in (stale, other_kind, left_tmp, *not_ours):
        os.utime(path, (old, old))
    vocab = Vocab(SPECIALS + ("今天", "你们"), (0, 0, 0, 5, 3), outside=(("张颖", 2),))
    base = small_base()
    lexicon_module.cached_lexicon(vocab, base)
    [written] = set(tmp_path.glob("overlay-*.npz")) - {recent, *not_ours}
    assert not stale.exists() and not left_tmp.exists()
    assert recent.exists() and other_kind.exists()  # used lately; another kind of file
    assert all(path.exists() for path in not_ours)  # names rnn-ime does not write
    # a file in use is kept: each read marks it, and it is the one written anyway
    os.utime(written, (old, old))
    lexicon_module.cached_lexicon(vocab, base)
    assert written.stat().st_mtime > old + 86400
