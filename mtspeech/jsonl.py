"""JSON-lines files a user may have written by hand: every bad line is an error naming the file and the line."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from mtspeech.errors import UserError


def json_lines(lines: Iterable[str], path: str | Path, *, objects: bool = True) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` of every non-blank line of ``lines`` (read from ``path``). A line that is not JSON,
    or with ``objects`` not a JSON object, is a :class:`UserError` naming ``path`` and the line."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"not valid JSON ({err.msg})", path=path, line=number) from None
        if objects and not isinstance(value, dict):
            raise UserError(f"expected a JSON object, got {type(value).__name__}", path=path, line=number)
        yield number, value
