"""`rnn-ime train`: Adam + cross-entropy, clipping, LR on plateau, early stopping, checkpoints.

A checkpoint (`train_state.pt`, written atomically) holds everything a run needs to go on
exactly where it stopped: weights, optimizer and scheduler state, the position inside the
epoch, the carried recurrent state, the RNG states (CPU, and each rank's CUDA device) and the
options that decide the run's batches (batch size, bptt, seed, processes, ...). Resuming
therefore gives the same weights as a run that was never interrupted; resuming with other such
options is refused, and a new --lr is applied (and logged).

Ctrl-C is taken between steps: a SIGINT handler only notes it during training, so the
checkpoint saved on the way out holds exactly the steps its counters say. A second Ctrl-C quits
at once, without saving (the last periodic checkpoint stays).

`python -m rnn_ime.train …` (what torchrun runs) is `rnn-ime train …`: see __main__.py, a front
end like the CLI; nothing here imports one.
"""

from __future__ import annotations

import gc
import math
import random
import signal
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from .. import distributed
from ..data import (
    DataDir,
    every_kth_passage,
    lm_batches,
    lm_steps_per_epoch,
    lm_streams,
    passage_order_stream,
    shuffled_positions,
    window_batches,
    window_steps_per_epoch,
)
from ..errors import ConfigError, ModelError, first_line
from ..fsutil import read_json_object, write_json, write_with
from ..limits import MAX_BATCH_SIZE, MAX_BPTT, MAX_LR
from ..metrics import evaluate
from ..model import ModelConfig, NextWordModel, State, count_parameters, detach_state
from ..modeldir import save_config, save_weights, torch_load_state
from ..options import (
    check_fraction,
    check_int_range,
    check_non_negative,
    check_out_dir,
    check_positive,
    check_seed,
)
from ..scoring import NeuralScorer
from ..vocab import BOS_ID

if TYPE_CHECKING:  # imported where a run starts: `rnn-ime --help` need not load tensorboard
    from torch.utils.tensorboard import SummaryWriter

STATE_FILE = "train_state.pt"
STATE_KEYS = ("model", "optimizer", "scheduler", "progress", "hidden_by_rank", "torch_rng",
              "model_config", "vocab_sha256")
# TrainConfig options that decide which batches a run sees and what a step does: a resumed run
# must keep them (the model options are compared separately, as `model_config`).
RUN_OPTIONS = ("batch_size", "bptt", "seed", "clip", "lr_factor", "valid_words")


@dataclass
class TrainConfig:
    data: str = "data/default"
    out: str = "models/default"
    objective: str = "lm"
    cell: str = "gru"  # the best cell of bench/quality.py at 120 s and at the default 480 s
    nonlinearity: str = "tanh"
    layers: int = 1
    hidden: int = 256
    embed: int = 256
    dropout: float = 0.3
    bidirectional: bool = False
    tie_weights: bool = False
    softmax: str = "auto"
    seq_len: int = 5
    bptt: int = 32
    batch_size: int = 64
    lr: float = 2e-3
    epochs: int = 20
    max_steps: int | None = None
    time_budget: float | None = None
    clip: float = 1.0
    seed: int = 0
    resume: bool = False
    patience: int = 3
    lr_factor: float = 0.5
    eval_every: int = 0
    eval_every_seconds: float = 0.0
    valid_words: int | None = 40_000  # None or 0: all of the validation split
    checkpoint_every: int = 200
    device: str = "auto"
    plain_adam: bool = False
    progress: bool = True
    log_every: int = 20
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """Every training option in its range, or a one-line ConfigError; the model's own
        options are checked by ModelConfig.resolved()."""
        for name in ("epochs", "patience", "checkpoint_every", "log_every"):
            check_int_range(name, getattr(self, name), 1)
        check_int_range("bptt", self.bptt, 1, MAX_BPTT)
        check_int_range("batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        check_int_range("max_steps", self.max_steps, 1)
        check_int_range("eval_every", self.eval_every, 0)
        if self.valid_words is not None and self.valid_words < 0:
            raise ConfigError(f"--valid-words must be 0 (all of the validation split) or more "
                              f"(got {self.valid_words:,})")
        check_positive("lr", self.lr, MAX_LR)
        check_positive("clip", self.clip)
        check_positive("time_budget", self.time_budget)
        check_non_negative("eval_every_seconds", self.eval_every_seconds)
        check_fraction("lr_factor", self.lr_factor)
        check_seed(self.seed)
        check_out_dir(self.out)

    def model_config(self, vocab_size: int) -> ModelConfig:
        names = {f.name for f in fields(ModelConfig)}
        return ModelConfig(vocab_size=vocab_size,
                           **{k: v for k, v in asdict(self).items() if k in names})


@dataclass
class Progress:
    """Where training stands; saved in every checkpoint."""
    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    train_seconds: float = 0.0  # wall time of the training steps, waiting for batches included
    data_seconds: float = 0.0  # of which waiting for batches
    target_words: int = 0
    best_valid_loss: float = math.inf
    bad_evals: int = 0
    evals: list[dict] = field(default_factory=list)
    stopped: str = ""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """CUDA when present (one GPU per local rank), else the CPU; `--device` overrides."""
    if name == "auto":
        name = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available here")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}") from None


