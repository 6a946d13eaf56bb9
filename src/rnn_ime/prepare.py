"""`rnn-ime prepare`: corpus files → data dir (manifest, vocabulary, token arrays per split).

Layout of a split's token array (int32), one start marker <s> before every passage:

    <s> w w w <s> w w <s> w w w w ... <s>
    └passage─┘ └─────┘ └───────┘      (a final <s> closes the last passage)

`{split}_passages.npy` holds one row per passage: [offset of its <s>, source index].
"""

from __future__ import annotations

import io
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import __version__
from .corpus import Document, ReadReport, expand_specs, read_corpus
from .data import SPLITS, Split
from .errors import ConfigError, CorpusError
from .fsutil import sha256_file, write_bytes, write_json
from .options import check_out_dir, check_seed
from .text import clean_text, get_tokenizer
from .vocab import BOS_ID, OUTSIDE_FILE, UNK_ID, Vocab, build_vocab
from .wording import counted

DEFAULT_CORPUS = ("embedded",)
FORMAT_VERSION = 1


@dataclass
class PrepareConfig:
    corpus: list[str] = field(default_factory=lambda: list(DEFAULT_CORPUS))
    out: str = "data/default"
    format: str = "auto"
    min_count: int = 3
    max_vocab: int | None = None
    seed: int = 0
    valid_ratio: float = 0.1
    test_ratio: float = 0.1
    strict: bool = False
    progress: bool = True

    def check(self) -> None:
        """Every option in its range, or a one-line error, before any corpus is read."""
        if not self.corpus:
            raise CorpusError("no corpus given")
        if self.min_count < 1:
            raise CorpusError("--min-count must be at least 1")
        if self.max_vocab is not None and self.max_vocab < 4:
            raise CorpusError("--max-vocab must be at least 4 (3 special tokens + 1 word)")
        check_seed(self.seed)
        for name in ("valid_ratio", "test_ratio"):
            if not 0.0 <= getattr(self, name) < 1.0:  # nan fails too
                raise ConfigError(f"{name} must be in [0, 1)")
        if self.valid_ratio + self.test_ratio >= 1.0:
            raise ConfigError("valid_ratio + test_ratio must be below 1: nothing left to train on")
        check_out_dir(self.out)


def clean_documents(documents: list[Document]) -> list[Document]:
    """Clean every passage; drop passages (and documents) left empty."""
    cleaned = []
    for doc in documents:
        passages = tuple(p for p in (clean_text(p) for p in doc.passages) if p)
        if passages:
            cleaned.append(Document(doc.source, passages))
    return cleaned


def near_duplicate_key(document: Document) -> str:
    """The document's text with punctuation, symbols, spaces and digits removed: two reviews
    that differ only there ("好！！" and "好。", "房间1很好" and "房间2很好") are one review."""
    return "".join(char for passage in document.passages for char in passage
                   if unicodedata.category(char)[0] not in "PSZNC")


@dataclass
class Duplicates:
    exact: Counter[str] = field(default_factory=Counter)  # per source
    near: Counter[str] = field(default_factory=Counter)  # per source, beyond the exact ones


def deduplicate(documents: list[Document]) -> tuple[list[Document], Duplicates]:
    """Keep the first copy of each document, compared after cleaning across all sources:
    exactly, then once more with punctuation, spaces and digits ignored (near-duplicates)."""
    seen_exact: set[str] = set()
    seen_near: set[str] = set()
    unique, dropped = [], Duplicates()
    for doc in documents:
        exact = "\n".join(doc.passages)
        if exact in seen_exact:
            dropped.exact[doc.source] += 1
            continue
        seen_exact.add(exact)
        near = near_duplicate_key(doc)
        if near and near in seen_near:
            dropped.near[doc.source] += 1
            continue
        seen_near.add(near)
        unique.append(doc)
    return unique, dropped


def split_documents(n: int, seed: int, valid_ratio: float, test_ratio: float,
                    ) -> dict[str, np.ndarray]:
    """Indices of the documents of each split, by a seeded permutation (sorted in each split)."""
    order = np.random.default_rng(seed).permutation(n)
    n_valid = int(round(n * valid_ratio))
    n_test = int(round(n * test_ratio))
    if n >= 3:
        n_valid, n_test = max(1, n_valid), max(1, n_test)
    n_train = n - n_valid - n_test
    return {
        "train": np.sort(order[:n_train]),
        "valid": np.sort(order[n_train:n_train + n_valid]),
        "test": np.sort(order[n_train + n_valid:]),
    }


