"""The user's data on disk: one SQLite file per profile (the standard library's sqlite3, WAL).

    meta      key → value: the schema version, the program that wrote it, the word clock
    words     word → decayed count as of `seen`, reading (pinyin of a word the user made), made
    bigrams   (prev, word) → decayed count as of `seen`
    trigrams  (prev2, prev, word) → decayed count as of `seen` (schema 2; a file of schema 1 gains
              the table when opened)
    commits   the last commits, with what each taught (for undo)
    adaptation  base model key → the user's adapted copy of its weights (adaptation.py; schema
              3, gained by an older file when opened)

Counts decay with the words typed since (see model.py); `seen` is the word clock when a count
was last brought up to date. Every learning step is one transaction: once `commit` returns, the
data is in the write-ahead log and survives the process being killed (kill -9). The CLI and a
running server can share one file: SQLite locks it, and a reader notices another process's
writes through `PRAGMA data_version`.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from ..errors import RnnImeError

SCHEMA_VERSION = 3
MIGRATES_FROM = {"1", "2"}  # older schemas opening adds to
ADDED_IN = {"trigrams": 2, "adaptation": 3}  # tables an older schema lacks
KEEP_ADAPTATIONS = 2  # base models whose adaptation a file keeps (the newest saved)
APPLICATION = "rnn-ime user model"
KEEP_COMMITS = 50  # commits remembered for undo
BUSY_TIMEOUT_S = 5.0
# The write-ahead log is copied into the file (a checkpoint) once the typist pauses, by a thread
# of its own: SQLite's automatic checkpoint runs inside the commit that fills the log and syncs
# the file, a pause of 4–6 ms every 126 commits on the machine of 2026-12-02 (a learned commit
# otherwise takes under 1 ms). SQLite's own stays as a bound on the log, at a size typing alone
# hardly reaches (a commit writes about 8 pages).
CHECKPOINT_IDLE_S = 0.5  # seconds without a commit before the checkpoint
AUTOCHECKPOINT_PAGES = 10_000  # about 40 MB of log (SQLite's default: 1,000)


class UserStoreError(RnnImeError):
    """A user file that cannot be used: not ours, from a newer version, unreadable, damaged."""


class UserStoreBusyError(UserStoreError):
    """A user file another process holds locked for longer than BUSY_TIMEOUT_S."""


def damaged(path: str | Path, what: str) -> UserStoreError:
    """The one-line error of a user file whose content is not what rnn-ime writes."""
    return UserStoreError(f"{path}: damaged: {what}; move it away or choose another --user-db")


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
CREATE TABLE IF NOT EXISTS trigrams (
    prev2 TEXT NOT NULL, prev TEXT NOT NULL, word TEXT NOT NULL, count REAL NOT NULL,
    seen REAL NOT NULL, PRIMARY KEY (prev2, prev, word));
CREATE TABLE IF NOT EXISTS commits (
    id INTEGER PRIMARY KEY AUTOINCREMENT, clock REAL NOT NULL, lesson TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS adaptation (
    model TEXT PRIMARY KEY, steps INTEGER NOT NULL, saved REAL NOT NULL, weights BLOB NOT NULL);
"""


COLUMNS = {"meta": {"key", "value"}, "words": {"word", "count", "seen", "reading", "made"},
           "bigrams": {"prev", "word", "count", "seen"},
           "trigrams": {"prev2", "prev", "word", "count", "seen"},
           "commits": {"id", "clock", "lesson"},
           "adaptation": {"model", "steps", "saved", "weights"}}
MAX_CLOCK = 2.0 ** 53  # words typed; past it a float no longer counts one by one
MAX_COUNT = 1e15  # one word's count (times 2^500 between rebases, far from the float's limit)


def raise_if_busy(error: sqlite3.Error, path: Path) -> None:
    """A lock another process held past BUSY_TIMEOUT_S → UserStoreBusyError; else nothing."""
    if isinstance(error, sqlite3.OperationalError) and ("locked" in str(error)
                                                         or "busy" in str(error)):
        raise UserStoreBusyError(f"{path}: locked by another process for more than "
                                 f"{BUSY_TIMEOUT_S:g} s; try again") from None


