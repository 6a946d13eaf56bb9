"""Named profiles in one directory, for a front end that serves several people (the server):

    DIR/user.db               the profile "default" (the file the CLI uses: default_path())
    DIR/profiles/NAME.db      any other NAME, of 1–32 letters, digits, _ and -

A profile opens on its first use and stays open (its counts in memory); at most `max_profiles`
are open at once: a new name past that closes the profile used least recently that no request
is using (all it learned is in its file already), and is refused (ProfileLimitError) only when
every open profile is in use at that moment. A name without a
file is an empty profile: reading it answers as the plain model and creates nothing; only
learning creates the file. Every use of a profile holds its own lock (`using`), and starts by
picking up what another process (the CLI) wrote to its file since.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, RnnImeError
from ..scoring import Scorer
from .model import MAX_WORDS, UserModel
from .profile import LearnOptions, Profile
from .store import UserStore, UserStoreBusyError, UserStoreError, default_path

NAME_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"
DEFAULT_NAME = "default"
MAX_PROFILES = 16
_NAME = re.compile(NAME_PATTERN)


class ProfileNameError(RnnImeError):
    """A profile name outside NAME_PATTERN."""


class ProfileLimitError(RnnImeError):
    """A new profile past `max_profiles`."""


class ProfileBusyError(RnnImeError):
    """A profile's file that cannot be read or written now (locked, read-only, disk full)."""


def default_dir() -> Path:
    """The directory of the default profile's file ($XDG_DATA_HOME/rnn-ime)."""
    return default_path().parent


@dataclass(frozen=True)
class ProfileDirConfig:
    directory: Path = field(default_factory=default_dir)  # --user-dir
    learn: bool = True  # --no-learn: False (profiles score, nothing updates them)
    max_profiles: int = MAX_PROFILES  # --max-profiles
    max_words: int = MAX_WORDS  # words one profile keeps
    adapt: bool = True  # --no-adapt: False (the counts only, no profile's copy of the model)


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ProfileNameError("a profile name is 1–32 letters, digits, _ or -")
    return name


def profile_path(directory: Path, name: str) -> Path:
    """The file of the profile `name` in `directory`."""
    if check_name(name) == DEFAULT_NAME:
        return directory / "user.db"
    return directory / "profiles" / f"{name}.db"


def profile_error(name: str, path: Path, error: UserStoreError) -> RnnImeError:
    """A store's error as a server says it: the profile's name, never the server's paths."""
    if isinstance(error, UserStoreBusyError):
        return ProfileBusyError(f"profile {name}: its file is locked by another process; "
                                "try again")
    reason = str(error).removeprefix(f"{path}: ").split(";")[0]
    return UserStoreError(f"profile {name}: its file cannot be used ({reason})")


@dataclass
class _Open:
    profile: Profile
    lock: threading.Lock
    users: int = 0  # requests between _get and the end of `using` (guarded by the directory)

    def close(self) -> list[str]:
        """Close the profile; what it has to say (a save its file refused)."""
        self.profile.close()
        return self.profile.notes


class ProfileDirectory:
    """The profiles in one directory, opened on demand, each behind its lock."""

    def __init__(self, base: Scorer, config: ProfileDirConfig | None = None,
                 note: Callable[[str], None] = lambda _: None) -> None:
        config = config if config is not None else ProfileDirConfig()
        if config.max_profiles < 1:
            raise ConfigError("--max-profiles must be at least 1")
        self.base, self.config, self.note = base, config, note
        self.directory = Path(config.directory)
        self._open: OrderedDict[str, _Open] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()  # guards _open

    def path_of(self, name: str) -> Path:
        return profile_path(self.directory, name)

    def names(self) -> list[str]:
        """The profiles open now."""
        with self._lock:
            return sorted(self._open)

    def _get(self, name: str, create: bool) -> _Open | None:
        evicted: list[tuple[str, _Open]] = []
        try:
            return self._open_or_get(name, create, evicted)
        finally:  # outside the lock: closing trains the adaptation on what waits, and saves
            for old_name, old in evicted:
                self._close(old_name, old)

    def _close(self, name: str, found: _Open) -> None:
        try:
            notes = found.close()
        except (UserStoreError, sqlite3.Error) as error:
            notes = [str(error)]
        for note in notes:
            self.note(f"profile {name}: {note}")

    def _open_or_get(self, name: str, create: bool, evicted: list[tuple[str, _Open]]
                     ) -> _Open | None:
        path = self.path_of(name)
        with self._lock:
            found = self._open.get(name)
            if found is not None:
                self._open.move_to_end(name)
                found.users += 1
                return found
            if not create and not path.exists():
                return None
            if len(self._open) >= self.config.max_profiles and not self._close_idle(evicted):
                raise ProfileLimitError(f"this server keeps at most {self.config.max_profiles} "
                                        "profiles open, and every one is in use right now; "
                                        "try again")
            try:
                model = UserModel(UserStore(path), max_words=self.config.max_words)
            except UserStoreError as error:
                raise profile_error(name, path, error) from None
            except sqlite3.Error as error:
                raise ProfileBusyError(f"profile {name}: its file cannot be read now "
                                       f"({error})") from None
            options = LearnOptions(use=True, learn=self.config.learn, adapt=self.config.adapt)
            profile = Profile(self.base, model, options)
            for note in profile.notes:
                self.note(f"profile {name}: {note}")
            found = self._open[name] = _Open(profile, threading.Lock(), users=1)
            return found

    def _close_idle(self, evicted: list[tuple[str, _Open]]) -> bool:
        """Take the least recently used profile no request is using out of the open ones
        (under self._lock), into `evicted` for the caller to close."""
        for name, found in self._open.items():
            if found.users == 0:
                del self._open[name]
                evicted.append((name, found))
                return True
        return False

    @contextmanager
    def using(self, name: str | None, create: bool = False) -> Iterator[Profile | None]:
        """The profile `name` under its lock, with another process's writes picked up; None for
        no name, or a name without a file unless `create`."""
        found = self._get(name, create) if name is not None else None
        if found is None:
            yield None
            return
        try:
            with found.lock:
                try:
                    found.profile.refresh()
                    yield found.profile
                except UserStoreError as error:  # busy, or damaged since it was opened
                    raise profile_error(name, self.path_of(name), error) from None
                except sqlite3.Error as error:
                    raise ProfileBusyError(f"profile {name}: its file cannot be used now "
                                           f"({error}); try again") from None
        finally:
            with self._lock:
                found.users -= 1

    def close(self) -> None:
        """Close every profile (each saves its model adaptation; one that fails says so and
        the others still close)."""
        with self._lock:
            for name, found in self._open.items():
                with found.lock:
                    self._close(name, found)
            self._open.clear()
