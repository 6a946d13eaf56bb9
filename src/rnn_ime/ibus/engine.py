"""The GObject side: an IBus.Engine that feeds key events to a `Machine` and draws its `View`,
and the process that offers the engine to ibus-daemon.

Importing this module loads IBus (`gir.load`), so it is imported only by `rnn-ime ibus`; a
missing IBus is a one-line IBusMissing.

    ibus-daemon ──CreateEngine──▶ IBus.Factory ──"create-engine"──▶ RnnImeEngine(Machine)
                ──ProcessKeyEvent──▶ RnnImeEngine ──key()──▶ Machine ──Reaction──▶
                commit_text / update_preedit_text / update_lookup_table ──▶ the application

Each input context (a text field of an application) gets its own engine and Machine (its own
composition and context); they share one ranker (the model) and one learner. Everything runs
on GLib's main loop: a key is decoded before the next one is read.
"""

from __future__ import annotations

import gc
import itertools
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError, RnnImeError
from .component import INFO, EngineInfo
from .gir import load
from .learning import Learner
from .machine import PAGE_SIZE, Machine, Ranker, Reaction, View

IBus, GLib, GObject = load()

log = logging.getLogger("rnn_ime.ibus")
ENGINE_PATH = "/org/freedesktop/IBus/Engine/RnnIme/{}"
MODE_PROPERTY = "InputMode"
MODE_LABEL = {True: "中", False: "英"}


class IBusUnreachable(RnnImeError):
    """No ibus-daemon answers, or it refuses the engine."""


class RnnImeEngine(IBus.Engine):
    """One input context's engine: IBus events → the Machine → IBus calls."""

    __gtype_name__ = "RnnImeEngine"

    def __init__(self, machine: Machine, **properties) -> None:
        super().__init__(**properties)
        self.machine = machine
        self._preedit = ""
        self._table: tuple = ((), 0, "")
        self._mode = IBus.Property(key=MODE_PROPERTY, prop_type=IBus.PropType.NORMAL,
                                   label=IBus.Text.new_from_string(MODE_LABEL[True]),
                                   symbol=IBus.Text.new_from_string(MODE_LABEL[True]),
                                   tooltip=IBus.Text.new_from_string("Chinese / English "
                                                                     "(Shift)"),
                                   sensitive=True, visible=True)
        self._properties = IBus.PropList()
        self._properties.append(self._mode)
        self._chinese = True

    # ------------------------------------------------------------ the machine, then the view
    def _run(self, event: Callable[[], Reaction]) -> bool:
        try:
            reaction = event()
        except Exception:  # a bug must not take the keyboard down: log it, start afresh
            log.exception("the engine failed on an event; the composition is dropped")
            try:
                self.machine.reset()
            except Exception:
                log.exception("and could not reset")
            reaction = Reaction(False, (), View(chinese=self.machine.chinese))
        for text in reaction.commits:
            self.commit_text(IBus.Text.new_from_string(text))
        self._show(reaction.view)
        return reaction.handled

    def _show(self, view: View) -> None:
        if view.preedit != self._preedit:
            text = IBus.Text.new_from_string(view.preedit)
            if view.preedit:
                text.append_attribute(IBus.AttrType.UNDERLINE, IBus.AttrUnderline.SINGLE, 0,
                                      len(view.preedit))
            self.update_preedit_text(text, len(view.preedit), bool(view.preedit))
            self._preedit = view.preedit
        table = (view.entries, view.page, view.kind)
        if table != self._table:
            if view.kind:
                self.update_lookup_table(lookup_table(view), True)
            else:
                self.hide_lookup_table()
            self._table = table
        if view.chinese != self._chinese:
            self._chinese = view.chinese
            label = IBus.Text.new_from_string(MODE_LABEL[view.chinese])
            self._mode.set_label(label)
            self._mode.set_symbol(label)
            self.update_property(self._mode)

    # ------------------------------------------------------------ IBus's virtual methods
    def do_process_key_event(self, keyval: int, keycode: int, state: int) -> bool:
        return self._run(lambda: self.machine.key(keyval, state))

    def do_candidate_clicked(self, index: int, button: int, state: int) -> None:
        self._run(lambda: self.machine.pick(index))

    def do_page_up(self) -> None:
        self._run(lambda: self.machine.page(-1))

    def do_page_down(self) -> None:
        self._run(lambda: self.machine.page(+1))

    def do_cursor_up(self) -> None:
        self._run(lambda: self.machine.page(-1))

    def do_cursor_down(self) -> None:
        self._run(lambda: self.machine.page(+1))

    def do_focus_in(self) -> None:
        self.register_properties(self._properties)
        self._run(self.machine.reset)
        self.get_surrounding_text()  # tells the client to send it, from now on

    def do_focus_out(self) -> None:
        self._run(self.machine.reset)

    def do_reset(self) -> None:
        self._run(self.machine.reset)

    def do_enable(self) -> None:
        self.get_surrounding_text()

    def do_disable(self) -> None:
        self._run(self.machine.reset)

    def do_set_surrounding_text(self, text, cursor_pos: int, anchor_pos: int) -> None:
        IBus.Engine.do_set_surrounding_text(self, text, cursor_pos, anchor_pos)
        self.machine.surrounding(text.get_text(), cursor_pos, anchor_pos)

    def do_set_content_type(self, purpose: int, hints: int) -> None:
        self.machine.set_password(purpose in (IBus.InputPurpose.PASSWORD,
                                              IBus.InputPurpose.PIN))

    def do_property_activate(self, name: str, state: int) -> None:
        if name == MODE_PROPERTY:
            self._run(self.machine.toggle)


