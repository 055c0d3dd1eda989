"""The one error type users see, and how it is printed: one line, exit 2, no traceback."""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Iterable


class TrainkitError(Exception):
    """A problem the user can fix: bad config, bad data, missing files.

    Our own bugs are ordinary exceptions and keep their traceback.
    """

    exit_code = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(TrainkitError):
    """A config key or value is wrong; raised before anything heavy starts."""


class DataError(TrainkitError):
    """The data cannot be found or does not fit the task."""


class CheckpointError(TrainkitError):
    """A checkpoint is missing, corrupt or not trusted."""


class TrainingDiverged(TrainkitError):
    """The loss became NaN or infinite; exit 1 since the config itself was valid."""

    exit_code = 1


def debug_enabled() -> bool:
    """True when the user asked for tracebacks (`--debug` or TRAINKIT_DEBUG=1)."""
    return os.environ.get("TRAINKIT_DEBUG", "").lower() not in ("", "0", "false", "no")


def suggest(word: str, choices: Iterable[str]) -> str:
    """A ' did you mean X?' suffix for a near miss, or ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The nearest choice to a misspelt word, or None."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def report(err: BaseException) -> int:
    """Print a user error as one line on stderr and return its exit code."""
    message = " ".join(str(err).split("\n")) if not isinstance(err, TrainkitError) else str(err)
    print(f"trainkit: error: {message}", file=sys.stderr)
    return getattr(err, "exit_code", 2)
