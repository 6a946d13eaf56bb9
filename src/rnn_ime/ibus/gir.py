"""IBus's Python bindings (PyGObject's `gi` and IBus's typelib), found or explained.

The project's .venv has no `gi`: PyGObject is built against the system's GLib, so it comes
from Debian (python3-gi), made for Debian's python3 — the same 3.11 as the venv. When `import
gi` fails, `gi` alone is loaded from Debian's dist-packages directory; that directory is not
put on sys.path, so none of Debian's other packages joins or shadows the venv's.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from ..errors import RnnImeError

DIST_PACKAGES = Path("/usr/lib/python3/dist-packages")
INSTALL_HINT = "install ibus gir1.2-ibus-1.0 python3-gi (sudo apt-get install …)"


class IBusMissing(RnnImeError):
    """PyGObject, IBus or its introspection data is not installed."""


def _import_gi() -> ModuleType:
    try:
        import gi

        return gi
    except ImportError:
        return gi_from(DIST_PACKAGES)


def gi_from(dist_packages: Path) -> ModuleType:
    """The `gi` package of `dist_packages`, imported as `gi` (only it: the directory does not
    go on sys.path)."""
    spec = importlib.machinery.PathFinder.find_spec("gi", [str(dist_packages)])
    if spec is None or spec.loader is None:
        raise IBusMissing(f"PyGObject (gi) is not installed; {INSTALL_HINT}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gi"] = module
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:
        del sys.modules["gi"]
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        raise IBusMissing(f"{dist_packages / 'gi'} does not load in Python {version} ({exc}); "
                          "run rnn-ime with the system's python3, or install PyGObject in "
                          "this environment") from None
    return module


@lru_cache(maxsize=1)
def load() -> tuple[ModuleType, ModuleType, ModuleType]:
    """(IBus, GLib, GObject) from gi.repository, or a one-line IBusMissing."""
    gi = _import_gi()
    try:
        gi.require_version("IBus", "1.0")
    except ValueError:
        raise IBusMissing(f"IBus's introspection data (IBus-1.0.typelib) is missing; "
                          f"{INSTALL_HINT}") from None
    from gi.repository import GLib, GObject, IBus

    return IBus, GLib, GObject
