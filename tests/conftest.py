"""Shared fixtures: small corpora made on the fly, a prepared data dir and a small model."""

from __future__ import annotations

import random
import signal
from pathlib import Path

import pytest

from rnn_ime.prepare import PrepareConfig, prepare
from rnn_ime.train import TrainConfig, train

SUBJECTS = ["我", "你", "他", "我们", "老师", "朋友", "妈妈", "同学"]
TIMES = ["今天", "明天", "昨天", "周末", "晚上", "早上"]
VERBS = ["去", "想去", "喜欢去", "不想去"]
PLACES = ["北京", "上海", "学校", "公园", "超市", "医院", "图书馆", "酒店"]
ENDINGS = ["玩", "看看", "买东西", "吃饭", "散步"]
FRUITS = ["苹果", "香蕉", "葡萄", "西瓜", "草莓", "桃子", "菠萝", "柠檬", "芒果", "樱桃"]


def template_passages(n: int, seed: int = 0) -> list[str]:
    """Everyday sentences from templates: learnable, but not deterministic."""
    rng = random.Random(seed)
    passages = []
    for _ in range(n):
        sentences = []
        for _ in range(rng.randint(1, 3)):
            sentences.append(f"{rng.choice(SUBJECTS)}{rng.choice(TIMES)}{rng.choice(VERBS)}"
                             f"{rng.choice(PLACES)}{rng.choice(ENDINGS)}。")
        passages.append("".join(sentences))
    return passages


def cycle_passages(n: int, seed: int = 0) -> list[str]:
    """Fruits in a fixed cycle from a random start: every word but the first is determined."""
    rng = random.Random(seed)
    passages = []
    for _ in range(n):
        start, length = rng.randrange(len(FRUITS)), rng.randint(40, 120)
        passages.append(" ".join(FRUITS[(start + i) % len(FRUITS)] for i in range(length)))
    return passages


def hanzi_number(i: int) -> str:
    """0 → 零, 12 → 一二: numbers in characters, so that lines that differ only by it are not
    near-duplicates (prepare ignores digits when it compares)."""
    return "".join("零一二三四五六七八九"[int(d)] for d in str(i))


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def ctrl_c_raises():
    """Ctrl-C raising KeyboardInterrupt, as in a terminal, even when the suite runs where SIGINT
    is ignored (a job started with `&` in a non-interactive shell inherits it ignored)."""
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def sigint_as_in_a_terminal() -> None:
    """preexec_fn of a child that must take Ctrl-C (Python leaves an inherited ignore alone)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="session", autouse=True)
def lexicon_cache(tmp_path_factory) -> Path:
    """The pinyin lexicon is cached in a temporary dir, never in the user's ~/.cache (built once
    per test session, about 10 s)."""
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RNN_IME_CACHE", str(path))
        # what the user taught lives in a temporary dir too, never in ~/.local/share
        patch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data-home")))
        yield path


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> Path:
    return write_lines(tmp_path_factory.mktemp("corpus") / "small.txt", template_passages(600))


@pytest.fixture(scope="session")
def small_data(tmp_path_factory, small_corpus) -> Path:
    out = tmp_path_factory.mktemp("data") / "small"
    prepare(PrepareConfig(corpus=[str(small_corpus)], out=str(out), min_count=1,
                          progress=False), log=lambda *_: None)
    return out


def tiny_train_config(data: Path, out: Path, **overrides) -> TrainConfig:
    options = dict(data=str(data), out=str(out), cell="lstm", hidden=32, embed=32, dropout=0.0,
                   batch_size=16, bptt=16, lr=1e-2, epochs=50, max_steps=150,
                   checkpoint_every=50, progress=False, seed=0)
    options.update(overrides)
    return TrainConfig(**options)


@pytest.fixture(scope="session")
def small_model(tmp_path_factory, small_data) -> Path:
    out = tmp_path_factory.mktemp("models") / "small"
    train(tiny_train_config(small_data, out), log=lambda *_: None)
    return out
