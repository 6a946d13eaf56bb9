"""Counts in messages take the number they need."""

import pytest

from rnn_ime.wording import counted


@pytest.mark.parametrize(("count", "expected"), [
    (0, "0 bad lines"), (1, "1 bad line"), (2, "2 bad lines"), (12345, "12,345 bad lines")])
def test_counted(count, expected):
    assert counted(count, "bad line") == expected


def test_counted_with_its_own_plural():
    assert counted(1, "entry", "entries") == "1 entry"
    assert counted(3, "entry", "entries") == "3 entries"
