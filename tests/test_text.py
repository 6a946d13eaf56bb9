from rnn_ime.text import clean_text, get_tokenizer


def test_clean_text_makes_fullwidth_letters_and_digits_halfwidth_but_keeps_punctuation():
    assert clean_text("ＡＢＣ１２３，很好！") == "ABC123，很好！"


def test_clean_text_collapses_whitespace_and_removes_control_characters():
    assert clean_text("  我\u3000今天\t\t去\x00北京 \u200b ") == "我 今天 去 北京"


def test_tokenizer_segments_and_drops_whitespace():
    words = get_tokenizer().tokenize("我今天 去北京")
    assert words[:2] == ["我", "今天"]
    assert all(w.strip() for w in words)
    assert "".join(words) == "我今天去北京"


def test_tokenizer_info_names_jieba_and_its_dictionary():
    info = get_tokenizer().info
    assert info.name == "jieba" and info.version and len(info.dictionary_sha256) == 64


def test_the_clause_cache_segments_as_the_tokenizer_does():
    import random

    from rnn_ime.text import CLAUSE_ENDS, ClauseCache

    tokenizer = get_tokenizer()
    cache = ClauseCache(tokenizer, entries=8)
    pieces = ["我今天", "去公园", "散步", "研究生命", "起源", "ab", "12", "１２", "C++", "3.5",
              "很好", "\t", "  ", "\x07", "了", *CLAUSE_ENDS]
    rng = random.Random(0)
    for _ in range(300):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 12)))
        assert cache.tokenize(text) == tokenizer.tokenize(text), repr(text)
        for i in range(len(text)):  # and every prefix, as typing makes them
            assert cache.tokenize(text[:i]) == tokenizer.tokenize(text[:i]), repr(text[:i])