# The SQL form of the rows' checks below (is_number, 0 ≤ count ≤ MAX_COUNT): SQLite keeps NaN
# as NULL, and ±inf fails the range.
_BAD_COUNT = (f"typeof(count) NOT IN ('integer', 'real') OR NOT (count BETWEEN 0 AND "
              f"{MAX_COUNT!r})")
_BAD_SEEN = "typeof(seen) NOT IN ('integer', 'real') OR NOT (seen BETWEEN -1.7e308 AND 1.7e308)"


def is_number(value: object) -> bool:
    """A finite int or float, as SQLite gives a number back (not text, a blob or NULL)."""
    return type(value) in (int, float) and math.isfinite(value)  # type: ignore[arg-type]


def missing_part(columns: dict[str, set[str]], schema: str = str(SCHEMA_VERSION)) -> str | None:
    """What a user file's tables (table → its columns) lack, or None; a file of an older schema
    lacks the tables added since (ADDED_IN)."""
    for table, needed in COLUMNS.items():
        if schema in MIGRATES_FROM and int(schema) < ADDED_IN.get(table, 0) \
                and table not in columns:
            continue
        if table not in columns:
            return f"no {table} table"
        if lacking := sorted(needed - columns[table]):
            return f"the {table} table has no {', '.join(lacking)} column"
    return None


def schema_problem(schema: object) -> str | None:
    """Why a file's schema version is not this rnn-ime's: None (this one, or an older one it
    migrates), "newer", or what is damaged."""
    if schema == str(SCHEMA_VERSION) or schema in MIGRATES_FROM:
        return None
    if isinstance(schema, str) and schema.isascii() and schema.isdigit() \
            and int(schema) > SCHEMA_VERSION:
        return "newer"
    return "no schema version" if schema is None else f"schema version {schema!r} is not one"


def parse_clock(value: object) -> float:
    """The word clock as the meta table holds it ("123.0") → 123.0; ValueError naming what is
    wrong otherwise."""
    if value is None:
        raise ValueError("no clock in its meta table")
    try:
        clock = float(value) if isinstance(value, str | int | float) else math.nan
    except ValueError:
        clock = math.nan
    if not 0.0 <= clock <= MAX_CLOCK:  # NaN fails too
        raise ValueError(f"clock {str(value)[:40]!r} is not a count of words")
    return clock


def _shown(value: object) -> str:
    return repr(value)[:40]


def word_row_problem(row: tuple) -> str | None:
    """What is wrong with a row of the words table (word, count, seen, reading, made), or
    None."""
    word, count, seen, reading, made = row
    if type(word) is not str:
        return f"a word {_shown(word)} that is not text"
    if not is_number(count) or not 0 <= count <= MAX_COUNT:
        return f"word {word!r} has count {_shown(count)}, not a number from 0 to {MAX_COUNT:g}"
    if not is_number(seen):
        return f"word {word!r} has time {_shown(seen)}, not a number"
    if reading is not None and type(reading) is not str:
        return f"word {word!r} has reading {_shown(reading)}, not text"
    if type(made) is not int:
        return f"word {word!r} has made {_shown(made)}, not 0 or 1"
    return None


def trigram_row_problem(row: tuple) -> str | None:
    """What is wrong with a row of the trigrams table (prev2, prev, word, count, seen), or
    None."""
    prev2, *pair = row
    if type(prev2) is not str:
        return f"a triple starting {_shown(prev2)} that is not text"
    return bigram_row_problem(tuple(pair))


def bigram_row_problem(row: tuple) -> str | None:
    """What is wrong with a row of the bigrams table (prev, word, count, seen), or None."""
    prev, word, count, seen = row
    if type(prev) is not str or type(word) is not str:
        return f"a pair {_shown(prev)}, {_shown(word)} that is not text"
    if not is_number(count) or not 0 <= count <= MAX_COUNT:
        return (f"pair {prev!r} {word!r} has count {_shown(count)}, not a number from 0 to "
                f"{MAX_COUNT:g}")
    if not is_number(seen):
        return f"pair {prev!r} {word!r} has time {_shown(seen)}, not a number"
    return None


