"""The engine as IBus knows it: its name and description, the component XML that lets
ibus-daemon start it, and where that file must go.

IBus reads components only from the directories of $IBUS_COMPONENT_PATH, else from
/usr/share/ibus/component: ibus 1.5 has no per-user directory (the one under
$XDG_DATA_HOME is compiled out, `#if 0` in ibusregistry.c). So `rnn-ime ibus install` writes
the file among the user's data and prints the one command, run as root, that puts it where the
daemon looks.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..errors import ConfigError

SYSTEM_COMPONENTS = Path("/usr/share/ibus/component")
PACKAGE_DIR = Path(__file__).resolve().parent.parent  # this copy of rnn_ime
FILE_NAME = "rnn-ime.xml"


@dataclass(frozen=True)
class EngineInfo:
    """Everything IBus shows of the engine (the same for a component file and for an engine
    registered by hand)."""
    component: str = "org.freedesktop.IBus.RnnIme"  # the bus name its process takes
    name: str = "rnn-ime"
    long_name: str = "RNN 输入法"
    description: str = "Pinyin ranked by a recurrent neural network (rnn-ime)"
    language: str = "zh"
    layout: str = "us"
    symbol: str = "中"
    license: str = "MIT"
    author: str = "rnn-ime"
    homepage: str = ""
    textdomain: str = "rnn-ime"
    version: str = __version__


INFO = EngineInfo()


def exec_line(model: Path, options: Sequence[str] = (), python: str = sys.executable,
              package_dir: Path = PACKAGE_DIR) -> str:
    """The command ibus-daemon runs: this interpreter and this copy of rnn_ime, with the
    model's absolute path, `options` and --ibus. PYTHONPATH goes along when that is how
    rnn_ime was found (a source checkout run with PYTHONPATH=src)."""
    argv = [python, "-m", "rnn_ime", "ibus", "--model", str(model.resolve()), *options,
            "--ibus"]
    source = str(package_dir.parent)
    if source in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        argv = ["/usr/bin/env", f"PYTHONPATH={source}", *argv]
    return shlex.join(argv)


def component_xml(command: str, info: EngineInfo = INFO) -> str:
    """The component file (IBus parses <exec> like a shell: shlex's quoting suits it)."""
    root = ET.Element("component")
    for tag, text in (("name", info.component), ("description", info.description),
                      ("exec", command), ("version", info.version), ("author", info.author),
                      ("license", info.license), ("homepage", info.homepage),
                      ("textdomain", info.textdomain)):
        ET.SubElement(root, tag).text = text
    engine = ET.SubElement(ET.SubElement(root, "engines"), "engine")
    for tag, text in (("name", info.name), ("longname", info.long_name),
                      ("description", info.description), ("language", info.language),
                      ("license", info.license), ("author", info.author),
                      ("layout", info.layout), ("symbol", info.symbol), ("rank", "0")):
        ET.SubElement(engine, tag).text = text
    ET.indent(root)
    return "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n" + ET.tostring(root, "unicode") + "\n"


def search_path() -> list[Path]:
    """The directories ibus-daemon reads components from (its environment's, if it has the
    same as ours)."""
    env = os.environ.get("IBUS_COMPONENT_PATH")
    if env is not None:
        return [Path(p) for p in env.split(os.pathsep) if p]
    return [SYSTEM_COMPONENTS]


def default_out() -> Path:
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "rnn-ime" / "ibus" / FILE_NAME


@dataclass(frozen=True)
class Installed:
    path: Path
    copy_command: str | None  # run as root to put it where the daemon looks; None: it is


def install(model: Path, out: Path | None = None, options: Sequence[str] = (),
            python: str = sys.executable) -> Installed:
    """Write the component file for `model` (a model dir: checked here, not when IBus starts
    the engine at login) and the engine's `options`."""
    if not (model / "config.json").is_file():
        raise ConfigError(f"{model}: not a model dir (no config.json)")
    path = out or default_out()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(component_xml(exec_line(model, options, python)), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {path} ({exc.strerror or exc})") from None
    found = any(path.resolve().parent == d.resolve() for d in search_path())
    copy = None if found else \
        f"sudo cp {shlex.quote(str(path))} {SYSTEM_COMPONENTS}/{FILE_NAME}"
    return Installed(path, copy)


def ibus_installed() -> bool:
    return shutil.which("ibus-daemon") is not None