def fill_empty_splits(split_members: dict[str, list[int]], seed: int, log=print) -> None:
    """A source with fewer than 3 documents goes wholly to train; when every source is that
    small, valid or test would be empty: each empty one takes a seeded document from train
    (the caller has made sure there are at least 3 documents in all)."""
    rng = np.random.default_rng([seed, 1])
    for split in ("valid", "test"):
        train = split_members["train"]
        if split_members[split] or len(train) < 2:
            continue
        split_members[split].append(train.pop(int(rng.integers(len(train)))))
        log(f"note: no source has 3 documents for its own {split} share; {split} took one "
            "training document")


def encode_split(token_docs: list[list[list[str]]], source_ids: list[int], vocab: Vocab,
                 ) -> tuple[np.ndarray, np.ndarray]:
    ids: list[int] = []
    passages: list[tuple[int, int]] = []
    for doc, source_id in zip(token_docs, source_ids, strict=True):
        for words in doc:
            passages.append((len(ids), source_id))
            ids.append(BOS_ID)
            ids.extend(vocab.encode(words))
    ids.append(BOS_ID)
    return (np.asarray(ids, dtype=np.int32),
            np.asarray(passages, dtype=np.int64).reshape(-1, 2))


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


@dataclass
class CorpusSplit:
    """The deterministic front of the pipeline: the corpus read, cleaned, deduplicated and split.

    `documents` holds the distinct documents in corpus order; `members[split]` the indices of a
    split's documents, in the order prepare encodes them (source by source, then any document
    `fill_empty_splits` moved); `by_source[name]` the indices of a source's documents."""
    documents: list[Document]
    reports: list[ReadReport]
    dropped: Duplicates
    members: dict[str, list[int]]
    by_source: dict[str, list[int]]

    @property
    def source_names(self) -> list[str]:
        return [r.source for r in self.reports]

    def split(self, name: str) -> list[Document]:
        return [self.documents[i] for i in self.members[name]]


def split_corpus(config: PrepareConfig, log=print) -> CorpusSplit:
    """Read the sources → clean → deduplicate → split each source by the seed. No segmentation:
    this is what prepare does before words exist, so a benchmark can recover the raw text of
    a data dir's test documents (the token arrays lose the text of <unk> words)."""
    if not config.corpus:
        raise CorpusError("no corpus given")
    specs = expand_specs(config.corpus)
    reports: list[ReadReport] = []
    documents: list[Document] = []
    for spec in specs:
        docs, report = read_corpus(spec, config.format, config.strict)
        reports.append(report)
        documents.extend(clean_documents(docs))
        skipped = f", skipped {counted(report.skipped, 'bad line')}" if report.skipped else ""
        log(f"read {report.source} ({report.format}): {counted(report.documents, 'document')}"
            f"{skipped}")
        for example in report.skip_examples:
            log(f"  skipped {example}")
    source_names = [r.source for r in reports]
    if len(set(source_names)) != len(source_names):
        raise CorpusError("the same corpus was given twice")
    unique, dropped = deduplicate(documents)
    if len(unique) < 3:
        raise CorpusError(f"the corpus has {len(unique)} distinct non-empty documents; "
                          "need at least 3 (train, valid, test)")
    log(f"{len(unique)} distinct documents after removing {sum(dropped.exact.values())} "
        f"duplicates and {sum(dropped.near.values())} near-duplicates (same text but for "
        "punctuation, spaces and digits)")

    # Split each source separately, so every source has its share of valid and test documents.
    by_source: dict[str, list[int]] = {name: [] for name in source_names}
    for i, doc in enumerate(unique):
        by_source[doc.source].append(i)
    split_members: dict[str, list[int]] = {s: [] for s in SPLITS}
    for name in source_names:
        members = np.asarray(by_source[name])
        if len(members) == 0:
            continue
        parts = split_documents(len(members), config.seed, config.valid_ratio, config.test_ratio)
        for split in SPLITS:
            split_members[split].extend(members[parts[split]].tolist())
    fill_empty_splits(split_members, config.seed, log)
    if not split_members["train"]:
        raise CorpusError("no training documents after the split")
    return CorpusSplit(unique, reports, dropped, split_members, by_source)


def documents_by_split(config: PrepareConfig, log=print) -> dict[str, list[Document]]:
    """The raw (cleaned) documents of each split, exactly as `prepare(config)` splits them."""
    corpus = split_corpus(config, log)
    return {name: corpus.split(name) for name in SPLITS}


