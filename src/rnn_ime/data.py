"""A prepared data dir, and batches for the two training objectives.

Token arrays are memory-mapped; batches are made by NumPy index arithmetic, with no Python
object per sample.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from .errors import DataDirError
from .fsutil import read_json_object
from .vocab import BOS_ID, PAD_ID, Vocab

SPLITS = ("train", "valid", "test")  # the splits of a data dir (prepare.py writes them)


@dataclass(frozen=True)
class Split:
    tokens: np.ndarray  # (n_tokens,) int32, <s> before each passage and one at the end
    passages: np.ndarray  # (n_passages, 2) int64: [offset of <s>, source index]

    @property
    def starts(self) -> np.ndarray:
        return self.passages[:, 0]

    @property
    def ends(self) -> np.ndarray:
        """Offset one past each passage's last word (the next passage's <s>)."""
        return np.append(self.starts[1:], len(self.tokens) - 1)

    def passage_tokens(self, i: int) -> np.ndarray:
        return np.asarray(self.tokens[self.starts[i]:self.ends[i]])


class DataDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not (self.path / "manifest.json").is_file():
            raise DataDirError(f"{self.path}: not a prepared data dir (no manifest.json); "
                               "run `rnn-ime prepare --out DIR` first")
        self.manifest = read_json_object(self.path / "manifest.json", DataDirError)
        _check_manifest(self.manifest, self.path / "manifest.json")

    @cached_property
    def vocab(self) -> Vocab:
        vocab = Vocab.load(self.path / "vocab.txt")
        if vocab.sha256 != self.manifest["vocab"]["sha256"]:
            raise DataDirError(f"{self.path}: vocab.txt does not match manifest.json")
        return vocab

    @property
    def source_names(self) -> list[str]:
        return [s["name"] for s in sorted(self.manifest["sources"], key=lambda s: s["index"])]

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise DataDirError(f"unknown split {name!r}")
        try:
            tokens = np.load(self.path / f"{name}.npy", mmap_mode="r")
            passages = np.load(self.path / f"{name}_passages.npy")
        except (OSError, ValueError) as exc:
            raise DataDirError(f"{self.path}: cannot read the {name} split ({exc})") from None
        if tokens.dtype != np.int32 or tokens.ndim != 1:
            raise DataDirError(f"{self.path}/{name}.npy: expected a 1-D int32 array")
        if len(tokens) and int(tokens.max()) >= len(self.vocab):
            raise DataDirError(f"{self.path}/{name}.npy: ids beyond the vocabulary")
        return Split(tokens, passages)


def _check_manifest(manifest: dict, where: Path) -> None:
    """The parts of manifest.json that training and evaluation read, with their JSON types."""
    def wrong(what: str) -> DataDirError:
        return DataDirError(f"{where}: {what}; prepare the data dir again")

    vocab = manifest.get("vocab")
    if not isinstance(vocab, dict) or not isinstance(vocab.get("sha256"), str):
        raise wrong('no "vocab" object with a "sha256" string')
    sources = manifest.get("sources")
    if not isinstance(sources, list) or not all(
            isinstance(s, dict) and isinstance(s.get("name"), str)
            and isinstance(s.get("index"), int) for s in sources):
        raise wrong('"sources" is not a list of objects with a "name" and an "index"')
    for key in ("tokenizer", "split"):
        if not isinstance(manifest.get(key), dict):
            raise wrong(f'no "{key}" object')
    if not isinstance(manifest.get("files", {}), dict):
        raise wrong('"files" is not an object')


def every_kth_passage(split: Split, max_words: int | None) -> Split:
    """A smaller split of evenly spaced passages (every source represented) with about
    `max_words` words; the split itself when it is small enough or `max_words` is None."""
    n_words = len(split.tokens) - len(split.starts) - 1
    if max_words is None or n_words <= max_words:
        return split
    step = -(-n_words // max_words)
    chosen = np.arange(0, len(split.starts), step)
    pieces = [np.asarray(split.passage_tokens(i)) for i in chosen]
    starts = np.cumsum([0] + [len(p) for p in pieces[:-1]])
    tokens = np.concatenate([*pieces, np.asarray([BOS_ID], dtype=np.int32)])
    return Split(tokens, np.stack([starts, split.passages[chosen, 1]], axis=1))


# ---------------------------------------------------------------- lm objective (TBPTT)

def passage_order_stream(split: Split, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The split's tokens with passages in a seeded per-epoch order (a final <s> appended)."""
    starts, ends = split.starts, split.ends
    order = (np.random.default_rng([seed, epoch]).permutation(len(starts)) if shuffle
             else np.arange(len(starts)))
    pieces = [split.tokens[starts[i]:ends[i]] for i in order]
    pieces.append(np.asarray([BOS_ID], dtype=np.int32))
    return np.concatenate(pieces)


