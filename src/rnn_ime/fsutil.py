"""Atomic file writes (a reader never sees a half-written file, even after SIGKILL), and the
cache dir with its upkeep."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to `target`; on success it is fsynced and renamed over it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                        dir=target.parent)
    except OSError as exc:
        raise naming(exc, target) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        if exc.filename in (tmp, str(tmp)):  # the temporary file means nothing to a user
            raise naming(exc, target) from None
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def naming(exc: OSError, path: Path) -> OSError:
    """The same error (type, errno and reason) about `path` instead of the file it named."""
    if exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror, str(path))


def write_with(target: str | os.PathLike[str], writer: Callable[[Path], Any]) -> None:
    """Call `writer(tmp_path)` and atomically move the result to `target`."""
    with atomic_path(target) as tmp:
        writer(tmp)


def write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | os.PathLike[str], text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def write_json(target: str | os.PathLike[str], obj: Any) -> None:
    write_text(target, json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_json_object(path: str | os.PathLike[str], error: type[Exception]) -> dict[str, Any]:
    """The JSON object in `path`; a file that cannot be read, is not UTF-8 JSON or holds
    something other than an object raises `error` with a one-line message."""
    try:
        obj = read_json(path)
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise error(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column "
                    f"{exc.colno})") from None
    if not isinstance(obj, dict):
        raise error(f"{path}: expected a JSON object, found {type(obj).__name__}")
    return obj


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_dir() -> Path:
    """Where rnn-ime keeps what it can build again (the pinyin lexicon, syllables, readings):
    $RNN_IME_CACHE, else $XDG_CACHE_HOME/rnn-ime, else ~/.cache/rnn-ime."""
    if os.environ.get("RNN_IME_CACHE"):
        return Path(os.environ["RNN_IME_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rnn-ime"


CACHE_UNUSED_DAYS = 30.0  # a cache file neither written nor read for this long is removed


def mark_used(path: Path) -> None:
    """Note that a cache file was read now (its mtime), so that prune_cache keeps it."""
    try:
        os.utime(path)
    except OSError:
        pass  # a read-only cache is still a cache


KEY_PATTERN = "[0-9a-f]" * 16  # the 16 hex digits that key a cache file's name


def prune_cache(kept: Path, pattern: str, days: float = CACHE_UNUSED_DAYS) -> list[Path]:
    """Remove the files of `kept`'s folder that match `pattern` (and the temporary files a
    killed write of such a file left, named by atomic_path) when neither written nor read
    (mark_used) for `days`; `kept` stays. Every model, library and code version keys files of
    its own (13–22 MB each), so without this the cache only grows. A pattern names rnn-ime's
    files only (KEY_PATTERN), should the cache dir be shared. Returns the files removed."""
    cutoff = time.time() - days * 86400.0
    removed = []
    for path in (*kept.parent.glob(pattern), *kept.parent.glob(f".{pattern}.*.tmp")):
        try:
            if path != kept and path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except OSError:
            continue  # gone already, or not ours to remove
    return removed
