"""Errors a user can cause. The CLI prints their one-line message and exits with code 2."""


class RnnImeError(Exception):
    """Base class of every error caused by user input, files or options."""


class CorpusError(RnnImeError):
    """A corpus file is missing, unreadable, malformed (in strict mode) or empty."""


class DataDirError(RnnImeError):
    """A prepared data directory is missing files or does not match what uses it."""


class ModelError(RnnImeError):
    """A model directory is missing, incomplete or inconsistent with its vocabulary."""


class ConfigError(RnnImeError):
    """An option or combination of options that cannot work."""


def first_line(error: BaseException) -> str:
    """An error's first line, for a one-line message (torch's errors run over several)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
