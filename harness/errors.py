"""One exception family for errors a user can cause and fix.

The CLI renders an :class:`EntError` as one line (message, then the fix) and exits with code 2, without a
traceback unless ``-v`` is given. Anything else that escapes is a bug and is shown as such.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class EntError(Exception):
    """An error the user caused (bad name, bad flag, bad file) together with how to fix it."""

    exit_code = 2

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def one_line(self) -> str:
        text = self.message.rstrip(".")
        if not self.fix:
            return f"{text}."
        return f"{text}. {self.fix[0].upper()}{self.fix[1:]}"


class UnknownComponentError(EntError):
    """A component name (model, companion, metric, ...) that no installed plugin registered."""

    def __init__(self, kind: str, name: str, available: Iterable[str]) -> None:
        names = sorted(available)
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"Did you mean: {', '.join(close)}? " if close else ""
        super().__init__(
            f"Unknown {kind} '{name}'",
            f"{hint}({len(names)} available; `ent list-plugins --kind {kind}` lists them)",
        )
        self.kind = kind
        self.name = name


class InputFileError(EntError):
    """A file the user gave is missing or malformed; the message names the line or field."""


class PluginSpecError(EntError):
    """A plugin registered a spec that fails validation (raised at registration time)."""


class DuplicateComponentError(EntError):
    """Two plugins registered the same component name."""


class RunDirectoryError(EntError):
    """The run directory is in a state that forbids the requested action."""