def path_problem(path: Path, create: bool = True, make_dirs: bool = True) -> str | None:
    """Why a user file cannot be opened at `path`, or None: it is a directory; there is no file
    (and it may not be created); its directory is missing (and may not be made)."""
    if path.is_dir():
        return "is a directory, not a user file"
    if path.exists():
        return None
    if not create:
        return "no such user file"
    parent = path.parent
    if not make_dirs and not parent.is_dir():
        state = "is not a directory" if parent.exists() else "does not exist"
        return f"its directory {parent} {state}; create it or choose another --user-db"
    return None


class UserStore:
    """One profile's SQLite file."""

    def __init__(self, path: str | Path, create: bool = True, make_dirs: bool = True) -> None:
        """`create`: make the file when there is none; `make_dirs`: and the directories above it
        (the default location's, a server's profiles; not a path the user typed, where a
        missing directory is a mistake)."""
        self.path = Path(path)
        if (problem := path_problem(self.path, create, make_dirs)) is not None:
            raise UserStoreError(f"{self.path}: {problem}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S,
                                      isolation_level=None, check_same_thread=False)
            self.checkpointer = Checkpointer(self.path)
            # one connection, written by the caller's thread and the adaptation's
            self.writing = threading.RLock()
            self._check_and_create()
        except sqlite3.DatabaseError as error:  # OperationalError too
            raise_if_busy(error, self.path)
            raise UserStoreError(f"{self.path}: not a user file of rnn-ime ({error}); move it "
                                 "away or choose another --user-db") from None
        except UserStoreError:
            self.db.close()
            raise
        except OSError as error:
            raise UserStoreError(f"{self.path}: cannot open ({error.strerror or error})") from None

    def _check_and_create(self) -> None:
        tables = {row[0] for row in self.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "meta" not in tables:
            raise UserStoreError(f"{self.path}: an SQLite file, but not a user file of rnn-ime "
                                 "(no meta table); choose another --user-db")
        schema = self._check(tables) if tables else None  # before anything is written to it
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across kill -9
        self.db.execute("PRAGMA secure_delete = ON")  # deleted rows are zeroed, not left behind
        self.db.execute(f"PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES}")
        if schema == str(SCHEMA_VERSION):
            return
        with self.transaction():  # a new file, or one of an older schema: the tables it lacks
            for statement in filter(str.strip, _SCHEMA.split(";")):
                self.db.execute(statement)
            self.db.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)", [
                ("application", APPLICATION), ("clock", "0")])
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)",
                            (str(SCHEMA_VERSION),))

    def _check(self, tables: set[str]) -> str:
        """An existing file: ours, of this schema or one it migrates, with every table and the
        clock; its schema."""
        meta = dict(self.db.execute("SELECT key, value FROM meta"))
        if meta.get("application") != APPLICATION:
            raise UserStoreError(f"{self.path}: an SQLite file of another program; choose "
                                 "another --user-db")
        problem = schema_problem(meta.get("schema"))
        if problem == "newer":
            raise UserStoreError(f"{self.path}: user file schema {meta.get('schema')}, this "
                                 f"rnn-ime reads {SCHEMA_VERSION}; upgrade rnn-ime")
        if problem is None:
            problem = missing_part({table: {row[1] for row in self.db.execute(
                f"PRAGMA table_info({table})")} for table in tables & COLUMNS.keys()},
                meta["schema"])
        if problem is not None:
            raise damaged(self.path, problem)
        self.clock()
        return meta["schema"]

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.writing:
            try:
                self.db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                raise_if_busy(error, self.path)
                raise UserStoreError(f"{self.path}: cannot write ({error})") from None
            try:
                yield self.db
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:  # a COMMIT that failed leaves it open too
                    self.db.execute("ROLLBACK")
                raise
        self.checkpointer.committed()

    def data_version(self) -> int:
        """Changes when another connection (another process) has written."""
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    # ------------------------------------------------------------ reading everything
    # Everything read is checked: a file another program (or a disk fault) changed gives a
    # one-line UserStoreError naming what is damaged, never a TypeError further on.
    def _select(self, query: str, what: str, parameters: tuple = ()) -> list[tuple]:
        try:
            return self.db.execute(query, parameters).fetchall()
        except sqlite3.DatabaseError as error:  # OperationalError too
            raise_if_busy(error, self.path)
            raise damaged(self.path, f"cannot read its {what} ({error})") from None

    def clock(self) -> float:
        row = self._select("SELECT value FROM meta WHERE key = 'clock'", "clock")
        try:
            return parse_clock(row[0][0] if row else None)
        except ValueError as error:
            raise damaged(self.path, str(error)) from None

    def words(self) -> list[tuple[str, float, float, str | None, int]]:
        return self._checked_rows(
            "SELECT word, count, seen, reading, made FROM words", "words", word_row_problem,
            f"typeof(word) != 'text' OR {_BAD_COUNT} OR {_BAD_SEEN} "
            "OR (reading IS NOT NULL AND typeof(reading) != 'text') "
            "OR typeof(made) != 'integer'")

    def bigrams(self) -> list[tuple[str, str, float, float]]:
        return self._checked_rows(
            "SELECT prev, word, count, seen FROM bigrams", "pairs of words", bigram_row_problem,
            f"typeof(prev) != 'text' OR typeof(word) != 'text' OR {_BAD_COUNT} OR {_BAD_SEEN}")

    def trigrams(self) -> list[tuple[str, str, str, float, float]]:
        return self._checked_rows(
            "SELECT prev2, prev, word, count, seen FROM trigrams", "triples of words",
            trigram_row_problem, "typeof(prev2) != 'text' OR typeof(prev) != 'text' "
            f"OR typeof(word) != 'text' OR {_BAD_COUNT} OR {_BAD_SEEN}")

    def _checked_rows(self, query: str, what: str, problem_of, bad: str) -> list[tuple]:
        """The rows of `query`, each checked: SQLite looks for a `bad` row first (a profile
        of 100k words opens in a fraction of a second), and only when it finds one does Python
        go through the rows to say which is wrong and how."""
        rows = self._select(query, what)
        if self._select(f"{query} WHERE {bad} LIMIT 1", what):
            for row in rows:
                if (problem := problem_of(row)) is not None:
                    raise damaged(self.path, problem)
        return rows

    def last_commit(self) -> tuple[int, float, str] | None:
        """(id, clock, the lesson's JSON) of the newest commit."""
        rows = self._select("SELECT id, clock, lesson FROM commits ORDER BY id DESC LIMIT 1",
                            "commits")
        if not rows:
            return None
        commit_id, clock, lesson = rows[0]
        if type(commit_id) is not int or not is_number(clock) or type(lesson) is not str:
            raise damaged(self.path, f"commit {_shown(commit_id)} is not a number, a time and "
                                     "a lesson")
        return commit_id, clock, lesson

    # ------------------------------------------------------------ the model's adaptation
    def adaptation(self, model: str) -> tuple[int, bytes] | None:
        """(steps, weights blob) saved for the base model `model`, or None."""
        with self.writing:
            rows = self._select("SELECT steps, weights FROM adaptation WHERE model = ?",
                                "model adaptation", (model,))
        if not rows:
            return None
        steps, blob = rows[0]
        if type(steps) is not int or steps < 0 or type(blob) is not bytes:
            raise damaged(self.path, "its model adaptation is not a count and weights")
        return steps, blob

    def save_adaptation(self, model: str, steps: int, weights: bytes, forgets: int) -> bool:
        """Keep `weights` for the base model `model` (and the newest KEEP_ADAPTATIONS), unless
        a word was forgotten since they started (`forgets`, as `forgets()` said then): whether
        they were saved."""
        try:
            with self.transaction() as db:
                if self.forgets() != forgets:
                    return False
                db.execute("INSERT OR REPLACE INTO adaptation VALUES (?, ?, ?, ?)",
                           (model, steps, time.time(), weights))
                db.execute("DELETE FROM adaptation WHERE model NOT IN (SELECT model FROM "
                           "adaptation ORDER BY saved DESC LIMIT ?)", (KEEP_ADAPTATIONS,))
        except sqlite3.Error as error:
            raise UserStoreError(f"{self.path}: could not save the model adaptation "
                                 f"({error})") from None
        # the weights are megabytes of log: copied into the file now, in the saving thread's
        # pause, not by SQLite's automatic checkpoint inside a later commit of the typist's
        with self.writing, suppress(sqlite3.Error):
            self.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        return True

    def forgets(self) -> int:
        """How many forgets the file has seen (a forget resets the model's adaptation, in
        every process that has the profile open)."""
        with self.writing:
            rows = self._select("SELECT value FROM meta WHERE key = 'forgets'", "meta")
        value = rows[0][0] if rows else "0"
        return int(value) if isinstance(value, str) and value.isdigit() else 0

    def clear_adaptation(self) -> None:
        try:
            with self.transaction() as db:
                db.execute("DELETE FROM adaptation")
        except sqlite3.Error as error:
            raise UserStoreError(f"{self.path}: could not write ({error})") from None

    def adaptation_steps(self) -> int:
        """The steps of the newest saved adaptation (0: none)."""
        with self.writing:
            rows = self._select("SELECT steps FROM adaptation ORDER BY saved DESC LIMIT 1",
                                "model adaptation")
        return rows[0][0] if rows and type(rows[0][0]) is int and rows[0][0] > 0 else 0

    def scrub(self) -> bool:
        """Copy the write-ahead log into the file and empty it, so that rows just deleted
        (zeroed in the file by secure_delete) are not left in the log's older pages either;
        whether it could (another process reading the file keeps the log until it lets go,
        and the last connection to close empties it)."""
        with self.writing:
            try:
                busy = self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            except sqlite3.Error:
                return False
        return busy == 0

    def close(self) -> None:
        self.checkpointer.close()
        self.db.close()  # the last connection to close checkpoints what is left


