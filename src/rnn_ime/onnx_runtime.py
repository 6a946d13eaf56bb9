"""OnnxScorer: the Scorer interface (scoring.py) answered by ONNX Runtime on an exported step.

`rnn-ime export` writes the graph (onnx_export.py). Here a session runs it on the CPU with
one intra-op thread by default: for one word at a time, latency is best without a thread pool
to wake. Evaluation, top-k, the Predictor and the TypingSession work on it unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import modeldir
from .data import Split, target_positions, windows
from .errors import ModelError
from .fsutil import sha256_file
from .onnx_format import META, default_path, new_session
from .scoring import Chunk, Scorer, next_window, padded_window
from .vocab import BOS_ID, PAD_ID, Vocab


@dataclass
class OnnxState:
    """OnnxScorer's state: the step graph's state arrays, h (L, 1, H) and for the LSTM c
    (L, 1, H), as numpy float32; or, for a window graph, the window of ids (no arrays)."""
    arrays: tuple[np.ndarray, ...] = ()
    window: tuple[int, ...] = ()


class OnnxScorer(Scorer[OnnxState]):
    """Scorer over an exported graph: "step" (lm, explicit state) or "window" (window ids).

    `log_probs` and `split_log_probs` run the graph on many rows at once; `read` is the
    default (one step per word)."""

    def __init__(self, path: str | Path, vocab: Vocab, name: str = "onnx", threads: int = 1,
                 rows: int = 256) -> None:
        self.path = Path(path)
        self.vocab = vocab
        self.name = name
        self.rows = rows  # batch rows per run in log_probs / split_log_probs
        self.session = new_session(self.path, threads)
        self.metadata = {k[len(META):]: v for k, v in
                         self.session.get_modelmeta().custom_metadata_map.items()
                         if k.startswith(META)}
        inputs = {i.name: i for i in self.session.get_inputs()}
        self.kind = "window" if "window_ids" in inputs else "step"
        if self.kind == "window":
            self.seq_len = int(inputs["window_ids"].shape[1])
            self.state_names: list[str] = []
        else:
            self.state_names = [n for n in ("h", "c") if n in inputs]
            self.state_shape = tuple(inputs["h"].shape)  # (L, "batch", H)
        if self.metadata.get("vocab_sha256", vocab.sha256) != vocab.sha256:
            raise ModelError(f"{self.path}: exported with a different vocabulary; run "
                             "`rnn-ime export` again")
        self._outputs = ["log_probs", *(f"{n}_out" for n in self.state_names)]

    @classmethod
    def from_dir(cls, model_dir: str | Path, int8: bool = False, path: str | Path | None = None,
                 threads: int = 1) -> tuple[OnnxScorer, dict[str, Any]]:
        """The scorer for a model dir's exported graph, and the model dir's config.json."""
        model_dir = Path(model_dir)
        config = modeldir.load_config(model_dir)
        vocab = modeldir.load_vocab(model_dir, config)
        path = Path(path) if path else default_path(model_dir, int8)
        if not path.is_file():
            flags = " --int8" if int8 else ""
            raise ModelError(f"{path}: no ONNX export; run `rnn-ime export --model {model_dir} "
                             f"--format onnx{flags}` first")
        scorer = cls(path, vocab, name="onnx-int8" if int8 else "onnx", threads=threads)
        scorer.check_weights(model_dir)
        return scorer, config

    def check_weights(self, model_dir: Path) -> None:
        """Refuse a graph exported from other weights than the model dir's (retrained since)."""
        wanted = self.metadata.get("weights_sha256")
        weights = modeldir.weights_file(model_dir)
        if wanted is not None and sha256_file(weights) != wanted:
            raise ModelError(f"{self.path}: exported from other weights than {weights} (the "
                             f"model was trained since); run `rnn-ime export --model "
                             f"{model_dir} --format onnx` again")

    # ------------------------------------------------------------------ runs
    def _run_step(self, word_ids: np.ndarray, state: Sequence[np.ndarray]
                  ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        feeds = {"word_ids": word_ids, **dict(zip(self.state_names, state, strict=True))}
        log_probs, *new_state = self.session.run(self._outputs, feeds)
        return log_probs, tuple(new_state)

    def _run_window(self, window_ids: np.ndarray) -> np.ndarray:
        return self.session.run(self._outputs, {"window_ids": window_ids})[0]

    def _zero_state(self, batch: int) -> tuple[np.ndarray, ...]:
        layers, _, hidden = self.state_shape
        return tuple(np.zeros((layers, batch, hidden), np.float32) for _ in self.state_names)

    # ------------------------------------------------------------------ the Scorer interface
    def start(self) -> OnnxState:
        if self.kind == "window":
            return OnnxState()
        return OnnxState(arrays=self._zero_state(1))

    def step_batch(self, states: Sequence[OnnxState], word_ids: Sequence[int]
                   ) -> list[tuple[OnnxState, torch.Tensor]]:
        """Every state's step in one run of the graph."""
        if not states:
            return []
        # a <s> starts a passage from the zero state, as in training
        states = [self.start() if word_id == BOS_ID else state
                  for state, word_id in zip(states, word_ids, strict=True)]
        if self.kind == "window":
            windows = [next_window(state.window, word_id, self.seq_len)
                       for state, word_id in zip(states, word_ids, strict=True)]
            ids = np.asarray([padded for _, padded in windows], dtype=np.int64)
            log_probs = torch.from_numpy(self._run_window(ids))
            return [(OnnxState(window=kept), log_probs[i]) for i, (kept, _) in enumerate(windows)]
        stacked = tuple(np.concatenate([state.arrays[part] for state in states], axis=1)
                        if len(states) > 1 else states[0].arrays[part]
                        for part in range(len(self.state_names)))
        log_probs, hidden = self._run_step(np.asarray(word_ids, dtype=np.int64), stacked)
        scores = torch.from_numpy(log_probs)
        return [(OnnxState(arrays=tuple(part[:, i:i + 1] for part in hidden)), scores[i])
                for i in range(len(states))]

    def log_probs(self, contexts: Sequence[Sequence[int]]) -> torch.Tensor:
        if self.kind == "window":
            ids = np.asarray([padded_window((BOS_ID, *c), self.seq_len) for c in contexts],
                             dtype=np.int64)
            return torch.cat([torch.from_numpy(self._run_window(ids[i:i + self.rows]))
                              for i in range(0, len(ids), self.rows)])
        out = []
        for context in contexts:  # each context from a zero state, one step per word
            state: tuple[np.ndarray, ...] = self._zero_state(1)
            for word_id in (BOS_ID, *context):
                log_probs, state = self._run_step(np.asarray([word_id], np.int64), state)
            out.append(torch.from_numpy(log_probs))
        return torch.cat(out)

    def split_log_probs(self, split: Split) -> Iterator[Chunk]:
        tokens = np.asarray(split.tokens).astype(np.int64)
        if self.kind == "window":
            positions = target_positions(split)
            for begin in range(0, len(positions), self.rows):
                chosen = positions[begin:begin + self.rows]
                ids = windows(split, chosen, self.seq_len).astype(np.int64)
                yield (torch.from_numpy(self._run_window(ids)), torch.from_numpy(tokens[chosen]),
                       chosen)
            return
        # lm: passages of similar length step side by side, one batch row each, from <s>.
        lengths = split.ends - split.starts  # <s> + words
        order = np.argsort(lengths, kind="stable")
        for begin in range(0, len(order), self.rows):
            rows = order[begin:begin + self.rows]
            yield from self._step_passages(split, tokens, rows, lengths[rows])

    def _step_passages(self, split: Split, tokens: np.ndarray, rows: np.ndarray,
                       lengths: np.ndarray) -> Iterator[Chunk]:
        starts = split.starts[rows]
        state = self._zero_state(len(rows))
        for t in range(int(lengths.max()) - 1):
            # a finished passage keeps stepping on <pad>; its rows are not yielded
            ids = np.where(t < lengths, tokens[np.minimum(starts + t, len(tokens) - 1)], PAD_ID)
            log_probs, state = self._run_step(ids.astype(np.int64), state)
            live = t < lengths - 1  # position t predicts token t+1 when that is a word
            offsets = starts[live] + t + 1
            yield (torch.from_numpy(log_probs[live]), torch.from_numpy(tokens[offsets]),
                   offsets)
