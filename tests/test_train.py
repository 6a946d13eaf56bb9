import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import cycle_passages, tiny_train_config, write_lines
from rnn_ime import distributed
from rnn_ime.data import DataDir
from rnn_ime.errors import ConfigError, ModelError
from rnn_ime.metrics import evaluate
from rnn_ime.modeldir import load
from rnn_ime.prepare import PrepareConfig, prepare
from rnn_ime.scoring import NeuralScorer
from rnn_ime.train import STATE_FILE, Trainer, restore_rng_states, rng_states, train

QUIET = dict(log=lambda *_: None)


def _weights(model_dir: Path, name: str = "last") -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / f"{name}.safetensors"))


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.allclose(wa[key], wb[key], atol=1e-6), key


def test_training_lowers_the_validation_loss(tmp_path, small_data):
    summary = train(tiny_train_config(small_data, tmp_path / "m", max_steps=120, eval_every=30),
                    **QUIET)
    losses = [e["loss"] for e in summary["validation"]]
    assert len(losses) >= 4 and losses[-1] < losses[0] - 0.5
    for name in ("config.json", "vocab.txt", "best.safetensors", "last.safetensors",
                 "metrics.json", STATE_FILE):
        assert (tmp_path / "m" / name).is_file(), name
    assert any((tmp_path / "m" / "logs").iterdir())


@pytest.mark.parametrize("objective", ["lm", "window"])
def test_a_deterministic_pattern_is_learned_to_90_percent_top1(tmp_path, objective):
    corpus = write_lines(tmp_path / "cycle.txt", cycle_passages(300))
    prepare(PrepareConfig(corpus=[str(corpus)], out=str(tmp_path / "d"), min_count=1,
                          progress=False), **QUIET)
    config = tiny_train_config(tmp_path / "d", tmp_path / "m", objective=objective,
                               max_steps=250, seq_len=3, batch_size=32)
    train(config, **QUIET)
    model, vocab, _ = load(tmp_path / "m")
    result = evaluate(NeuralScorer(model, vocab), DataDir(tmp_path / "d").split("test"))
    assert result["top1"] >= 0.9, result


def test_ctrl_c_saves_and_resume_gives_the_same_weights(tmp_path, small_data, monkeypatch):
    train(tiny_train_config(small_data, tmp_path / "full", max_steps=100), **QUIET)

    original_step = Trainer.train_step
    calls = {"n": 0}

    def interrupted_step(self, *args):
        calls["n"] += 1
        if calls["n"] == 37:  # mid-epoch, between checkpoints
            raise KeyboardInterrupt
        return original_step(self, *args)

    monkeypatch.setattr(Trainer, "train_step", interrupted_step)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_train_config(small_data, tmp_path / "part", max_steps=100), **QUIET)
    monkeypatch.setattr(Trainer, "train_step", original_step)
    state = torch.load(tmp_path / "part" / STATE_FILE, weights_only=True)
    assert state["progress"]["global_step"] == 36
    train(tiny_train_config(small_data, tmp_path / "part", max_steps=100, resume=True), **QUIET)
    _assert_same_weights(tmp_path / "full", tmp_path / "part")


def test_resume_after_sigkill_loses_only_the_steps_since_the_checkpoint(tmp_path, small_data):
    reference = tmp_path / "reference"
    train(tiny_train_config(small_data, reference, max_steps=400, checkpoint_every=20), **QUIET)

    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "rnn_ime", "train", "--data", str(small_data), "--out",
               str(killed), "--cell", "lstm", "--hidden", "32", "--embed", "32", "--dropout", "0",
               "--batch-size", "16", "--bptt", "16", "--lr", "0.01", "--epochs", "50",
               "--max-steps", "400", "--checkpoint-every", "20", "--seed", "0"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONHASHSEED": "0"})
    state_file = killed / STATE_FILE
    deadline = time.monotonic() + 120
    step = 0
    while time.monotonic() < deadline and process.poll() is None:
        if state_file.exists():
            step = torch.load(state_file, weights_only=True)["progress"]["global_step"]
            if step >= 100:
                break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 100 <= step < 400, "the run was not killed mid-training"
    torch.load(state_file, weights_only=True)  # a complete, readable checkpoint
    train(tiny_train_config(small_data, killed, max_steps=400, checkpoint_every=20,
                            resume=True), **QUIET)
    _assert_same_weights(reference, killed)
    assert not [p for p in killed.iterdir() if p.name.endswith(".tmp")]


