"""Pinyin input: syllables, lexicon, lattice, the search (against brute force), CLI and API."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rnn_ime.cli import main
from rnn_ime.ime import (
    FULL_WIDTH,
    FUZZY_RULES,
    Candidate,
    DecoderSettings,
    Decoding,
    Penalties,
    PinyinError,
    StepMemo,
    commit_of,
    commit_text,
    decode,
    mark_after,
    normalize,
    segmentations,
    split_mark,
)
from rnn_ime.ime.lattice import build_lattice
from rnn_ime.ime.lexicon import (
    COMMON,
    RARE,
    TRADITIONAL,
    base_of,
    build_lexicon,
    read_word_list,
    script_classes,
    word_readings,
)
from rnn_ime.ime.punctuation import mark_class
from rnn_ime.scoring import Scorer
from rnn_ime.vocab import SPECIALS, UNK_ID, Vocab

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


@pytest.fixture(scope="module")
def lexicon(vocab):
    """The vocabulary's words and their characters only: small enough to search by brute
    force (the open-vocabulary tests below add words outside the vocabulary)."""
    return build_lexicon(vocab, base_of({}, "".join(WORDS)))


def texts(decoding) -> list[str]:
    return [c.text for c in decoding.phrases]


def run(scorer, raw, lexicon, context=(), **settings):
    return decode(scorer, raw, context, DecoderSettings(**settings), lexicon)


def table_scorer(words: tuple[str, ...], after: dict[str, dict[str, float]]) -> Scorer:
    """A scorer of fixed next-word probabilities: `after[word]` (else a tiny floor), each row
    normalised; the state is the last word."""
    table_vocab = Vocab(SPECIALS + words, (0, 0, 0) + (5,) * len(words))

    class Table(Scorer[int]):
        name = "table"
        vocab = table_vocab

        def start(self) -> int:
            return 0

        def step_batch(self, states, word_ids):
            out = []
            for word_id in word_ids:
                row = torch.full((len(table_vocab),), 1e-6, dtype=torch.float64)
                for word, p in after.get(table_vocab.words[word_id], {}).items():
                    row[table_vocab.id(word)] = p
                out.append((word_id, torch.log(row / row.sum())))
            return out

    return Table()


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
    assert word_readings("今天")[0] == ("jin", "tian")
    assert word_readings("银行", limit=1) == [("yin", "hang")]  # the phrase's reading
    assert ("lv",) in word_readings("绿")
    assert word_readings("ok") == [] and word_readings("，") == []


# ---------------------------------------------------------------- lattice
def _edges(lexicon, raw, fuzzy=frozenset()):
    letters, breaks, _ = normalize(raw)
    lattice = build_lattice(letters, breaks, lexicon, frozenset(fuzzy))
    return {(s, e.end, lexicon.words[int(i)] if not e.literal else letters[s:e.end])
            for s, group in enumerate(lattice) for e in group for i in e.words}


def test_lattice_full_syllables_and_apostrophe(lexicon):
    edges = _edges(lexicon, "xian")
    assert {(0, 4, "先"), (0, 4, "西安"), (0, 2, "西"), (2, 4, "安")} <= edges
    edges = _edges(lexicon, "xi'an")
    assert (0, 4, "西安") in edges and (0, 4, "先") not in edges


def test_lattice_abbreviations_and_partial_last_syllable(lexicon):
    assert (0, 2, "今天") in _edges(lexicon, "jt")
    assert (0, 4, "今天") in _edges(lexicon, "jint")
    assert (0, 5, "今天") in _edges(lexicon, "jinti")  # ti → tian, at the end only
    assert not any(w == "今天" and e == 5 for _, e, w in _edges(lexicon, "jintiqi"))
    assert (0, 5, "今天") not in _edges(lexicon, "jtian")  # no whole syllable after an initial


def _penalties(lexicon, raw):
    """{(start, end, word): penalty} of the lattice's edges."""
    letters, breaks, _ = normalize(raw)
    return {(s, e.end, lexicon.words[int(i)]): float(pen)
            for s, group in enumerate(build_lattice(letters, breaks, lexicon))
            for e in group if not e.literal for i, pen in zip(e.words, e.penalty, strict=True)}


def test_a_whole_last_syllable_prefers_itself_to_longer_ones(lexicon):
    """xian is 先 before it is the start of xiang; ti is 题 before it is the start of tian: a
    longer syllable costs `longer`, while a last syllable typed in part costs `partial`."""
    penalties = Penalties()
    assert penalties.longer > penalties.partial
    edges = _penalties(lexicon, "jinti")
    assert edges[(3, 5, "题")] == 0.0
    assert edges[(3, 5, "天")] == penalties.longer
    assert _penalties(lexicon, "jintia")[(3, 6, "天")] == penalties.partial  # tia: no syllable