def make_optimizer(model: torch.nn.Module, lr: float, plain: bool = False
                   ) -> torch.optim.Optimizer:
    """Adam; the fused kernel where this torch build has one for the device (≈30% faster)."""
    if plain:
        return torch.optim.Adam(model.parameters(), lr=lr)
    try:
        return torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(model.parameters(), lr=lr)


class LossOfBatch(nn.Module):
    """The training forward pass as one module, so DistributedDataParallel sees all of it:
    (ids (B, T), targets, state) → (mean loss, new state)."""

    def __init__(self, model: NextWordModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, targets: torch.Tensor, state: State = None
                ) -> tuple[torch.Tensor, State]:
        features, state = self.model(ids, state)
        return self.model.loss(features, targets), state


def _quiet(*_args) -> None:
    pass


class Trainer:
    def __init__(self, config: TrainConfig, log=print) -> None:
        config.check()  # before any data is read
        self.config = config
        self.group = distributed.from_environment()
        self.log = log if self.group.is_main else _quiet
        self.data = DataDir(config.data)
        self.vocab = self.data.vocab
        self.out = Path(config.out)
        self.device = pick_device(config.device, self.group.local_rank)
        distributed.initialise(self.group, self.device)
        seed_everything(config.seed)
        self.model_config = config.model_config(len(self.vocab)).resolved()
        self.model = NextWordModel(self.model_config).to(self.device)
        self.loss_of_batch: nn.Module = LossOfBatch(self.model)
        if self.group.active:
            # a batch may leave an adaptive-softmax tail cluster without any target
            self.loss_of_batch = DistributedDataParallel(
                self.loss_of_batch, find_unused_parameters=self.model.adaptive is not None)
        self.optimizer = make_optimizer(self.model, config.lr, config.plain_adam)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="min", factor=config.lr_factor, patience=0)
        self.progress = Progress()
        self.hidden = None
        self.train_split = self.data.split("train")
        self.valid_split = every_kth_passage(self.data.split("valid"), config.valid_words or None)
        self.has_validation = bool((np.asarray(self.valid_split.tokens) != BOS_ID).any())
        if not self.has_validation:
            self.log("note: the validation split is empty: training without validation, "
                     "early stopping or LR on plateau (best.safetensors is never written)")
        self.sigint = SigintDeferral()
        if config.resume:
            self._restore()
        elif (self.out / STATE_FILE).exists():
            raise ConfigError(f"{self.out} already holds a training run; pass --resume to go on "
                              "with it, or choose another --out")

    # ------------------------------------------------------------------ checkpoints
    def _config_record(self) -> dict[str, Any]:
        return {
            "train": {k: v for k, v in asdict(self.config).items()
                      if k not in ("resume", "progress")},
            "tokenizer": self.data.manifest["tokenizer"],
            "vocab_sha256": self.vocab.sha256,
            "data_manifest": {"sources": [s["name"] for s in self.data.manifest["sources"]],
                              "split": self.data.manifest["split"]},
            "source_names": self.data.source_names,
        }

    def _restore(self) -> None:
        path = self.out / STATE_FILE
        if not path.is_file():
            raise ModelError(f"{self.out}: nothing to resume (no {STATE_FILE})")
        for stale in self.out.glob(".*.tmp"):  # left by a write that a kill cut short
            stale.unlink()
        state = torch_load_state(path)
        missing = [key for key in STATE_KEYS if key not in state]
        if missing:
            raise ModelError(f"{path}: not a training state of this program (no "
                             f"{', '.join(missing)})")
        if state["vocab_sha256"] != self.vocab.sha256:
            raise ModelError(f"{self.out}: the data dir's vocabulary differs from the one this "
                             "run was trained with")
        _refuse_changes("model option", state["model_config"], vars(self.model_config),
                        self.out)
        if len(state["hidden_by_rank"]) != self.group.world_size:
            raise ConfigError(f"{self.out}: --resume with {self.group.world_size} process(es), "
                              f"but the run was started with {len(state['hidden_by_rank'])}")
        before = state.get("run_options")
        if before is None:  # written before the options were recorded: check what shows
            carried = state["hidden_by_rank"][self.group.rank]
            before = {"batch_size": carried[0].shape[1]} if carried else {}
        _refuse_changes("option", before, self._run_options(), self.out)
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.progress = Progress(**{**state["progress"], "stopped": ""})
            self.hidden = _unpack_state(state["hidden_by_rank"][self.group.rank], self.device)
            restore_rng_states(state, self.device, self.group.rank)
        except (RuntimeError, ValueError, TypeError, KeyError, IndexError) as exc:
            raise ModelError(f"{path}: the training state does not fit this run "
                             f"({first_line(exc)})") from None
        self._apply_lr(state.get("lr"))
        self.log(f"resumed at epoch {self.progress.epoch + 1}, step {self.progress.global_step}")

    def _run_options(self) -> dict[str, Any]:
        options = {name: getattr(self.config, name) for name in RUN_OPTIONS}
        if self.model_config.objective != "lm":
            del options["bptt"]  # the window objective has no bptt
        options["train_split_sha256"] = self.data.manifest.get("files", {}).get("train.npy")
        return options

    def _apply_lr(self, started_with: float | None) -> None:
        """A --lr other than the one the run was started (or last resumed) with replaces the
        optimizer's learning rate, plateau reductions included; the same --lr keeps them."""
        if started_with is None or started_with == self.config.lr:
            return
        current = self.optimizer.param_groups[0]["lr"]
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr
        self.log(f"--lr {self.config.lr:g} applied: the checkpoint's run had --lr "
                 f"{started_with:g} (learning rate {current:g} when it stopped)")

    def save_checkpoint(self) -> None:
        """Every rank calls this (the carried states are gathered); rank 0 writes."""
        hidden = _pack_state(self.hidden)
        if self.group.active:
            hidden = (distributed.gather_tensors(hidden, self.group) if hidden
                      else [[] for _ in range(self.group.world_size)])
        else:
            hidden = [hidden]
        rng = rng_states(self.device, self.group)
        if not self.group.is_main:
            return
        state = {
            "model": {k: v.cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "progress": asdict(self.progress),
            "hidden_by_rank": [[h.cpu() for h in rank_state] for rank_state in hidden],
            **rng,
            "model_config": vars(self.model_config),
            "vocab_sha256": self.vocab.sha256,
            "run_options": self._run_options(),
            "lr": self.config.lr,
        }
        write_with(self.out / STATE_FILE, lambda tmp: torch.save(state, tmp))
        save_weights(self.model, self.out / "last.safetensors")

    # ------------------------------------------------------------------ batches
    def epoch_batches(self, epoch: int, start_step: int):
        c = self.config
        if self.model_config.objective == "lm":
            stream = passage_order_stream(self.train_split, c.seed, epoch)
            rows = lm_streams(stream, c.batch_size, *self.rank_world())
            return lm_steps_per_epoch(rows.shape[1], c.bptt), lm_batches(rows, c.bptt, start_step)
        positions = shuffled_positions(self.train_split, c.seed, epoch)
        rank, world = self.rank_world()
        steps = window_steps_per_epoch(len(positions), c.batch_size, world)
        return steps, window_batches(self.train_split, positions, c.seq_len, c.batch_size,
                                     start_step, rank, world)

    def rank_world(self) -> tuple[int, int]:
        return self.group.rank, self.group.world_size

    # ------------------------------------------------------------------ steps
    def train_step(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
        self.model.train()
        inputs, targets = inputs.to(self.device), targets.to(self.device)
        hidden = self.hidden if self.model_config.objective == "lm" else None
        # bf16 autocast on CUDA only: this project's CPUs have no bf16 units (35× slower)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            loss, hidden = self.loss_of_batch(inputs, targets, hidden)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip)
        self.optimizer.step()
        if self.model_config.objective == "lm":
            self.hidden = detach_state(hidden)
        return loss.item(), grad_norm.item()

    def validate(self) -> dict | None:
        """Loss and top-k on the validation passages; None when the split has no words."""
        if not self.has_validation:
            return None
        self.model.eval()
        result = evaluate(NeuralScorer(self.model, self.vocab), self.valid_split)
        result.pop("by_context", None)
        return result

    # ------------------------------------------------------------------ loop
    def should_stop(self) -> str:
        c, p = self.config, self.progress
        if c.max_steps is not None and p.global_step >= c.max_steps:
            return "max-steps"
        if c.time_budget is not None and p.train_seconds >= c.time_budget:
            return "time budget"
        if p.bad_evals >= c.patience:
            return "early stopping"
        return ""

    def after_validation(self, result: dict | None, writer: SummaryWriter) -> bool:
        """Record a validation result; True when early stopping says to stop."""
        if result is None:
            return False
        p = self.progress
        step = p.global_step
        for key in ("loss", "perplexity", "top1", "top5"):
            writer.add_scalar(f"valid/{key}", result[key], step)
        p.evals.append({"step": step, "epoch": p.epoch + 1,
                        "train_seconds": round(p.train_seconds, 1),
                        **{k: result[k] for k in ("loss", "perplexity", "top1", "top5")}})
        self.scheduler.step(result["loss"])
        improved = result["loss"] < p.best_valid_loss - 1e-4
        if improved:
            p.best_valid_loss = result["loss"]
            p.bad_evals = 0
            if self.group.is_main:
                save_weights(self.model, self.out / "best.safetensors")
        else:
            p.bad_evals += 1
        self.log(f"valid after {step} steps: loss {result['loss']:.3f} · ppl "
                 f"{result['perplexity']:.1f} · top-1 {result['top1']:.1%} · top-5 "
                 f"{result['top5']:.1%}{' (best)' if improved else ''}")
        return p.bad_evals >= self.config.patience

    def run(self) -> dict:
        c, p = self.config, self.progress
        if self.group.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            self.vocab.save(self.out / "vocab.txt")
            save_config(self.out, self.model_config, self._config_record())
        n_params = count_parameters(self.model)
        self.log(f"model: {self.model_config.cell} × {self.model_config.layers}, embed "
                 f"{self.model_config.embed}, hidden {self.model_config.hidden}, "
                 f"{self.model_config.softmax} softmax over {len(self.vocab)} words, "
                 f"{n_params:,} parameters, on {self.device}"
                 + (f" × {self.group.world_size} processes" if self.group.active else ""))
        from torch.utils.tensorboard import SummaryWriter

        writer = (SummaryWriter(log_dir=str(self.out / "logs"), purge_step=p.global_step or None)
                  if self.group.is_main else NullWriter())
        interrupted = False
        p.stopped = self.should_stop()  # a resumed run may have nothing left to do
        try:
            with self.sigint:
                try:
                    while p.epoch < c.epochs and not p.stopped:
                        self._check_interrupt()
                        p.stopped = self._run_epoch(writer)
                except KeyboardInterrupt:
                    interrupted = True
                    p.stopped = "interrupted"
                    if self.sigint.forced:
                        self.log("interrupted again: quitting without saving (the last "
                                 "checkpoint stays)")
                    else:
                        self.log("interrupted: saving the last checkpoint")
                        self.save_checkpoint()
        finally:
            writer.close()
        summary = {
            "stopped": p.stopped or "epochs done",
            "epochs_started": p.epoch + (0 if p.step_in_epoch == 0 else 1),
            "steps": p.global_step,
            "train_seconds": round(p.train_seconds, 1),
            "target_words": p.target_words,
            "target_words_per_second": round(p.target_words / max(p.train_seconds, 1e-9)),
            "data_wait_fraction": round(p.data_seconds / max(p.train_seconds, 1e-9), 4),
            "best_valid_loss": p.best_valid_loss,
            "parameters": n_params,
            "validation": p.evals,
        }
        if self.group.is_main:
            self._write_metrics(summary)
        if self.group.active:
            # DDP's reducer holds the process group: free it now, not at interpreter exit, where
            # gloo's threads could abort the process as its tensors are torn down
            self.loss_of_batch = LossOfBatch(self.model)
            gc.collect()
        distributed.shutdown(self.group)
        if interrupted:
            raise KeyboardInterrupt
        return summary

    def _write_metrics(self, summary: dict) -> None:
        """metrics.json's "training" block; a resumed run keeps the rest (evaluate's "test")."""
        path = self.out / "metrics.json"
        record: dict[str, Any] = {}
        if self.config.resume and path.is_file():
            try:
                record = read_json_object(path, ModelError)
            except ModelError as exc:
                self.log(f"note: {exc}; writing it anew")
        record["training"] = summary
        write_json(path, record)

    def _check_interrupt(self) -> None:
        """Act on a Ctrl-C noted during the last step (on every rank at the same step)."""
        requested = self.sigint.requested
        if self.group.active:
            requested = distributed.any_rank(requested, self.group, self.device)
        if requested:
            raise KeyboardInterrupt

    def _run_epoch(self, writer: SummaryWriter) -> str:
        c, p = self.config, self.progress
        steps, batches = self.epoch_batches(p.epoch, p.step_in_epoch)
        if p.step_in_epoch == 0:
            self.hidden = None
        bar = tqdm(total=steps, initial=p.step_in_epoch, desc=f"epoch {p.epoch + 1}/{c.epochs}",
                   unit="step", disable=not (c.progress and self.group.is_main),
                   dynamic_ncols=True, leave=False)
        window_words, window_time = 0, 0.0
        next_eval_at = p.train_seconds + c.eval_every_seconds
        stop = ""
        try:
            fetch_started = time.perf_counter()
            for inputs, targets in batches:
                started = time.perf_counter()
                loss, grad_norm = self.train_step(inputs, targets)
                finished = time.perf_counter()
                elapsed = finished - fetch_started
                p.data_seconds += started - fetch_started
                p.train_seconds += elapsed
                p.target_words += targets.numel()
                p.global_step += 1
                p.step_in_epoch += 1
                self._check_interrupt()  # the counters now match the weights
                window_words += targets.numel()
                window_time += elapsed
                bar.update(1)
                if p.global_step % c.log_every == 0:
                    speed = window_words / max(window_time, 1e-9)
                    writer.add_scalar("train/loss", loss, p.global_step)
                    writer.add_scalar("train/perplexity", math.exp(min(loss, 50)), p.global_step)
                    writer.add_scalar("train/grad_norm", grad_norm, p.global_step)
                    writer.add_scalar("train/lr", self.optimizer.param_groups[0]["lr"],
                                      p.global_step)
                    writer.add_scalar("train/target_words_per_second", speed, p.global_step)
                    bar.set_postfix(loss=f"{loss:.3f}", words_s=f"{speed:,.0f}")
                    window_words, window_time = 0, 0.0
                stop = self.should_stop()
                if c.time_budget is not None and self.group.active:  # stop all ranks together
                    stop = "time budget" if distributed.any_rank(bool(stop), self.group,
                                                                 self.device) else ""
                due = (c.eval_every and p.global_step % c.eval_every == 0) or (
                    c.eval_every_seconds and p.train_seconds >= next_eval_at)
                if due and p.step_in_epoch < steps and not stop:
                    next_eval_at = p.train_seconds + c.eval_every_seconds
                    if self.after_validation(self.validate(), writer):
                        stop = stop or "early stopping"
                if p.global_step % c.checkpoint_every == 0:
                    self.save_checkpoint()
                if stop:
                    break
                fetch_started = time.perf_counter()
        finally:
            bar.close()
        if p.step_in_epoch >= steps:
            p.epoch += 1
            p.step_in_epoch = 0
        if self.after_validation(self.validate(), writer):
            stop = stop or "early stopping"
        self.save_checkpoint()
        return stop


class NullWriter:
    """Stands in for the TensorBoard writer on ranks other than 0."""

    def add_scalar(self, *_args, **_kwargs) -> None:
        pass

    def close(self) -> None:
        pass


def _refuse_changes(what: str, before: dict[str, Any], now: dict[str, Any], out: Path) -> None:
    """A ConfigError naming the first option whose value differs from the resumed run's."""
    for key in sorted(set(before) | set(now)):
        if key == "train_split_sha256" and key in before and before[key] != now.get(key):
            raise ConfigError(f"{out}: --resume on another training split (the data dir's "
                              "train.npy differs from the one the run was started on)")
        if key in before and before[key] != now.get(key):
            raise ConfigError(f"{out}: --resume with other {what}s than the run being resumed: "
                              f"--{key.replace('_', '-')} {now.get(key)}, was {before[key]}")


def rng_states(device: torch.device, group: distributed.ProcessGroup) -> dict[str, Any]:
    """The generators a checkpoint keeps: the CPU's, and on CUDA each rank's own device's
    (dropout draws from the generator of the device it runs on), gathered for rank 0."""
    states: dict[str, Any] = {"torch_rng": torch.get_rng_state()}
    if device.type == "cuda":
        mine = torch.cuda.get_rng_state(device)
        if group.active:
            by_rank = distributed.gather_tensors([mine.to(device)], group)
            states["cuda_rng_by_rank"] = [parts[0].cpu() for parts in by_rank]
        else:
            states["cuda_rng_by_rank"] = [mine]
    return states


def restore_rng_states(state: dict[str, Any], device: torch.device, rank: int) -> None:
    torch.set_rng_state(state["torch_rng"])
    cuda_states = state.get("cuda_rng_by_rank")
    if device.type == "cuda" and cuda_states:  # a CPU checkpoint resumed on CUDA: seeded only
        torch.cuda.set_rng_state(cuda_states[rank], device)


class SigintDeferral:
    """While active (main thread only), Ctrl-C sets `requested` instead of raising, so training
    stops between steps; a second Ctrl-C raises KeyboardInterrupt at once (`forced`)."""

    def __init__(self) -> None:
        self.requested = False
        self.forced = False
        self._previous: Any = None
        self._installed = False

    def _handle(self, _signum, _frame) -> None:
        if self.requested:
            self.forced = True
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> SigintDeferral:
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if previous not in (signal.SIG_IGN, None):  # an ignored SIGINT stays ignored
                self._previous = previous
                signal.signal(signal.SIGINT, self._handle)
                self._installed = True
        return self

    def __exit__(self, *_exc) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False


def _pack_state(state: State) -> list[torch.Tensor]:
    if state is None:
        return []
    return list(state) if isinstance(state, tuple) else [state]


def _unpack_state(tensors: list[torch.Tensor], device: torch.device) -> State:
    if not tensors:
        return None
    moved = [t.to(device) for t in tensors]
    return tuple(moved) if len(moved) == 2 else moved[0]


def train(config: TrainConfig, log=print) -> dict:
    return Trainer(config, log).run()
