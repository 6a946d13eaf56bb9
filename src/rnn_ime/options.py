"""Checks of option values, shared by the configs: each failure is a ConfigError with one line
that names the option as the command line spells it (`hidden_size` → `--hidden-size`)."""

from __future__ import annotations

import math
from pathlib import Path

from .errors import ConfigError

MAX_SEED = 2**32 - 1  # NumPy's generators take seeds in [0, 2**32)


def flag(name: str) -> str:
    """`batch_size` → `--batch-size`."""
    return "--" + name.replace("_", "-")


def check_int_range(name: str, value: int | None, low: int, high: int | None = None) -> None:
    """`value` (None: unset, allowed) within [low, high]."""
    if value is None:
        return
    if value < low or (high is not None and value > high):
        where = f"at least {low:,}" if high is None else f"between {low:,} and {high:,}"
        raise ConfigError(f"{flag(name)} must be {where} (got {value:,})")


def check_positive(name: str, value: float | None, high: float | None = None) -> None:
    """`value` (None: unset, allowed) finite and > 0 (and ≤ high): not nan, not inf."""
    if value is None:
        return
    if not math.isfinite(value) or value <= 0 or (high is not None and value > high):
        where = "a positive number" if high is None else f"a positive number, at most {high:g}"
        raise ConfigError(f"{flag(name)} must be {where} (got {value:g})")


def check_non_negative(name: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{flag(name)} must be 0 or a positive number (got {value:g})")


def check_fraction(name: str, value: float) -> None:
    """Strictly between 0 and 1."""
    if not 0.0 < value < 1.0:  # nan fails both
        raise ConfigError(f"{flag(name)} must be between 0 and 1, both excluded (got {value:g})")


def check_seed(value: int) -> None:
    check_int_range("seed", value, 0, MAX_SEED)


def check_out_dir(path: str | Path, name: str = "out") -> None:
    """A directory to write into: absent (it will be made) or a directory, never a file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag(name)} {path}: exists and is not a directory")
    _check_parents(path, name)


def check_out_file(path: str | Path, name: str = "out") -> None:
    """A file to write: absent or a file, never a directory; its parents directories (or
    absent: they will be made)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag(name)} {path}: is a directory; name a file")
    _check_parents(path, name)


def _check_parents(path: Path, name: str) -> None:
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise ConfigError(f"{flag(name)} {path}: {parent} is not a directory")
