import itertools

import pytest
import torch
from torch import nn

from rnn_ime.reference_rnn import ReferenceRNN

CASES = list(itertools.product([1, 2, 3], [False, True], ["tanh", "relu"], [True, False],
                               [False, True], [False, True]))


@pytest.mark.parametrize("layers,bidirectional,nonlinearity,bias,batch_first,with_h0", CASES)
def test_reference_rnn_equals_torch(layers, bidirectional, nonlinearity, bias, batch_first,
                                    with_h0):
    torch.manual_seed(layers * 7 + bidirectional)
    options = dict(input_size=5, hidden_size=4, num_layers=layers, nonlinearity=nonlinearity,
                   bias=bias, batch_first=batch_first, bidirectional=bidirectional)
    theirs = nn.RNN(**options)
    ours = ReferenceRNN(**options)
    ours.load_state_dict(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    seq_len, batch, directions = 6, 3, 2 if bidirectional else 1
    x = torch.randn(batch, seq_len, 5) if batch_first else torch.randn(seq_len, batch, 5)
    h0 = torch.randn(layers * directions, batch, 4) if with_h0 else None
    out_t, h_t = theirs(x, h0)
    out_r, h_r = ours(x, h0)
    assert out_r.shape == out_t.shape and h_r.shape == h_t.shape
    assert (out_r - out_t).abs().max() < 1e-5
    assert (h_r - h_t).abs().max() < 1e-5
    output = out_r.transpose(0, 1) if batch_first else out_r  # (seq_len, batch, D·H)
    # the last layer's final state is the output's last step (forward) / first step (backward)
    assert torch.allclose(h_r[-directions], output[-1, :, :4])
    if bidirectional:
        assert torch.allclose(h_r[-1], output[0, :, 4:])


def test_trace_records_every_step_of_every_layer_and_direction():
    rnn = ReferenceRNN(3, 2, num_layers=2, bidirectional=True)
    trace = []
    rnn(torch.randn(4, 1, 3), trace=trace)
    assert len(trace) == 4 * 2 * 2
    first = trace[0]
    assert torch.allclose(first.hidden, torch.tanh(first.pre_activation))


def test_reference_rnn_learns_by_backprop():
    rnn = ReferenceRNN(2, 3)
    out, _ = rnn(torch.randn(5, 2, 2))
    out.sum().backward()
    assert rnn.weight_hh_l0.grad is not None and rnn.weight_hh_l0.grad.abs().sum() > 0