def test_a_syllable_cut_short_where_a_longer_one_fits_costs_a_split(lexicon):
    """xian read as xi'an pays `split` for xi (xian fits there), and `lone_split` more when
    xian is all that was typed (a syllable typed alone is that syllable first: nve is 虐
    before 女儿); with the apostrophe it is what was typed and costs nothing."""
    penalties = Penalties()
    split, lone = penalties.split, penalties.split + penalties.lone_split
    assert 0.0 < split < lone
    edges = _penalties(lexicon, "xian")
    assert edges[(0, 4, "先")] == 0.0 and edges[(0, 2, "西")] == lone
    assert edges[(0, 4, "西安")] == lone
    edges = _penalties(lexicon, "xianzai")
    assert edges[(0, 2, "西")] == split and edges[(0, 4, "先")] == 0.0
    edges = _penalties(lexicon, "xi'an")
    assert edges[(0, 2, "西")] == 0.0 and edges[(0, 4, "西安")] == 0.0


def test_a_rare_reading_costs_more_than_a_common_word_is_worth(vocab):
    """是 also reads ti (rarely): typed ti, a word whose common reading is ti comes first even
    when the model likes 是 far more."""
    likes = table_scorer(("是", "题"), {"<s>": {"是": 0.99, "题": 0.01}})
    lexicon = build_lexicon(likes.vocab, base_of({}, "是题"))
    assert texts(run(likes, "ti", lexicon))[0] == "题"


def test_traditional_forms_are_not_offered_and_rare_characters_cost_more(tmp_path):
    """This is a simplified-Chinese input method: 服務 and 們 are not offered (a word the user
    lists or makes is, whatever its characters), and a rare character (镕) costs `rare`."""
    assert list(script_classes(["服务", "服務", "我們", "镕", "蕲春"])) == [
        COMMON, TRADITIONAL, TRADITIONAL, RARE, COMMON]
    vocab = Vocab(SPECIALS + ("服务", "服務"), (0, 0, 0, 5, 5))
    lexicon = build_lexicon(vocab, base_of({"朱镕基": 100.0, "鎔鑄": 100.0}))
    edges = _penalties(lexicon, "fuwu")
    assert (0, 4, "服务") in edges and (0, 4, "服務") not in edges
    assert _penalties(lexicon, "zhurongji")[(0, 9, "朱镕基")] == Penalties().rare
    assert (0, 8, "鎔鑄") not in _penalties(lexicon, "rongzhu")
    made = lexicon.with_words({"鎔鑄": "rong'zhu"})
    assert _penalties(made, "rongzhu")[(0, 7, "鎔鑄")] == 0.0
    words = tmp_path / "words.txt"
    words.write_text("服務 10\n", encoding="utf-8")
    listed = build_lexicon(vocab, base_of({}), [read_word_list(words)])
    assert (0, 4, "服務") in _penalties(listed, "fuwu")


@pytest.mark.parametrize("typed", ["lv", "lve", "lue", "nve", "nue"])
def test_u_umlaut_spellings(typed):
    vocab = Vocab(SPECIALS + ("绿", "略", "虐", "女"), (0, 0, 0, 5, 5, 5, 5))
    lexicon = build_lexicon(vocab, base_of({}))
    assert any(w in "绿略虐女" for _, _, w in _edges(lexicon, typed))
    assert segmentations("zhanlue")[0] == ("zhan", "lve") == segmentations("zhanlve")[0]
    assert segmentations("xve")[0] == ("xue",)


def test_fuzzy_pinyin_is_off_by_default_and_costs_a_penalty(lexicon):
    assert (0, 2, "是") not in _edges(lexicon, "si")
    assert (0, 2, "是") in _edges(lexicon, "si", {"s-sh"})
    assert (0, 3, "安") in _edges(lexicon, "ang", {"an-ang"})
    scorer = BigramScorer(lexicon_vocab := Vocab(SPECIALS + ("是", "四"), (0, 0, 0, 5, 5)))
    small = build_lexicon(lexicon_vocab, base_of({}))
    exact = next(c for c in run(scorer, "shi", small, k=5).phrases if c.text == "是")
    fuzzy = run(scorer, "si", small, fuzzy={"s-sh"}, k=5)
    shi = next(c for c in fuzzy.phrases if c.text == "是")
    assert shi.score == pytest.approx(exact.score - Penalties().fuzzy)
    with pytest.raises(PinyinError):
        DecoderSettings(fuzzy={"z-x"})


def test_letters_that_fit_no_syllable_are_kept(vocab, lexicon):
    found = run(BigramScorer(vocab), "iuv", lexicon, k=3)
    assert texts(found) == ["iuv"] and found.literal
    found = run(BigramScorer(vocab), "xianv", lexicon, k=3)
    assert all(t.endswith("v") for t in texts(found))
    assert found.phrases[0].letters == 5