def test_a_second_run_into_the_same_dir_needs_resume(tmp_path, small_data):
    train(tiny_train_config(small_data, tmp_path / "m", max_steps=5), **QUIET)
    with pytest.raises(ConfigError, match="--resume"):
        train(tiny_train_config(small_data, tmp_path / "m", max_steps=5), **QUIET)
    with pytest.raises(ConfigError, match="other model options"):
        train(tiny_train_config(small_data, tmp_path / "m", max_steps=10, hidden=16,
                                resume=True), **QUIET)


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path, small_data):
    with pytest.raises(ModelError, match="nothing to resume"):
        train(tiny_train_config(small_data, tmp_path / "m", resume=True), **QUIET)


def test_same_seed_gives_the_same_weights(tmp_path, small_data):
    train(tiny_train_config(small_data, tmp_path / "a", max_steps=30), **QUIET)
    train(tiny_train_config(small_data, tmp_path / "b", max_steps=30), **QUIET)
    _assert_same_weights(tmp_path / "a", tmp_path / "b")


def test_tied_weights_are_saved_once_and_load_back(tmp_path, small_data):
    train(tiny_train_config(small_data, tmp_path / "m", max_steps=5, tie_weights=True),
          **QUIET)
    assert "decoder.weight" not in _weights(tmp_path / "m")
    model, _, _ = load(tmp_path / "m")
    assert model.decoder.weight is model.embedding.weight


def test_a_real_ctrl_c_mid_step_leaves_a_checkpoint_whose_counters_match_its_weights(
        tmp_path, small_data, monkeypatch, ctrl_c_raises):
    train(tiny_train_config(small_data, tmp_path / "full", max_steps=100), **QUIET)

    original_step = Trainer.train_step
    calls = {"n": 0}

    def step_then_ctrl_c(self, *args):
        result = original_step(self, *args)  # the weights now hold this step
        calls["n"] += 1
        if calls["n"] == 37:
            os.kill(os.getpid(), signal.SIGINT)  # arrives before the counters are updated
        return result

    monkeypatch.setattr(Trainer, "train_step", step_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_train_config(small_data, tmp_path / "part", max_steps=100), **QUIET)
    monkeypatch.setattr(Trainer, "train_step", original_step)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    state = torch.load(tmp_path / "part" / STATE_FILE, weights_only=True)
    assert state["progress"]["global_step"] == 37
    train(tiny_train_config(small_data, tmp_path / "part", max_steps=100, resume=True), **QUIET)
    _assert_same_weights(tmp_path / "full", tmp_path / "part")


def test_a_second_ctrl_c_quits_at_once_keeping_the_last_periodic_checkpoint(
        tmp_path, small_data, monkeypatch, ctrl_c_raises):
    original_step = Trainer.train_step
    calls = {"n": 0}

    def step_with_two_ctrl_c(self, *args):
        calls["n"] += 1
        if calls["n"] == 27:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return original_step(self, *args)

    monkeypatch.setattr(Trainer, "train_step", step_with_two_ctrl_c)
    logged = []
    with pytest.raises(KeyboardInterrupt):
        train(tiny_train_config(small_data, tmp_path / "m", checkpoint_every=20),
              log=logged.append)
    assert any("without saving" in line for line in logged)
    state = torch.load(tmp_path / "m" / STATE_FILE, weights_only=True)
    assert state["progress"]["global_step"] == 20


@pytest.mark.parametrize(("option", "value", "message"), [
    ("batch_size", 8, "--batch-size 8, was 16"),
    ("bptt", 8, "--bptt 8, was 16"),
    ("seed", 1, "--seed 1, was 0"),
    ("clip", 0.5, "--clip 0.5, was 1.0"),
])
def test_resume_refuses_options_that_change_the_run(tmp_path, small_data, option, value,
                                                    message):
    train(tiny_train_config(small_data, tmp_path / "m", max_steps=5), **QUIET)
    with pytest.raises(ConfigError, match=message):
        train(tiny_train_config(small_data, tmp_path / "m", max_steps=10, resume=True,
                                **{option: value}), **QUIET)


def test_resume_refuses_another_number_of_processes(tmp_path, small_data):
    train(tiny_train_config(small_data, tmp_path / "m", max_steps=5), **QUIET)
    path = tmp_path / "m" / STATE_FILE
    state = torch.load(path, weights_only=True)
    state["hidden_by_rank"] = state["hidden_by_rank"] * 2  # as if saved by 2 processes
    torch.save(state, path)
    with pytest.raises(ConfigError, match=r"with 1 process\(es\), but the run was started "
                                          r"with 2"):
        train(tiny_train_config(small_data, tmp_path / "m", max_steps=10, resume=True), **QUIET)


