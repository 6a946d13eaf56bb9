"""The user's own copy of the recurrent model, trained a little on each commit.

The counts of model.py learn which words the user types and after which; they cannot teach the
model what its hidden state should make of the user's subject. Here the model itself learns:
one Adam step (learning rate ADAPT_LR) on each committed text, read after the words before it,
as dynamic evaluation does (Krause et al. 2018). Only the recurrent layer and the output layer
move; the word embeddings stay the base model's, shared, so a profile's copy is about 7 MB for
the default model, not 39. The base model never changes: every profile adapts its own copy.

A commit is trained on once the next commit comes (or the profile closes, or `flush`), so that
Backspace right after a commit (`undo`) drops it before it taught anything. Training runs in a
thread of its own, once the typist pauses (PAUSE_S without a commit or a ranking), so that
neither committing nor the next keystrokes wait for it. The weights are
saved into the user's file (the `adaptation` table, keyed by the base model they adapt) once
SAVE_EVERY steps are unsaved and the typist pauses longer (SAVE_PAUSE_S: a save writes
megabytes, which slows the commit after it), at the latest after SAVE_AT_MOST steps, and when
the profile closes; a file made for another model keeps its row and this model starts afresh.

Only a recurrent model run by torch adapts (alone or in the mixture with the n-gram); an n-gram
or an ONNX model has no adaptation, and the counts do all the learning.
"""

from __future__ import annotations

import atexit
import copy
import functools
import hashlib
import io
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..context_cache import ContextCache
from ..errors import first_line
from ..mixture import MixtureScorer
from ..scoring import NeuralScorer, Scorer
from ..vocab import BOS_ID
from .store import UserStore, UserStoreError

# Chosen on the validation texts (bench/texts/valid, learning on; docs/adaptation.md): Adam at
# 1e-3, one step per commit, everything but the embeddings, no dropout
ADAPT_LR = 1e-3
CLIP = 1.0  # gradient norm, as in training
CONTEXT_WORDS = 20  # words before a commit read for its context (not trained on)
SAVE_EVERY = 20  # unsaved steps after which the weights are saved into the user file …
SAVE_PAUSE_S = 2.0  # … once the typist pauses this long (a save's megabytes of writing slow
SAVE_AT_MOST = 200  # the next commit), or at once past this many; and when the profile closes
MAX_WAITING = 512  # commits waiting for the thread; past it the oldest are dropped, counted
CONTEXT_ENTRIES = 128  # states the adapted model's context cache keeps (V floats each: 16 MB)
PAUSE_S = 0.3  # seconds without a commit or a ranking before a step is taken
FORMAT = 1  # of the saved blob


_RUNNING: weakref.WeakSet[ModelAdaptation] = weakref.WeakSet()


@atexit.register
def _stop_threads() -> None:
    """Stop the training threads of profiles nobody closed before the interpreter goes (a
    thread still inside torch then aborts the process); what they had not trained is lost, the
    counts are in the file."""
    for adaptation in list(_RUNNING):
        adaptation.stop()


def adaptable(base: Scorer) -> NeuralScorer | None:
    """The torch recurrent model inside `base` that can adapt, or None."""
    neural = base.first if isinstance(base, MixtureScorer) else base
    if not isinstance(neural, NeuralScorer):
        return None
    config = neural.model.config
    if config.objective != "lm" or config.bidirectional:
        return None
    return neural


def trained_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The weights a profile's copy trains: every parameter but the embeddings (a tied output
    layer's weights are the embeddings, and stay too), each once."""
    return {name: param for name, param in model.named_parameters()
            if not name.startswith("embedding.")}