# ---------------------------------------------------------------- search vs brute force
def _all_paths(lexicon, raw, scorer):
    """Every path through the lattice with its exact score."""
    letters, breaks, _ = normalize(raw)
    lattice = build_lattice(letters, breaks, lexicon)
    out = []

    def walk(s, state, lp, words, score):
        if s == len(letters):
            out.append(("".join(words), score))
            return
        for group in lattice[s]:
            for i, pen in zip(group.words.tolist(), group.penalty.tolist(), strict=True):
                word = letters[s:group.end] if group.literal else lexicon.words[i]
                step_id = UNK_ID if group.literal else int(lexicon.step_id[i])
                gain = 0.0 if group.literal else float(lp[step_id]) + lexicon.extra[i]
                nxt, nlp = scorer.step(state, step_id)
                walk(group.end, nxt, nlp, [*words, word], score + gain - pen)

    walk(0, *scorer.step(scorer.start(), 2), [], 0.0)
    return sorted(out, key=lambda t: -t[1])


@pytest.mark.parametrize("raw", ["xian", "jintianqi", "jttq", "xiantianqihenhao", "jinti",
                                 "xi'antian"])
@pytest.mark.parametrize("seed", [0, 1])
def test_search_finds_the_best_path_of_brute_force(vocab, lexicon, raw, seed):
    scorer = BigramScorer(vocab, seed)
    expected = _all_paths(lexicon, raw, scorer)
    found = run(scorer, raw, lexicon, k=3, beam=16, margin=math.inf)
    assert found.phrases[0].score == pytest.approx(expected[0][1])
    assert found.phrases[0].text == expected[0][0]
    small = run(scorer, raw, lexicon, k=1, beam=1)  # a narrow beam still returns a full path
    assert small.phrases and small.phrases[0].letters == len(raw)


@pytest.mark.parametrize("typed", ["xiantianqihenhao", "jintianqi", "jttqhh"])
def test_a_step_memo_answers_each_keystroke_as_a_fresh_decode_with_fewer_steps(vocab, lexicon,
                                                                              typed):
    """Typing letter by letter with one memo: every keystroke's decoding is the fresh one's
    (texts, scores, steps taken on the way aside), and the words before the new letters are
    not stepped again."""
    scorer = BigramScorer(vocab)
    memo = StepMemo(key="after <s>")
    fresh_steps = memo_steps = 0
    for end in range(1, len(typed) + 1):
        fresh = run(scorer, typed[:end], lexicon, k=5)
        kept = decode(scorer, typed[:end], (), DecoderSettings(k=5), lexicon, memo=memo)
        assert [(c.text, c.letters, c.score, c.log_prob) for c in kept.phrases] == \
            [(c.text, c.letters, c.score, c.log_prob) for c in fresh.phrases]
        assert [c.text for c in kept.first_words] == [c.text for c in fresh.first_words]
        fresh_steps += fresh.steps
        memo_steps += kept.steps
    assert memo_steps < fresh_steps


@pytest.mark.parametrize("typed", ["xiantianqihenhao", "jttqhh", "xianvvtian"])
def test_a_search_that_pruned_every_way_to_the_end_gives_the_unpruned_answer(vocab, lexicon,
                                                                             typed):
    """With no margin the first search prunes every way to the end and the decoder searches
    again, reusing the first one's steps: the answer is the unpruned search's."""
    scorer = BigramScorer(vocab)
    unpruned = run(scorer, typed, lexicon, k=5, margin=math.inf)
    again = run(scorer, typed, lexicon, k=5, margin=0.0)
    assert [(c.text, c.score) for c in again.phrases] == \
        [(c.text, c.score) for c in unpruned.phrases]


def test_a_full_step_memo_is_cleared_and_still_right(vocab, lexicon):
    scorer = BigramScorer(vocab)
    memo = StepMemo(key=None, limit=3)
    for end in range(1, 17):
        kept = decode(scorer, "xiantianqihenhao"[:end], (), DecoderSettings(), lexicon, memo=memo)
        assert len(memo.steps) <= 3
    assert texts(kept) == texts(run(scorer, "xiantianqihenhao", lexicon))


def test_context_changes_the_ranking(vocab, lexicon):
    scorer = BigramScorer(vocab)
    after = {w: texts(run(scorer, "xian", lexicon, [vocab.id(w)], k=1))[0] for w in WORDS}
    assert len(set(after.values())) > 1