def test_resume_refuses_another_training_split(tmp_path, small_data):
    train(tiny_train_config(small_data, tmp_path / "m", max_steps=5), **QUIET)
    path = tmp_path / "m" / STATE_FILE
    state = torch.load(path, weights_only=True)
    state["run_options"]["train_split_sha256"] = "0" * 64  # as if the data dir was re-prepared
    torch.save(state, path)
    with pytest.raises(ConfigError, match="another training split"):
        train(tiny_train_config(small_data, tmp_path / "m", max_steps=10, resume=True), **QUIET)


def test_resume_of_an_older_checkpoint_checks_what_it_can(tmp_path, small_data):
    train(tiny_train_config(small_data, tmp_path / "m", max_steps=5), **QUIET)
    path = tmp_path / "m" / STATE_FILE
    state = torch.load(path, weights_only=True)
    del state["run_options"], state["lr"]  # as written before they were recorded
    torch.save(state, path)
    with pytest.raises(ConfigError, match="--batch-size 8, was 16"):  # seen in the carried state
        train(tiny_train_config(small_data, tmp_path / "m", max_steps=8, batch_size=8,
                                resume=True), **QUIET)
    summary = train(tiny_train_config(small_data, tmp_path / "m", max_steps=8, resume=True),
                    **QUIET)
    assert summary["steps"] == 8


def test_resume_applies_a_new_lr_and_says_so(tmp_path, small_data):
    train(tiny_train_config(small_data, tmp_path / "m", max_steps=5), **QUIET)
    logged = []
    train(tiny_train_config(small_data, tmp_path / "m", max_steps=6, lr=1e-3, resume=True),
          log=logged.append)
    assert any("--lr 0.001 applied" in line and "had --lr 0.01" in line for line in logged)
    state = torch.load(tmp_path / "m" / STATE_FILE, weights_only=True)
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3)
    assert state["lr"] == pytest.approx(1e-3)
    logged.clear()  # the same --lr again: nothing to apply
    train(tiny_train_config(small_data, tmp_path / "m", max_steps=7, lr=1e-3, resume=True),
          log=logged.append)
    assert not any("applied" in line for line in logged)


def test_resume_keeps_the_test_block_of_metrics_json(tmp_path, small_data):
    train(tiny_train_config(small_data, tmp_path / "m", max_steps=5), **QUIET)
    metrics = tmp_path / "m" / "metrics.json"
    record = json.loads(metrics.read_text())
    record["test"] = {"loss": 1.5, "words": 10}  # as `rnn-ime evaluate` writes it
    metrics.write_text(json.dumps(record))
    train(tiny_train_config(small_data, tmp_path / "m", max_steps=8, resume=True), **QUIET)
    record = json.loads(metrics.read_text())
    assert record["test"] == {"loss": 1.5, "words": 10}
    assert record["training"]["steps"] == 8


def test_the_cuda_generator_is_saved_and_restored_per_rank(monkeypatch):
    cuda = torch.device("cuda:0")
    saved = torch.arange(16, dtype=torch.uint8)
    restored = {}
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device: saved.clone())
    monkeypatch.setattr(torch.cuda, "set_rng_state",
                        lambda state, device: restored.update(state=state, device=device))
    states = rng_states(cuda, distributed.ProcessGroup())
    assert torch.equal(states["cuda_rng_by_rank"][0], saved)
    restore_rng_states(states, cuda, rank=0)
    assert torch.equal(restored["state"], saved) and restored["device"] == cuda
    assert "cuda_rng_by_rank" not in rng_states(torch.device("cpu"), distributed.ProcessGroup())


def test_training_with_an_empty_validation_split_does_not_crash(tmp_path, small_data):
    data = tmp_path / "d"
    shutil.copytree(small_data, data)
    np.save(data / "valid.npy", np.asarray([2], dtype=np.int32))
    np.save(data / "valid_passages.npy", np.zeros((0, 2), dtype=np.int64))
    logged = []
    summary = train(tiny_train_config(data, tmp_path / "m", max_steps=20, eval_every=5),
                    log=logged.append)
    assert summary["steps"] == 20 and summary["validation"] == []
    assert any("validation split is empty" in line for line in logged)
    load(tmp_path / "m", weights="best")  # falls back to last.safetensors
