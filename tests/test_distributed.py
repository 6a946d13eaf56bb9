"""Two processes under torchrun (gloo, CPU) train the same weights as one process over the
same global batch."""

import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from conftest import tiny_train_config
from rnn_ime.train import train

COMMON = ["--cell", "gru", "--hidden", "24", "--embed", "24", "--dropout", "0", "--bptt", "8",
          "--lr", "0.01", "--max-steps", "30", "--checkpoint-every", "10", "--seed", "0"]


@pytest.mark.parametrize("objective", ["lm", "window"])
def test_two_processes_match_one_process_over_the_same_global_batch(tmp_path, small_data,
                                                                    objective):
    single = tmp_path / "single"
    train(tiny_train_config(small_data, single, cell="gru", hidden=24, embed=24, bptt=8,
                            batch_size=16, max_steps=30, checkpoint_every=10,
                            objective=objective), log=lambda *_: None)
    multi = tmp_path / "multi"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "2", "-m", "rnn_ime.train", "--data", str(small_data),
               "--out", str(multi), "--batch-size", "8", "--objective", objective, *COMMON]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = load_file(str(single / "last.safetensors")), load_file(str(multi / "last.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-4), (key, (a[key] - b[key]).abs().max())
    state = torch.load(multi / "train_state.pt", weights_only=True)
    assert len(state["hidden_by_rank"]) == 2