def test_first_words_lead_with_the_best_phrase_and_consume_letters(vocab, lexicon):
    found = run(BigramScorer(vocab), "jintianhenhao", lexicon, k=5)
    assert found.first_words[0].text == found.phrases[0].words[0]
    assert found.phrases[0].letters == 13
    assert {c.text for c in found.first_words} >= {"今天", "今"}
    ranked = found.ranked(9)
    assert ranked[0] == found.phrases[0] and len({(c.text, c.letters) for c in ranked}) == \
        len(ranked)


def test_literal_penalty_is_applied(vocab, lexicon):
    found = run(BigramScorer(vocab), "v", lexicon, k=1)
    assert found.phrases[0].score == pytest.approx(-Penalties().literal)
    assert np.isfinite(found.phrases[0].log_prob)


def test_bad_options(vocab, lexicon):
    with pytest.raises(PinyinError):
        DecoderSettings(k=0)
    with pytest.raises(PinyinError):
        DecoderSettings(beam=1000)
    assert run(BigramScorer(vocab), "'", lexicon).phrases == []


# ---------------------------------------------------------------- words outside the vocabulary
class Fixed(Scorer[int]):
    """A fake scorer whose next-word distribution is one fixed table."""
    name = "fixed"

    def __init__(self, vocab: Vocab, probabilities: dict[str, float]) -> None:
        self.vocab = vocab
        table = torch.full((len(vocab),), 1e-6, dtype=torch.float64)
        for word, p in probabilities.items():
            table[vocab.id(word)] = p
        self.table = torch.log(table / table.sum())

    def start(self) -> int:
        return 0

    def step_batch(self, states, word_ids):
        return [(0, self.table) for _ in word_ids]


def test_a_syllable_typed_alone_offers_first_the_characters_text_starts_with():
    """金 stands alone more often than 今, but far more text starts with 今 (今天 今年): typed
    alone, jin offers 今 first, scored by its own probability plus theirs; a character's
    log_prob stays its own. Every character of the syllable is ranked, not only those the
    beam kept. A word the user makes joins the words its first character begins."""
    words = ("今", "金", "进", "今天", "今年", "金子", "天")
    small = Vocab(SPECIALS + words, (0, 0, 0) + (1,) * len(words))
    lexicon = build_lexicon(small, base_of({}, "今金进天年子鱼"))
    probabilities = {"今": 0.02, "金": 0.05, "进": 0.04, "今天": 0.3, "今年": 0.2, "金子": 0.01}
    scorer = Fixed(small, probabilities)
    found = run(scorer, "jin", lexicon, k=3, beam=1)
    assert texts(found) == ["今", "金", "进"]
    first = found.phrases[0]
    total = sum(probabilities.values()) + 1e-6 * (len(small) - len(probabilities))
    assert first.log_prob == pytest.approx(math.log(0.02 / total))
    assert first.score == pytest.approx(math.log((0.02 + 0.3 + 0.2) / total))
    assert found.phrases[1].score == pytest.approx(math.log((0.05 + 0.01) / total))
    assert found.first_words[0].text == "今"
    # typed in full, the phrase comes first, and the first words lead with its first word
    whole = run(scorer, "jintian", lexicon, k=3)
    assert texts(whole)[0] == "今天" and whole.first_words[0].text == "今天"
    # 金 begins 金子 and, once the user made it, 金鱼 too (a word outside the vocabulary)
    made = lexicon.with_words({"金鱼": "jin'yu"})
    assert run(scorer, "jin", made, k=3).phrases[1].score > found.phrases[1].score


OUTSIDE = {"循环": 50.0, "网络": 80.0, "神经网络": 20.0, "战略": 30.0, "略": 5.0}


@pytest.fixture(scope="module")
def open_lexicon_small(vocab):
    return build_lexicon(vocab, base_of(OUTSIDE, "".join(WORDS)))


def test_words_outside_the_vocabulary_step_as_unk_and_score_by_frequency(vocab,
                                                                        open_lexicon_small):
    lexicon = open_lexicon_small
    position = lexicon.position
    assert lexicon.step_id[position["今天"]] == vocab.id("今天") and lexicon.extra[
        position["今天"]] == 0.0
    assert lexicon.step_id[position["网络"]] == UNK_ID
    assert lexicon.extra[position["网络"]] > lexicon.extra[position["神经网络"]]
    scorer = BigramScorer(vocab)
    found = run(scorer, "xunhuanshenjingwangluo", lexicon, k=3)
    assert found.phrases[0].text == "循环神经网络" and not found.phrases[0].known
    unk = float(scorer.step(scorer.start(), 2)[1][UNK_ID])
    after_unk = scorer.table[UNK_ID]
    expected = (unk + lexicon.extra[position["循环"]]
                + float(after_unk[UNK_ID]) + lexicon.extra[position["神经网络"]])
    assert found.phrases[0].log_prob == pytest.approx(expected)