def lm_streams(stream: np.ndarray, batch_size: int, rank: int = 0, world_size: int = 1
               ) -> np.ndarray:
    """Cut a token stream into `world_size × batch_size` parallel rows; return this rank's.

        stream  ─▶  (world_size · batch_size, row_len)  ─▶  rows [rank·B, (rank+1)·B)
    """
    rows = batch_size * world_size
    row_len = len(stream) // rows
    if row_len < 2:
        raise DataDirError(f"the training split ({len(stream)} tokens) is too small for "
                           f"{rows} parallel rows; lower --batch-size")
    grid = np.asarray(stream[: rows * row_len]).reshape(rows, row_len)
    return grid[rank * batch_size:(rank + 1) * batch_size]


def lm_batches(rows: np.ndarray, bptt: int, start_step: int = 0
               ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(input, target) pairs of shape (batch, ≤bptt); target is input shifted by one."""
    row_len = rows.shape[1]
    for step, begin in enumerate(range(0, row_len - 1, bptt)):
        if step < start_step:
            continue
        end = min(begin + bptt, row_len - 1)
        chunk = torch.from_numpy(rows[:, begin:end + 1].astype(np.int64))
        yield chunk[:, :-1], chunk[:, 1:]


def lm_steps_per_epoch(rows_len: int, bptt: int) -> int:
    return len(range(0, rows_len - 1, bptt))


# ---------------------------------------------------------------- window objective

def target_positions(split: Split) -> np.ndarray:
    """Offsets of every word (every token that is not a <s> marker)."""
    tokens = np.asarray(split.tokens)
    return np.flatnonzero(tokens != BOS_ID)


def passage_start_of(split: Split, positions: np.ndarray) -> np.ndarray:
    """The offset of the <s> that opens the passage containing each position."""
    which = np.searchsorted(split.starts, positions, side="right") - 1
    return split.starts[which]


def windows(split: Split, positions: np.ndarray, seq_len: int) -> np.ndarray:
    """The `seq_len` tokens before each position, inside its passage, left-padded with <pad>.

    A passage's first word gets [<pad> … <pad> <s>]: exactly what the predictor feeds
    for an empty prefix.
    """
    offsets = positions[:, None] + np.arange(-seq_len, 0)[None, :]
    inside = offsets >= passage_start_of(split, positions)[:, None]
    gathered = np.asarray(split.tokens)[np.clip(offsets, 0, None)]
    return np.where(inside, gathered, PAD_ID).astype(np.int64)


def window_batches(split: Split, positions: np.ndarray, seq_len: int, batch_size: int,
                   start_step: int = 0, rank: int = 0, world_size: int = 1,
                   ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of (window, target); with several ranks, each takes its slice of every global
    batch of `batch_size × world_size` positions (an incomplete last one is dropped)."""
    tokens = np.asarray(split.tokens)
    global_batch = batch_size * world_size
    for step, begin in enumerate(range(0, len(positions), global_batch)):
        if step < start_step:
            continue
        chosen = positions[begin:begin + global_batch]
        if world_size > 1:
            if len(chosen) < global_batch:
                return
            chosen = chosen[rank * batch_size:(rank + 1) * batch_size]
        yield (torch.from_numpy(windows(split, chosen, seq_len)),
               torch.from_numpy(tokens[chosen].astype(np.int64)))


def window_steps_per_epoch(n_positions: int, batch_size: int, world_size: int = 1) -> int:
    if world_size > 1:
        return n_positions // (batch_size * world_size)
    return math.ceil(n_positions / batch_size)


def shuffled_positions(split: Split, seed: int, epoch: int) -> np.ndarray:
    positions = target_positions(split)
    return positions[np.random.default_rng([seed, epoch]).permutation(len(positions))]