def prepare(config: PrepareConfig, log=print) -> dict:
    """Run the whole pipeline and write the data dir; returns the manifest."""
    config.check()
    corpus = split_corpus(config, log)
    unique, reports, dropped = corpus.documents, corpus.reports, corpus.dropped
    split_members, by_source = corpus.members, corpus.by_source
    source_index = {name: i for i, name in enumerate(corpus.source_names)}

    tokenizer = get_tokenizer()
    all_passages = sum(len(d.passages) for d in unique)
    tokens: list[list[list[str]]] = []
    with tqdm(total=all_passages, desc="segmenting", unit="passage", disable=not config.progress,
              leave=False) as bar:
        for doc in unique:
            tokens.append([tokenizer.tokenize(p) for p in doc.passages])
            bar.update(len(doc.passages))

    train_docs = split_members["train"]
    vocab = build_vocab((words for i in train_docs for words in tokens[i]),
                        config.min_count, config.max_vocab)
    if len(vocab) <= 3:
        raise CorpusError("the vocabulary is empty: no training word reaches --min-count")

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    split_stats = {}
    for split in SPLITS:
        members = split_members[split]
        ids, passages = encode_split([tokens[i] for i in members],
                                     [source_index[unique[i].source] for i in members], vocab)
        words = ids[ids != BOS_ID]
        write_bytes(out / f"{split}.npy", _npy_bytes(ids))
        write_bytes(out / f"{split}_passages.npy", _npy_bytes(passages))
        split_stats[split] = {
            "documents": len(members),
            "passages": int(len(passages)),
            "words": int(len(words)),
            "unknown_words": int((words == UNK_ID).sum()),
        }
    vocab.save(out / "vocab.txt")

    sources = []
    for report in reports:
        sid = source_index[report.source]
        docs = [unique[i] for i in by_source[report.source]]
        sources.append({
            "name": report.source,
            "format": report.format,
            "sha256": report.sha256,
            "documents_read": report.documents,
            "lines_skipped": report.skipped,
            "duplicates_dropped": dropped.exact[report.source],
            "near_duplicates_dropped": dropped.near[report.source],
            "documents": len(docs),
            "passages": sum(len(d.passages) for d in docs),
            "characters": sum(len(p) for d in docs for p in d.passages),
            "tokens": sum(len(w) for i in by_source[report.source] for w in tokens[i]),
            "index": sid,
        })
    manifest = {
        "format_version": FORMAT_VERSION,
        "rnn_ime_version": __version__,
        "sources": sources,
        "tokenizer": tokenizer.info.as_dict(),
        "split": {"seed": config.seed, "by": "document (an article for PKU news), per source",
                  "ratios": [1 - config.valid_ratio - config.test_ratio,
                             config.valid_ratio, config.test_ratio]},
        "vocab": {"size": len(vocab), "min_count": config.min_count,
                  "max_size": config.max_vocab, "sha256": vocab.sha256,
                  "outside_words": len(vocab.outside)},
        "splits": split_stats,
        "files": {name: sha256_file(out / name) for name in sorted(
            ["vocab.txt"] + ([OUTSIDE_FILE] if vocab.outside else [])
            + [f"{s}.npy" for s in SPLITS] + [f"{s}_passages.npy" for s in SPLITS])},
    }
    write_json(out / "manifest.json", manifest)
    return manifest


def encode_corpus(specs: list[str], vocab: Vocab, fmt: str = "auto", strict: bool = False,
                  log=print) -> tuple[Split, list[str]]:
    """Any corpus segmented with the tokenizer and encoded with `vocab`, as one split (every
    document, no deduplication against training: that is the caller's business)."""
    tokenizer = get_tokenizer()
    token_docs: list[list[list[str]]] = []
    source_ids: list[int] = []
    names: list[str] = []
    for index, spec in enumerate(expand_specs(specs)):
        docs, report = read_corpus(spec, fmt, strict)
        if report.skipped:
            log(f"{report.source}: skipped {counted(report.skipped, 'bad line')}")
        names.append(report.source)
        for doc in deduplicate(clean_documents(docs))[0]:
            token_docs.append([tokenizer.tokenize(p) for p in doc.passages])
            source_ids.append(index)
    if not any(words for doc in token_docs for words in doc):
        raise CorpusError("the corpus to evaluate on has no words")
    ids, passages = encode_split(token_docs, source_ids, vocab)
    return Split(ids, passages), names