def test_open_vocabulary_probabilities_sum_to_one(vocab, open_lexicon_small):
    """p(w) = p(w | h) for a vocabulary word, p(<unk> | h)·p(w | <unk>) for the others:
    over the vocabulary and the lexicon together, one."""
    lexicon = open_lexicon_small
    probs = torch.softmax(torch.randn(len(vocab), dtype=torch.float64), 0).numpy()
    inside = probs[[i for i in range(len(vocab)) if i != UNK_ID]].sum()
    outside = probs[UNK_ID] * np.exp(lexicon.extra[lexicon.step_id == UNK_ID]).sum()
    assert inside + outside == pytest.approx(1.0)
    assert lexicon.oov_log_prob("网络") == lexicon.extra[lexicon.position["网络"]]
    spelled = lexicon.oov_log_prob("略略")  # listed by nobody: from its characters
    assert np.isfinite(spelled) and spelled < lexicon.oov_log_prob("略")
    assert lexicon.oov_log_prob("今天") == -math.inf  # a vocabulary word: not through <unk>


def test_the_training_texts_own_unk_words_share_p_unk_by_their_counts(vocab):
    """The words the training text had outside the vocabulary (`Vocab.outside`) are what <unk>
    stood for: seen ones come before more frequent dictionary words that were never seen
    there, a seen word no dictionary lists joins the lexicon (a traditional one is still not
    offered), and p(word | <unk>) still sums to one, also with words the user made."""
    seen = Vocab(vocab.words, vocab.counts, (("战略", 4), ("鲸落", 2), ("網絡", 3), ("12", 9)))
    plain = build_lexicon(vocab, base_of(OUTSIDE, "".join(WORDS)))
    lexicon = build_lexicon(seen, base_of(OUTSIDE, "".join(WORDS)))
    extra, position = lexicon.extra, lexicon.position
    assert plain.extra[plain.position["网络"]] > plain.extra[plain.position["战略"]]
    assert extra[position["战略"]] > extra[position["网络"]]  # seen beats a dictionary's count
    assert extra[position["网络"]] > extra[position["神经网络"]]  # the prior still ranks the rest
    assert lexicon.step_id[position["鲸落"]] == UNK_ID and np.isfinite(extra[position["鲸落"]])
    assert "12" not in position and "鲸落" not in plain.position
    assert lexicon.script[position["網絡"]] == TRADITIONAL
    assert texts(run(BigramScorer(vocab), "jingluo", lexicon, k=3))[0] == "鲸落"
    for table in (lexicon, lexicon.with_words({"新造": "xin'zao"})):
        oov = table.step_id == UNK_ID
        assert np.exp(table.extra[oov]).sum() == pytest.approx(1.0)
        assert table.extra[table.position["战略"]] > table.extra[table.position["网络"]]


def test_the_contexts_words_are_mixed_into_each_words_probability(vocab, lexicon,
                                                                  open_lexicon_small):
    """(1 − μ)·p(word | history) + μ·c(word)/N over the context's words the lexicon can type:
    a homophone the context used comes first, the mixture sums to one over the vocabulary and
    the lexicon, and μ = 0 (or no context) is the scorer alone."""
    from rnn_ime.ime.decoder import ContextWords
    from rnn_ime.ime.lattice import Edges

    scorer = BigramScorer(vocab)
    context = [vocab.id("金"), vocab.id("金"), vocab.id("好"), UNK_ID, vocab.id("很")]
    alone = run(scorer, "jin", lexicon, context, k=5, context_weight=0.0)
    mixed = run(scorer, "jin", lexicon, context, k=5, context_weight=0.5)
    p_lm = {c.text: math.exp(c.log_prob) for c in alone.phrases}
    by_text = {c.text: c.log_prob for c in mixed.phrases}
    assert by_text["金"] == pytest.approx(math.log(0.5 * p_lm["金"] + 0.5 * 2 / 4))
    assert by_text["今"] == pytest.approx(math.log(0.5 * p_lm["今"]))
    assert texts(mixed)[0] == "金"
    assert [(c.text, c.score) for c in run(scorer, "jin", lexicon, (), k=5).phrases] == \
        [(c.text, c.score) for c in run(scorer, "jin", lexicon, (), k=5, context_weight=0.0
                                         ).phrases]
    state, log_probs = scorer.read(context)
    lexicon = open_lexicon_small  # words outside the vocabulary too: p(<unk>) spread over them
    everything = Edges(0, np.arange(len(lexicon.words)), np.zeros(len(lexicon.words)))
    recent = ContextWords(context, lexicon, len(vocab), 0.3)
    word_lp = scorer.lexicon_log_probs(state, log_probs.numpy(), lexicon, everything.words)
    untypable = ~lexicon.typable(len(vocab))
    untypable[UNK_ID] = False
    total = np.exp(recent.mix(word_lp, lexicon, everything.words)).sum() \
        + 0.7 * np.exp(log_probs.numpy()[untypable]).sum()
    assert total == pytest.approx(1.0)
    with pytest.raises(PinyinError):
        DecoderSettings(context_weight=1.0)


