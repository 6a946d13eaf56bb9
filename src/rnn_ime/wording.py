"""Counts in messages, in the number they need: `1 word`, `2 words`, `1,000 bad lines`."""

from __future__ import annotations


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """`count` with its noun, `singular` for exactly one, else `plural` (singular + "s")."""
    noun = singular if count == 1 else (plural or f"{singular}s")
    return f"{count:,} {noun}"