def model_key(neural: NeuralScorer) -> str:
    """Which base model a saved adaptation belongs to: its vocabulary and trained weights."""
    digest = hashlib.sha256(neural.vocab.sha256.encode())
    for name, tensor in trained_parameters(neural.model).items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _copy_sharing_embedding(model: nn.Module) -> nn.Module:
    """A deep copy of `model` whose embedding is the original's tensor (frozen, not copied)."""
    shared = nn.Parameter(model.embedding.weight.detach(), requires_grad=False)
    clone = copy.deepcopy(model, memo={id(model.embedding.weight): shared})
    return clone.eval()


_SAVE = object()  # the thread's work: a save (else a _Lesson)


@dataclass(frozen=True)
class _Lesson:
    ids: tuple[int, ...]  # <s>, the context's last words, the commit's words
    first: int  # the index in ids of the commit's first word


class ModelAdaptation:
    """One profile's adapted copy of the base model, its scorer, and the thread that trains
    it."""

    def __init__(self, base: Scorer, neural: NeuralScorer, store: UserStore | None = None
                 ) -> None:
        self.base_neural = neural
        self.model = _copy_sharing_embedding(neural.model)
        adapted = NeuralScorer(self.model, neural.vocab, name=neural.name)
        self.scorer: Scorer = MixtureScorer(adapted, base.ngram, base.weights) \
            if isinstance(base, MixtureScorer) else adapted
        self.params = list(trained_parameters(self.model).values())
        self.store = store
        self.optimizer: torch.optim.Optimizer | None = None
        self.steps = 0  # steps taken (and loaded) since the base model
        self.version = 0  # changes with the weights
        self.dropped = 0  # commits dropped for a full queue
        self.failed = 0  # steps that failed (skipped)
        self._saved_steps = 0
        self._tried = -1  # the steps when a save was last tried
        self._newest: _Lesson | None = None  # the last commit, held back for undo
        self._ready: deque[_Lesson] = deque()
        self._busy = False
        self._stopping = False
        self._urgent = False  # settle(): train without waiting for a pause
        self._last_use = 0.0  # monotonic time of the last commit or ranking
        self._threads = torch.get_num_threads()
        self._thread: threading.Thread | None = None
        self._wake = threading.Condition()
        self._weights = threading.Lock()  # taken to change the weights
        self._contexts: tuple[int, ContextCache] | None = None
        self._last_read: tuple[int, ...] | None = None  # the context `read` was last asked for
        self.load_problem: str | None = None  # why a saved adaptation was not used
        self.save_problem: str | None = None  # why the last save failed
        self._forgets = store.forgets() if store is not None else 0  # see `forgotten`
        if store is not None:
            self._load()

    @classmethod
    def of(cls, base: Scorer, store: UserStore | None = None) -> ModelAdaptation | None:
        neural = adaptable(base)
        return cls(base, neural, store) if neural is not None else None

    # ------------------------------------------------------------ scoring
    @property
    def active(self) -> bool:
        """Whether the adapted model differs from the base."""
        return self.steps > 0

    @functools.cached_property
    def key(self) -> str:
        """The base model's key in the user's file (worked out when first needed)."""
        return model_key(self.base_neural)

    def touch(self) -> None:
        """The typist is busy (a ranking): steps wait for a pause."""
        self._last_use = time.monotonic()

    def read(self, ids: Sequence[int]) -> tuple[Any, torch.Tensor]:
        """The adapted scorer's (state, log_probs) after <s> and `ids`, through a cache of
        states that is emptied whenever the weights change."""
        version = self.version
        self._last_read = tuple(ids)
        found = self._contexts
        if found is None or found[0] != version:
            found = self._contexts = (version, ContextCache(self.scorer, CONTEXT_ENTRIES))
        return found[1].read(list(ids))

    def _warm(self) -> None:
        """After a step (in the thread, during the pause): read the last context again with
        the new weights, so that the next keystroke finds it read."""
        ids, version = self._last_read, self.version
        if ids is None:
            return
        cache = ContextCache(self.scorer, CONTEXT_ENTRIES)
        cache.read(list(ids))
        if self.version == version:
            self._contexts = (version, cache)

    # ------------------------------------------------------------ learning
    def learn(self, before: Sequence[int], words: Sequence[int]) -> None:
        """Queue a commit's word ids, read after the ids `before` it; the commit before it is
        handed to the training thread."""
        if not words:
            return
        context = list(before)[-CONTEXT_WORDS:]
        lesson = _Lesson((BOS_ID, *context, *words), 1 + len(context))
        self.touch()
        with self._wake:
            if self._newest is not None:
                idle = not self._ready  # else the thread is up, waiting for a pause
                self._ready.append(self._newest)
                while len(self._ready) > MAX_WAITING:
                    self._ready.popleft()
                    self.dropped += 1
                self._start()
                if idle:
                    self._wake.notify_all()
            self._newest = lesson

    def undo(self) -> bool:
        """Drop the last commit not yet trained on (the newest, held back for this; again: the
        one before, if it still waits for a pause); whether there was one."""
        with self._wake:
            if self._newest is not None:
                self._newest = None
                return True
            if self._ready:
                self._ready.pop()
                return True
            return False

    def settle(self, flush: bool = False) -> None:
        """Wait until every commit handed to the thread is trained on (`flush`: the last one
        too, as when the profile closes)."""
        with self._wake:
            if flush and self._newest is not None:
                self._ready.append(self._newest)
                self._newest = None
                self._start()
            self._urgent = True
            self._wake.notify_all()
            while (self._ready or self._busy) and self._thread is not None \
                    and self._thread.is_alive():
                self._wake.wait(1.0)
            self._urgent = False

    def reset(self) -> None:
        """Back to the base model: every step forgotten, waiting commits dropped (`forget`
        cannot tell which part of the weights a word taught)."""
        with self._wake:
            self._ready.clear()
            self._newest = None
            while self._busy:
                self._wake.wait()
            with self._weights, torch.no_grad():
                base = trained_parameters(self.base_neural.model)
                for name, param in trained_parameters(self.model).items():
                    param.copy_(base[name])
                self.optimizer = None
                self.steps = self._saved_steps = 0
                self._tried = -1
                self.version += 1
        if self.store is not None:  # a save that ran while forget wrote is taken back too
            self._forgets = self.store.forgets()
            self.store.clear_adaptation()

    def close(self) -> None:
        """Train on what waits, save, and stop the thread; a save the file refuses is kept in
        `save_problem` (the counts are safe in the file already)."""
        self.settle(flush=True)
        self.stop()
        self._save_or_note()

    def _save_or_note(self) -> None:
        """save(), a refusal kept in `save_problem` (the next save, or the one at close,
        writes it)."""
        self._tried = self.steps
        try:
            self.save()
        except UserStoreError as error:
            self.save_problem = f"the model adaptation was not saved ({first_line(error)})"

    def _start(self) -> None:
        """Start the training thread if it is not running (under self._wake)."""
        if self._thread is None and not self._stopping and self._ready:
            self._thread = threading.Thread(target=self._run, name="rnn-ime-adapt",
                                            daemon=True)
            self._thread.start()
            _RUNNING.add(self)

    def stop(self) -> None:
        """Stop the thread after the step it is taking; what waits is not trained."""
        with self._wake:
            self._stopping = True
            self._ready.clear()
            self._wake.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        # OpenMP's setting is per thread: the one the program chose (a new thread would start
        # with every core's; setting it here is the same value, so no other thread changes)
        torch.set_num_threads(self._threads)
        while True:
            with self._wake:
                work = self._wait_for_work()
                if work is None:
                    return
                self._busy = True
            try:
                if work is _SAVE:
                    self._save_or_note()
                else:
                    self._step(work)
                    if not self._ready:  # the last of the pause's steps
                        self._warm()
                    if self._unsaved() >= SAVE_AT_MOST:
                        self._save_or_note()
            except Exception:  # noqa: BLE001 — a step that fails is skipped, the typing goes on
                self.failed += 1
            finally:
                with self._wake:
                    self._busy = False
                    self._wake.notify_all()

    def _unsaved(self) -> int:
        """Steps since the weights were saved, or since a save was last tried (one the file
        refused is tried again only after as many more)."""
        return self.steps - max(self._saved_steps, self._tried)

    def _wait_for_work(self) -> _Lesson | object | None:
        """(under self._wake) The next commit to train on, once the typist pauses; _SAVE, once
        SAVE_EVERY steps are unsaved and the typist pauses longer; None when stopping."""
        while not self._stopping:
            now = time.monotonic()
            if self._ready:
                if self._urgent or now >= self._last_use + PAUSE_S:
                    return self._ready.popleft()
                self._wake.wait(self._last_use + PAUSE_S - now)
            elif self._unsaved() >= SAVE_EVERY:
                if now >= self._last_use + SAVE_PAUSE_S:
                    return _SAVE
                self._wake.wait(self._last_use + SAVE_PAUSE_S - now)
            else:
                self._wake.wait()
        return None

    def _step(self, lesson: _Lesson) -> None:
        ids = torch.tensor([lesson.ids[:-1]])
        targets = torch.tensor(lesson.ids[lesson.first:])
        with torch.enable_grad(), self._weights:
            if self.optimizer is None:
                self.optimizer = torch.optim.Adam(self.params, lr=ADAPT_LR)
            features, _ = self.model(ids)
            loss = self.model.loss(features[0, lesson.first - 1:], targets)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.params, CLIP)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.steps += 1
            self.version += 1

    # ------------------------------------------------------------ the user's file
    def _weights_blob(self) -> bytes:
        with self._weights:
            state = {name: param.detach().clone()
                     for name, param in trained_parameters(self.model).items()}
            steps = self.steps
        buffer = io.BytesIO()
        torch.save({"format": FORMAT, "steps": steps, "weights": state}, buffer)
        return buffer.getvalue()

    def save(self) -> None:
        """Write the adapted weights into the user's file (nothing when they did not change,
        or when a word was forgotten since they started: `forgotten` resets them)."""
        if self.store is None or self.steps == self._saved_steps:
            return
        steps = self.steps
        if steps == 0:
            self.store.clear_adaptation()
        elif not self.store.save_adaptation(self.key, steps, self._weights_blob(),
                                            self._forgets):
            return
        self._saved_steps = steps

    def forgotten(self) -> bool:
        """Whether a word was forgotten in the user's file since these weights started (by
        this process or another): then they start again from the base model."""
        if self.store is None or self.store.forgets() == self._forgets:
            return False
        self.reset()
        return True

    def _load(self) -> None:
        """The saved adaptation of this base model, when the file has one that fits."""
        assert self.store is not None
        try:
            if not self.store.adaptation_steps():  # none saved: no key to work out
                return
            found = self.store.adaptation(self.key)
        except UserStoreError as error:  # a damaged row: the counts are still good
            self.load_problem = f"the saved model adaptation cannot be used " \
                                f"({first_line(error)}); starting afresh"
            return
        if found is None:
            return
        steps, blob = found
        try:
            saved = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
            weights = saved["weights"]
            if saved.get("format") != FORMAT:
                raise ValueError(f"format {saved.get('format')!r}")
            own = trained_parameters(self.model)
            if set(weights) != set(own) or any(weights[n].shape != p.shape
                                               for n, p in own.items()):
                raise ValueError("its weights are not this model's")
            with torch.no_grad():
                for name, param in own.items():
                    param.copy_(weights[name])
        except Exception as error:  # noqa: BLE001 — whatever the blob holds, start afresh
            self.load_problem = f"the saved model adaptation cannot be used " \
                                f"({first_line(error)}); starting afresh"
            return
        self.steps = self._saved_steps = steps
        self.version += 1