# ---------------------------------------------------------------- punctuation in a composition
def test_a_mark_commits_the_first_phrase_in_full_width():
    assert split_mark("nihao,") == ("nihao", ",") and split_mark("nihao") == ("nihao", "")
    assert split_mark("xi'an\\") == ("xi'an", "\\")
    assert [commit_text("你好", m) for m in ",.?!;:\\"] == [f"你好{w}" for w in "，。？！；：、"]
    phrase = Candidate(("你好",), 5, -1.0, -1.0)
    first = Candidate(("你",), 2, -0.5, -0.5)
    found = Decoding([phrase], [first, phrase], letters="nihao")
    assert commit_of(found, "nihao.").as_dict() == {"text": "你好。", "letters": 6}
    assert commit_of(found, "nihao") is None
    assert commit_of(Decoding([], [], letters="xx"), "x'x?").text == "x'x？"  # letters as typed


def test_a_mark_typed_after_the_letters_ranks_the_phrases_with_it():
    """你号码 edges out 你好吗 alone, but a question mark after them is far likelier after 吗:
    with the mark, each whole phrase scores log p(？ | phrase) more (exactly), and a mark the
    vocabulary lacks changes nothing."""
    scorer = table_scorer(("你", "号码", "你好", "吗", "？"), {
        "<s>": {"你": 0.5, "你好": 0.4}, "你": {"号码": 0.5}, "你好": {"吗": 0.6},
        "号码": {"？": 0.01, "你": 0.9}, "吗": {"？": 0.9}})
    lexicon = build_lexicon(scorer.vocab, base_of({}, "你好号码吗"))
    plain = decode(scorer, "nihaoma", (), DecoderSettings(), lexicon)
    assert texts(plain)[:2] == ["你号码", "你好吗"]
    marked = decode(scorer, "nihaoma", (), DecoderSettings(), lexicon, followed_by="？")
    assert texts(marked)[:2] == ["你好吗", "你号码"]
    scores = {c.text: c.score for c in plain.phrases}
    mark_after_ma = math.log(0.9 / (0.9 + 1e-6 * (len(scorer.vocab) - 1)))
    assert marked.phrases[0].score == pytest.approx(scores["你好吗"] + mark_after_ma)
    assert marked.phrases[0].log_prob == next(c.log_prob for c in plain.phrases
                                              if c.text == "你好吗")  # the phrase's own
    unknown = decode(scorer, "nihaoma", (), DecoderSettings(), lexicon, followed_by="！")
    assert [(c.text, c.score) for c in unknown.phrases] == \
        [(c.text, c.score) for c in plain.phrases]
    assert mark_after("nihaoma?") == "？" and mark_after("nihaoma") == ""


def test_the_phrase_shown_first_stays_unless_the_mark_beats_it_clearly():
    """The user saw 你号码 first: with the mark, 你好吗 is ahead by 0.37 nats only (less than
    MARK_MARGIN), so typing ？ commits what was shown."""
    from rnn_ime.ime.decoder import MARK_MARGIN

    scorer = table_scorer(("你", "号码", "你好", "吗", "？"), {
        "<s>": {"你": 0.5, "你好": 0.4}, "你": {"号码": 0.5}, "你好": {"吗": 0.6},
        "号码": {"？": 0.6, "你": 0.4}, "吗": {"？": 0.9}})
    lexicon = build_lexicon(scorer.vocab, base_of({}, "你好号码吗"))
    marked = decode(scorer, "nihaoma", (), DecoderSettings(), lexicon, followed_by="？")
    assert texts(marked)[:2] == ["你号码", "你好吗"]
    behind = marked.phrases[1].score - marked.phrases[0].score
    assert 0 < behind <= MARK_MARGIN


def test_a_mark_after_one_syllable_ranks_its_characters_too():
    """`ma?`: 马 stands alone best and begins more words (马上), yet 吗 ends questions; with the
    mark the characters are ranked by it alone, none by the words it may begin."""
    scorer = table_scorer(("马", "马上", "吗", "妈", "？"), {
        "<s>": {"马": 0.3, "马上": 0.3, "妈": 0.2, "吗": 0.01}, "马": {"？": 0.001, "上": 0.5},
        "妈": {"？": 0.01, "马": 0.5}, "吗": {"？": 0.9}})
    lexicon = build_lexicon(scorer.vocab, base_of({}, "马吗妈上"))
    assert texts(decode(scorer, "ma", (), DecoderSettings(k=3), lexicon))[0] == "马"
    marked = decode(scorer, "ma", (), DecoderSettings(k=3), lexicon, followed_by="？")
    assert texts(marked) == ["吗", "妈", "马"]


