import numpy as np

from rnn_ime.data import Split, lm_batches, lm_streams, passage_order_stream, windows
from rnn_ime.vocab import BOS_ID, PAD_ID


def _split():
    # passages: [<s> 5 6 7] [<s> 8 9]
    tokens = np.array([BOS_ID, 5, 6, 7, BOS_ID, 8, 9, BOS_ID], dtype=np.int32)
    return Split(tokens, np.array([[0, 0], [4, 0]]))


def test_windows_are_left_padded_inside_the_passage():
    split = _split()
    got = windows(split, np.array([1, 3, 5, 6]), seq_len=3)
    assert got.tolist() == [[PAD_ID, PAD_ID, BOS_ID], [BOS_ID, 5, 6],
                            [PAD_ID, PAD_ID, BOS_ID], [PAD_ID, BOS_ID, 8]]


def test_passage_order_stream_keeps_every_token_once():
    stream = passage_order_stream(_split(), seed=0, epoch=1)
    assert sorted(stream.tolist()) == sorted(_split().tokens.tolist())
    assert stream[0] == BOS_ID and stream[-1] == BOS_ID


def test_lm_batches_shift_targets_by_one_and_cover_the_rows():
    stream = np.arange(41, dtype=np.int32)
    rows = lm_streams(stream, batch_size=2)
    assert rows.shape == (2, 20)
    batches = list(lm_batches(rows, bptt=8))
    assert [b[0].shape[1] for b in batches] == [8, 8, 3]
    for inputs, targets in batches:
        assert (targets == inputs + 1).all()
    resumed = list(lm_batches(rows, bptt=8, start_step=1))
    assert len(resumed) == 2 and (resumed[0][0] == batches[1][0]).all()


def test_lm_streams_give_each_rank_its_own_rows():
    stream = np.arange(100, dtype=np.int32)
    a = lm_streams(stream, batch_size=2, rank=0, world_size=2)
    b = lm_streams(stream, batch_size=2, rank=1, world_size=2)
    assert not set(a.ravel()) & set(b.ravel())


def test_every_kth_passage_keeps_whole_passages_from_every_source():
    from rnn_ime.data import every_kth_passage

    tokens = np.array([BOS_ID, 5, 6, BOS_ID, 7, BOS_ID, 8, 9, 10, BOS_ID, 11, BOS_ID],
                      dtype=np.int32)
    split = Split(tokens, np.array([[0, 0], [3, 0], [5, 1], [9, 1]]))
    assert every_kth_passage(split, None) is split
    small = every_kth_passage(split, 4)
    assert small.tokens.tolist() == [BOS_ID, 5, 6, BOS_ID, 8, 9, 10, BOS_ID]
    assert small.passages.tolist() == [[0, 0], [3, 1]]