def lookup_table(view: View):
    """The table IBus shows: every entry, the cursor on the first of the page on screen
    (visible for candidates: Space commits it; hidden for suggestions)."""
    table = IBus.LookupTable.new(PAGE_SIZE, 0, view.kind == "candidates", False)
    for entry in view.entries:
        table.append_candidate(IBus.Text.new_from_string(entry))
    table.set_cursor_pos(view.page * PAGE_SIZE)
    return table


def component(info: EngineInfo = INFO, command: str = ""):
    """IBus.Component with the engine, as `component.component_xml` describes it."""
    found = IBus.Component.new(info.component, info.description, info.version, info.license,
                               info.author, info.homepage, command, info.textdomain)
    engine = IBus.EngineDesc(name=info.name, longname=info.long_name,
                             description=info.description, language=info.language,
                             license=info.license, author=info.author, layout=info.layout,
                             symbol=info.symbol, icon="", rank=0)
    found.add_engine(engine)
    return found


def setup_logging(path: Path | None) -> None:
    """The engine's log: `path` (appended; its directory made), else stderr."""
    try:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.StreamHandler(sys.stderr) if path is None \
            else logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the log {path} ({exc.strerror or exc})") from None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("rnn_ime")
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def connect():
    """The bus of the running ibus-daemon (IBus.Bus), or a one-line IBusUnreachable."""
    IBus.init()
    bus = IBus.Bus()
    if not bus.is_connected():
        where = IBus.get_address() or "its usual address"
        raise IBusUnreachable(f"cannot reach ibus-daemon at {where}; start it (ibus-daemon "
                              "-drx) or set IBUS_ADDRESS")
    return bus


def serve(bus, ranker: Ranker, learner: Learner, started_by_ibus: bool = False,
          info: EngineInfo = INFO, say: Callable[[str], None] = print) -> None:
    """Offer the engine on `bus` (`connect()`) and serve it until ibus-daemon goes away (or
    SIGINT/SIGTERM). By hand: register the component on the bus (nothing installed); started
    by ibus-daemon (--ibus): take the component's bus name, which it waits for."""
    loop = GLib.MainLoop()
    engines: dict[str, RnnImeEngine] = {}
    numbers = itertools.count(1)

    def create(_factory, name: str):
        if name != info.name:
            return None
        path = ENGINE_PATH.format(next(numbers))
        engine = RnnImeEngine(Machine(ranker, learner), engine_name=name, object_path=path,
                              connection=bus.get_connection())
        engines[path] = engine
        engine.connect("destroy", lambda _engine: engines.pop(path, None))
        log.info("engine %s created", path)
        return engine

    factory = IBus.Factory.new(bus.get_connection())
    factory.connect("create-engine", create)
    bus.connect("disconnected", lambda _bus: loop.quit())
    if started_by_ibus:
        if bus.request_name(info.component, 0) != 1:  # 1: the primary owner
            raise IBusUnreachable(f"another process already serves {info.component}")
    elif not bus.register_component(component(info)):
        raise IBusUnreachable("ibus-daemon refused to register the engine")
    for number in (signal.SIGINT, signal.SIGTERM):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, number, _quit, loop)
    # what is loaded now lives as long as the engine: out of the collector's sight, or a
    # full collection walks it all in the middle of a keystroke
    gc.collect()
    gc.freeze()
    say(f"rnn-ime: IBus engine {info.name} ({info.long_name}) ready on "
        f"{IBus.get_address() or 'the ibus bus'}")
    log.info("engine ready (%s)", "started by ibus-daemon" if started_by_ibus else "by hand")
    loop.run()
    log.info("ibus-daemon went away or a signal came: the engine stops")


def _quit(loop) -> bool:
    loop.quit()
    return False