def test_the_mark_pattern_allows_exactly_the_marks():
    import re

    marks = re.compile(f"{mark_class()}")
    assert all(marks.fullmatch(m) for m in FULL_WIDTH)
    assert not any(marks.fullmatch(c) for c in "a'，。-]^ ")


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


def cli_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("rnn-ime: error: ") and err.count("\n") == 1, err
    return err


def test_cli_pinyin_prints_the_ranked_list_and_a_marks_commit(small_model, capsys):
    main(["pinyin", "--model", str(small_model), "--json", "-k", "4", "nihao,"])
    answer = json.loads(capsys.readouterr().out)
    assert answer["letters"] == "nihao" and len(answer["candidates"]) <= 4
    assert answer["commit"] == {"text": answer["phrases"][0]["text"] + "，", "letters": 6}
    main(["pinyin", "--model", str(small_model), "-k", "4", "nihao,"])
    ranked, commit = capsys.readouterr().out.splitlines()
    assert ranked == "  ".join(f"{i}.{c['text']}" for i, c in enumerate(answer["candidates"], 1))
    assert commit == "commit: " + answer["commit"]["text"]
    main(["pinyin", "--model", str(small_model), "--json", "nihao"])
    assert "commit" not in json.loads(capsys.readouterr().out)


def test_cli_fuzzy_rules(small_model, capsys):
    main(["pinyin", "--model", str(small_model), "zongguo"])
    assert "中国" not in capsys.readouterr().out
    main(["pinyin", "--model", str(small_model), "--fuzzy", "an-ang, z-zh", "--fuzzy", "n-l",
          "zongguo"])
    assert capsys.readouterr().out.startswith("1.中国")
    err = cli_error(["pinyin", "--model", str(small_model), "--fuzzy", "z-zh,zh-j", "nihao"],
                    capsys)
    assert "'zh-j'" in err and ", ".join(FUZZY_RULES) in err
    assert "'x'" in cli_error(["serve", "--model", str(small_model), "--fuzzy", "x"], capsys)


def test_cli_word_lists(small_model, tmp_path, capsys):
    words = tmp_path / "words.txt"
    words.write_text("# my words\n鲸落 100000\nabc\n鲸落 -1\n\n", encoding="utf-8")
    main(["pinyin", "--model", str(small_model), "jingluo"])
    assert "鲸落" not in capsys.readouterr().out
    main(["pinyin", "--model", str(small_model), "--lexicon", str(words), "jingluo"])
    out, err = capsys.readouterr()
    assert out.startswith("1.鲸落")
    assert err.startswith("note: skipped 2 lines") and err.count("\n") == 1
    bad = tmp_path / "bad.txt"
    bad.write_bytes("鲸落".encode("gbk"))
    missing = str(tmp_path / "missing.txt")
    model = ["--model", str(small_model)]
    assert "missing.txt: no such word list" in cli_error(
        ["pinyin", *model, "--lexicon", missing, "nihao"], capsys)
    assert cli_error(["pinyin", *model, "--lexicon", str(bad), "nihao"], capsys).endswith(
        "bad.txt: not UTF-8 text (invalid byte 0xbe at offset 0); it reads as GB18030/GBK: "
        "convert it with iconv -f GB18030 -t UTF-8\n")  # as `prepare` says it
    assert "missing.txt" in cli_error(["serve", *model, "--lexicon", missing], capsys)


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
    assert body["candidates"][0] == body["phrases"][0]


