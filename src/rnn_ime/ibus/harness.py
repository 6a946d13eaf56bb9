"""A private IBus, for tests and benchmarks: a D-Bus session bus and an ibus-daemon of their
own (no X server, no panel, no dconf), the engine started by hand on it, and a client that
types into an input context through IBus's own client API and records what comes back.

    with private_ibus(tmp) as ibus:                    # dbus-daemon + ibus-daemon
        engine = start_engine(model, ibus.env)          # rnn-ime ibus --model …
        os.environ.update(ibus.env)                     # before the first IBus.Bus()
        client = Client()
        client.use_engine("rnn-ime")
        client.type("nihao"); client.key(keys.SPACE)
        client.wait(lambda: client.commits)

IBus.Bus is one per process, and it reads IBUS_ADDRESS when it is first made: one private
ibus-daemon per process.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .gir import IBusMissing, load

DAEMON_FLAGS = ("--panel=disable", "--emoji-extension=disable", "--config=disable",
                "--cache=none")


@dataclass
class PrivateIBus:
    root: Path
    env: dict[str, str]  # IBUS_ADDRESS and DBUS_SESSION_BUS_ADDRESS, for clients and engines
    processes: list[subprocess.Popen] = field(default_factory=list)
    user_db: Path | None = None  # the profile the engine learns into, when a test sets one

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop_process(process)


def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def missing() -> str | None:
    """Why a private IBus cannot run here (None when it can)."""
    for program in ("dbus-daemon", "ibus-daemon"):
        if shutil.which(program) is None:
            return f"{program} is not installed (apt-get install ibus dbus)"
    try:
        load()
    except IBusMissing as exc:
        return str(exc)
    return None


def _wait_for(ready: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not start within {timeout:.0f} s")
        time.sleep(0.05)


def start_ibus(root: Path, components: Path | None = None, timeout: float = 20) -> PrivateIBus:
    """dbus-daemon and ibus-daemon with their files under `root`; `components`: the daemon's
    IBUS_COMPONENT_PATH (default: an empty directory, so that it starts no engine of the
    system's)."""
    root.mkdir(parents=True, exist_ok=True)
    ibus = PrivateIBus(root, {})
    try:
        dbus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        ibus.processes.append(dbus)
        address = dbus.stdout.readline().strip() if dbus.stdout else ""
        if not address:
            raise RuntimeError("dbus-daemon printed no address")
        socket = root / "ibus.sock"
        socket.unlink(missing_ok=True)
        ibus.env = {"IBUS_ADDRESS": f"unix:path={socket}", "DBUS_SESSION_BUS_ADDRESS": address}
        if components is None:
            components = root / "components"
            components.mkdir(exist_ok=True)
        daemon_env = {**os.environ, **ibus.env, "IBUS_COMPONENT_PATH": str(components),
                      "XDG_CONFIG_HOME": str(root / "config"),
                      "XDG_CACHE_HOME": str(root / "cache")}
        with open(root / "ibus-daemon.log", "wb") as log:
            ibus.processes.append(subprocess.Popen(
                ["ibus-daemon", *DAEMON_FLAGS, f"--address={ibus.env['IBUS_ADDRESS']}"],
                env=daemon_env, stdout=log, stderr=subprocess.STDOUT))
        _wait_for(lambda: socket.exists() or ibus.processes[-1].poll() is not None, timeout,
                  "ibus-daemon")
        if ibus.processes[-1].poll() is not None:
            raise RuntimeError("ibus-daemon exited: "
                               + (root / "ibus-daemon.log").read_text(errors="replace")[-500:])
    except BaseException:
        ibus.stop()
        raise
    return ibus


@contextlib.contextmanager
def private_ibus(root: Path, components: Path | None = None) -> Iterator[PrivateIBus]:
    ibus = start_ibus(root, components)
    try:
        yield ibus
    finally:
        ibus.stop()


def start_engine(model: Path, env: dict[str, str], options: tuple[str, ...] = (),
                 timeout: float = 120) -> subprocess.Popen:
    """`rnn-ime ibus --model MODEL` on the private IBus, once it says it is ready (its output
    goes on being read, so that it never blocks on a full pipe)."""
    process = subprocess.Popen([sys.executable, "-m", "rnn_ime", "ibus", "--model", str(model),
                                *options], env={**os.environ, **env}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in process.stdout or ():
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            line = None
        if line is None:
            stop_process(process)
            raise RuntimeError("the engine did not start:\n" + "".join(seen))
        seen.append(line)
        if " ready on " in line:
            return process


class Client:
    """An input context of our own, as an application has one: capabilities of a text field
    with preedit and a lookup table, focused; what the engine sends is recorded with the time
    it arrived."""

    def __init__(self, name: str = "rnn-ime test", surrounding: bool = False) -> None:
        IBus, GLib, _ = load()
        self.IBus, self.GLib = IBus, GLib
        IBus.init()
        self.bus = IBus.Bus()
        if not self.bus.is_connected():
            raise RuntimeError(f"cannot reach ibus-daemon at {IBus.get_address()}")
        self.ic = self.bus.create_input_context(name)
        caps = IBus.Capabilite
        wanted = caps.PREEDIT_TEXT | caps.AUXILIARY_TEXT | caps.LOOKUP_TABLE | caps.FOCUS
        self.ic.set_capabilities(wanted | (caps.SURROUNDING_TEXT if surrounding else 0))
        self.commits: list[str] = []
        self.preedits: list[tuple[str, bool]] = []
        self.tables: list[tuple[float, list[str], int, bool]] = []  # (time, entries, cursor,
        # visible); hidden: ([], 0, False)
        self.ic.connect("commit-text", lambda _ic, text: self.commits.append(text.get_text()))
        self.ic.connect("update-preedit-text", self._preedit)
        self.ic.connect("hide-preedit-text", lambda _ic: self.preedits.append(("", False)))
        self.ic.connect("update-lookup-table", self._table)
        self.ic.connect("hide-lookup-table",
                        lambda _ic: self.tables.append((time.perf_counter(), [], 0, False)))
        self.ic.focus_in()

    def _preedit(self, _ic, text, _cursor: int, visible: bool) -> None:
        self.preedits.append((text.get_text(), visible))

    def _table(self, _ic, table, visible: bool) -> None:
        entries = [table.get_candidate(i).get_text()
                   for i in range(table.get_number_of_candidates())]
        self.tables.append((time.perf_counter(), entries, table.get_cursor_pos(), visible))

    # ------------------------------------------------------------ driving it
    def use_engine(self, name: str, timeout: float = 30) -> None:
        self.ic.set_engine(name)
        deadline = time.monotonic() + timeout
        while True:
            engine = self.ic.get_engine()
            if engine is not None and engine.get_name() == name:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"ibus-daemon did not switch to {name}")
            self.pump(0.05)
        self.pump(0.2)  # the engine's first updates (focus in)
        self.clear()

    def key(self, keyval: int, state: int = 0) -> bool:
        """Press (and, for a key that is not a modifier, release) a key; whether the engine
        used it up."""
        handled = self.ic.process_key_event(keyval, 0, state)
        self.ic.process_key_event(keyval, 0, state | self.IBus.ModifierType.RELEASE_MASK)
        return handled

    def type(self, text: str) -> None:
        for char in text:
            self.key(ord(char))

    def set_surrounding(self, text: str, cursor: int, timeout: float = 30) -> None:
        """The text around the caret, as a toolkit sends it (once the engine has asked)."""
        self.wait(self.ic.needs_surrounding_text, timeout)
        self.ic.set_surrounding_text(self.IBus.Text.new_from_string(text), cursor, cursor)

    def clear(self) -> None:
        self.pump(0)
        self.commits.clear()
        self.preedits.clear()
        self.tables.clear()

    def pump(self, seconds: float) -> None:
        """Run the main loop for `seconds` (0: what is pending)."""
        context = self.GLib.MainContext.default()
        deadline = time.monotonic() + seconds
        while True:
            while context.pending():
                context.iteration(False)
            if time.monotonic() >= deadline:
                return
            time.sleep(0.002)

    def wait(self, ready: Callable[[], bool], timeout: float = 30) -> None:
        """Run the main loop until `ready()`, or raise TimeoutError."""
        context = self.GLib.MainContext.default()
        fired = []
        source = self.GLib.timeout_add(int(timeout * 1000), lambda: fired.append(1) or False)
        try:
            while not ready():
                if fired:
                    raise TimeoutError(f"nothing came from the engine in {timeout:.0f} s")
                context.iteration(True)
        finally:
            if not fired:
                self.GLib.source_remove(source)

    def last_table(self) -> tuple[list[str], int, bool] | None:
        return self.tables[-1][1:] if self.tables else None
