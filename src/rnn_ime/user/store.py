"""The user's data on disk: one SQLite file per profile (the standard library's sqlite3, WAL).

    meta      key → value: the schema version, the program that wrote it, the word clock
    words     word → decayed count as of `seen`, reading (pinyin of a word the user made), made
    bigrams   (prev, word) → decayed count as of `seen`
    commits   the last commits, with what each taught (for undo)

Counts decay with the words typed since (see model.py); `seen` is the word clock when a count
was last brought up to date. Every learning step is one transaction: once `commit` returns, the
data is in the write-ahead log and survives the process being killed (kill -9). The CLI and a
running server can share one file: SQLite locks it, and a reader notices another process's
writes through `PRAGMA data_version`.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import RnnImeError

SCHEMA_VERSION = 1
APPLICATION = "rnn-ime user model"
KEEP_COMMITS = 50  # commits remembered for undo
BUSY_TIMEOUT_S = 5.0


class UserStoreError(RnnImeError):
    """A user file that cannot be used: not ours, from a newer version, unreadable."""


class UserStoreBusyError(UserStoreError):
    """A user file another process holds locked for longer than BUSY_TIMEOUT_S."""


def default_path() -> Path:
    """$XDG_DATA_HOME/rnn-ime/user.db, else ~/.local/share/rnn-ime/user.db."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "rnn-ime" / "user.db"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS words (
    word TEXT PRIMARY KEY, count REAL NOT NULL, seen REAL NOT NULL,
    reading TEXT, made INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS bigrams (
    prev TEXT NOT NULL, word TEXT NOT NULL, count REAL NOT NULL, seen REAL NOT NULL,
    PRIMARY KEY (prev, word));
CREATE TABLE IF NOT EXISTS commits (
    id INTEGER PRIMARY KEY AUTOINCREMENT, clock REAL NOT NULL, lesson TEXT NOT NULL);
"""


def busy_timeout() -> float:
    return BUSY_TIMEOUT_S


class UserStore:
    """One profile's SQLite file."""

    def __init__(self, path: str | Path, create: bool = True) -> None:
        self.path = Path(path)
        if not self.path.exists() and not create:
            raise UserStoreError(f"{self.path}: no such user file")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=busy_timeout(),
                                      isolation_level=None, check_same_thread=False)
            self._check_and_create()
        except sqlite3.OperationalError as error:
            if "locked" in str(error) or "busy" in str(error):
                raise UserStoreBusyError(f"{self.path}: locked by another process for more than "
                                         f"{busy_timeout():g} s; try again") from None
            raise UserStoreError(f"{self.path}: not a user file of rnn-ime ({error}); move it "
                                 "away or choose another --user-db") from None
        except sqlite3.DatabaseError as error:
            raise UserStoreError(f"{self.path}: not a user file of rnn-ime ({error}); move it "
                                 "away or choose another --user-db") from None
        except OSError as error:
            raise UserStoreError(f"{self.path}: cannot open ({error.strerror or error})") from None

    def _check_and_create(self) -> None:
        tables = {row[0] for row in self.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "meta" not in tables:
            raise UserStoreError(f"{self.path}: an SQLite file, but not a user file of rnn-ime "
                                 "(no meta table); choose another --user-db")
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across kill -9
        if not tables:
            with self.transaction():
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    self.db.execute(statement)
                self.db.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)", [
                    ("application", APPLICATION), ("schema", str(SCHEMA_VERSION)),
                    ("clock", "0")])
            return
        meta = dict(self.db.execute("SELECT key, value FROM meta"))
        if meta.get("application") != APPLICATION:
            raise UserStoreError(f"{self.path}: an SQLite file of another program; choose "
                                 "another --user-db")
        if meta.get("schema") != str(SCHEMA_VERSION):
            raise UserStoreError(f"{self.path}: user file schema {meta.get('schema')}, this "
                                 f"rnn-ime reads {SCHEMA_VERSION}; upgrade rnn-ime")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if "locked" in str(error) or "busy" in str(error):
                raise UserStoreBusyError(f"{self.path}: locked by another process for more "
                                         f"than {busy_timeout():g} s; try again") from None
            raise UserStoreError(f"{self.path}: cannot write ({error})") from None
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def data_version(self) -> int:
        """Changes when another connection (another process) has written."""
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    # ------------------------------------------------------------ reading everything
    def clock(self) -> float:
        return float(self.db.execute("SELECT value FROM meta WHERE key = 'clock'").fetchone()[0])

    def words(self) -> list[tuple[str, float, float, str | None, int]]:
        return self.db.execute("SELECT word, count, seen, reading, made FROM words").fetchall()

    def bigrams(self) -> list[tuple[str, str, float, float]]:
        return self.db.execute("SELECT prev, word, count, seen FROM bigrams").fetchall()

    def last_commit(self) -> tuple[int, float, str] | None:
        """(id, clock, the lesson's JSON) of the newest commit."""
        row = self.db.execute("SELECT id, clock, lesson FROM commits ORDER BY id DESC LIMIT 1"
                              ).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def close(self) -> None:
        self.db.close()
