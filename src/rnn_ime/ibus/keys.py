"""The keys and modifier bits the engine looks at, as plain numbers (X11 keysyms and IBus's
modifier mask), so that the state machine needs no GObject. tests/test_ibus.py checks them
against IBus's own constants where IBus is installed."""

from __future__ import annotations

# ---------------------------------------------------------------- keysyms
SPACE = 0x020
APOSTROPHE = 0x027
MINUS = 0x02D
EQUAL = 0x03D
BACKSPACE = 0xFF08
TAB = 0xFF09
RETURN = 0xFF0D
ESCAPE = 0xFF1B
HOME = 0xFF50
LEFT = 0xFF51
UP = 0xFF52
RIGHT = 0xFF53
DOWN = 0xFF54
PAGE_UP = 0xFF55
PAGE_DOWN = 0xFF56
END = 0xFF57
KP_ENTER = 0xFF8D
KP_0 = 0xFFB0
SHIFT_L = 0xFFE1
SHIFT_R = 0xFFE2
DELETE = 0xFFFF

# ---------------------------------------------------------------- IBus.ModifierType bits
SHIFT_MASK = 1 << 0
LOCK_MASK = 1 << 1
CONTROL_MASK = 1 << 2
MOD1_MASK = 1 << 3  # Alt
MOD4_MASK = 1 << 6  # Super, on most X keymaps
SUPER_MASK = 1 << 26
HYPER_MASK = 1 << 27
META_MASK = 1 << 28
RELEASE_MASK = 1 << 30
# a key pressed with any of these is a shortcut of the application's, never typing
COMMAND_MASK = CONTROL_MASK | MOD1_MASK | MOD4_MASK | SUPER_MASK | HYPER_MASK | META_MASK


def char_of(keyval: int) -> str:
    """The printable ASCII character a keysym types ('' for any other key): keysyms of
    0x20–0x7e are their characters."""
    return chr(keyval) if 0x20 <= keyval <= 0x7E else ""


def digit_of(keyval: int) -> int | None:
    """1–9 for the digit keys of the main row or the keypad; None for anything else (0
    included: it picks nothing)."""
    if 0x31 <= keyval <= 0x39:
        return keyval - 0x30
    if KP_0 + 1 <= keyval <= KP_0 + 9:
        return keyval - KP_0
    return None
