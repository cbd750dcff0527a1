"""User-facing errors. Anything a user can cause (a bad file, field, argument or config key) raises
:class:`UserError` with a message that names the culprit and what was expected; the CLI prints the
message without a traceback and exits with status 2."""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """An error in the user's input, reported as one clear message."""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.message = message  # without the place, for reports that list the place apart
        self.path = None if path is None else str(path)
        self.line = line