@pytest.mark.parametrize("body, status, field", [
    ({"letters": ""}, 422, "letters"),
    ({"letters": "'"}, 422, "letters"),  # apostrophes alone: no letters to decode
    ({"letters": "''"}, 422, "letters"),
    ({"letters": "'',"}, 422, "letters"),
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


@pytest.mark.parametrize("mark, wide", list(FULL_WIDTH.items()))
def test_api_a_trailing_mark_commits_the_first_candidate(client, mark, wide):
    body = client.post("/api/pinyin", json={"letters": "nihao" + mark}).json()
    assert body["letters"] == "nihao"
    assert body["commit"] == {"text": body["candidates"][0]["text"] + wide, "letters": 6}
    assert body["commit"]["text"] == "你好" + wide
    assert "commit" not in client.post("/api/pinyin", json={"letters": "nihao"}).json()


@pytest.mark.parametrize("letters", ["nihao,,", "ni,hao", ",", "nihao，", "nihao-", "a" * 65,
                                     "a" * 65 + ","])
def test_api_letters_may_end_in_one_mark_only(client, letters):
    response = client.post("/api/pinyin", json={"letters": letters})
    assert response.status_code == 422 and response.json()["error"].startswith("letters: ")


def test_api_the_longest_composition_may_end_in_a_mark(client):
    assert client.post("/api/pinyin", json={"letters": "a" * 64 + "."}).status_code == 200


def test_api_fuzzy_rules(client):
    def texts(**body):
        answer = client.post("/api/pinyin", json={"letters": "zongguo", **body})
        assert answer.status_code == 200, answer.text
        return [c["text"] for c in answer.json()["candidates"]]

    assert "中国" not in texts() and "中国" not in texts(fuzzy=[])
    assert texts(fuzzy=["z-zh"])[0] == "中国"
    for bad in (["zh-z"], "z-zh", [1], list(FUZZY_RULES) * 2):
        response = client.post("/api/pinyin", json={"letters": "zongguo", "fuzzy": bad})
        assert response.status_code == 422 and response.json()["error"].startswith("fuzzy")


def test_api_the_servers_fuzzy_default_and_options(small_model):
    from fastapi.testclient import TestClient

    from rnn_ime.predict import Predictor
    from rnn_ime.server import create_app

    client = TestClient(create_app(Predictor.from_dir(small_model), fuzzy={"an-ang", "z-zh"}))
    options = client.get("/api/pinyin/options").json()
    assert options == {"fuzzy_rules": list(FUZZY_RULES), "fuzzy_default": ["z-zh", "an-ang"],
                       "punctuation": FULL_WIDTH}
    first = client.post("/api/pinyin", json={"letters": "zongguo"}).json()["candidates"][0]
    assert first["text"] == "中国"  # the server's default
    answer = client.post("/api/pinyin", json={"letters": "zongguo", "fuzzy": []}).json()
    assert "中国" not in [c["text"] for c in answer["candidates"]]  # the request's own
    with pytest.raises(PinyinError, match="'x'"):
        create_app(Predictor.from_dir(small_model), fuzzy={"x"})


def test_api_decodes_with_the_servers_lexicon(small_model, tmp_path):
    from fastapi.testclient import TestClient

    from rnn_ime.ime import open_lexicon
    from rnn_ime.predict import Predictor
    from rnn_ime.server import create_app

    words = tmp_path / "words.txt"
    words.write_text("鲸落 100000\n", encoding="utf-8")
    predictor = Predictor.from_dir(small_model)
    client = TestClient(create_app(predictor, lexicon=open_lexicon(predictor.vocab, [words])))
    body = client.post("/api/pinyin", json={"letters": "jingluo"}).json()
    assert body["candidates"][0]["text"] == "鲸落"


# ---------------------------------------------------------------- a model of the user's own text
OWN_CORPUS = Path(__file__).parent / "data" / "own_corpus.txt"


@pytest.fixture(scope="module")
def own_model(tmp_path_factory):
    """A model trained on 30 lines of dialogue written for this test: its vocabulary has none
    of the words typed below."""
    from conftest import tiny_train_config
    from rnn_ime.prepare import PrepareConfig, prepare
    from rnn_ime.train import train

    data = tmp_path_factory.mktemp("own") / "data"
    prepare(PrepareConfig(corpus=[str(OWN_CORPUS)], out=str(data), min_count=1,
                          progress=False), log=lambda *_: None)
    out = data.parent / "model"
    train(tiny_train_config(data, out, max_steps=60), log=lambda *_: None)
    return out


@pytest.mark.parametrize("typed, expected", [
    ("jintian", "今天"), ("xunhuanshenjingwangluo", "循环神经网络"), ("zhanlve", "战略"),
    ("zhanlue", "战略"), ("nihao", "你好"), ("woxiangheyibeire'cha", "我想喝一杯热茶"),
])
def test_a_small_model_types_words_it_never_saw(own_model, typed, expected):
    from rnn_ime.predict import Predictor

    predictor = Predictor.from_dir(own_model)
    assert "今天" not in predictor.vocab and "战略" not in predictor.vocab
    found = decode(predictor.scorer, typed, (), DecoderSettings(k=5))
    assert found.phrases[0].text == expected
    suggestions = [s.word for s in predictor.suggest("你好", 20)]
    assert "<unk>" not in suggestions


def test_the_ranked_list_shows_each_text_once():
    """巴方 read from all of `bafen` and from `baf` alone: one entry, the better-ranked one."""
    whole = Candidate(("巴方",), 5, -9.0, -12.0)
    start = Candidate(("巴方",), 3, -9.0, -12.0)
    other = Candidate(("八分",), 5, -5.0, -5.0)
    ranked = Decoding([other, whole], [start, Candidate(("八",), 2, -3.0, -3.0)]).ranked()
    assert [c.text for c in ranked] == ["八分", "巴方", "八"]
    assert ranked[1].letters == 5