class Checkpointer:
    """Copies the write-ahead log into the database file once CHECKPOINT_IDLE_S has passed
    without a commit, in a daemon thread with its own connection: a PASSIVE checkpoint, which
    waits for no one and no one waits for; with no commit running alongside, it copies the
    whole log, and the next commit starts the log afresh. Durability does not depend on it: a
    commit is safe once in the log."""

    def __init__(self, path: Path, idle_s: float = CHECKPOINT_IDLE_S) -> None:
        # resolved now: a later chdir must not point the checkpoint at another file
        self.uri = f"{Path(path).resolve().as_uri()}?mode=rw"  # rw: never creates the file
        self.idle_s = idle_s
        self.wake = threading.Condition()
        self.last_commit: float | None = None  # monotonic time of the commit not yet copied
        self.stopping = False
        self.thread: threading.Thread | None = None
        self.done = 0  # checkpoints made

    def committed(self) -> None:
        with self.wake:
            waiting_for_a_commit = self.last_commit is None
            self.last_commit = time.monotonic()
            if self.thread is None:
                thread = threading.Thread(target=self._run, name="rnn-ime-checkpoint",
                                          daemon=True)
                try:
                    thread.start()
                except RuntimeError:  # no thread to be had: SQLite's own checkpoint remains
                    return
                self.thread = thread
            elif waiting_for_a_commit:  # else it wakes at the pause it waits for, and waits on
                self.wake.notify()

    def _wait_for_pause(self) -> bool:
        """Wait until the last commit is idle_s old; False when closing."""
        with self.wake:
            while not self.stopping:
                if self.last_commit is None:
                    self.wake.wait()
                    continue
                left = self.last_commit + self.idle_s - time.monotonic()
                if left <= 0:
                    self.last_commit = None
                    return True
                self.wake.wait(left)
            return False

    def _run(self) -> None:
        while self._wait_for_pause():
            try:  # a connection of its own for each (an idle thread holds no file open)
                db = sqlite3.connect(self.uri, uri=True, timeout=BUSY_TIMEOUT_S,
                                     isolation_level=None)
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.done += 1
                finally:
                    db.close()
            except sqlite3.Error:
                pass  # only a copy: the next pause, or the last close, makes it

    def close(self) -> None:
        with self.wake:
            self.stopping = True
            self.wake.notify()
            thread, self.thread = self.thread, None
        if thread is not None:
            thread.join()
