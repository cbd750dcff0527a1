"""Helpers shared by the CLI modules: user errors become a one-line message and exit status 2."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from mtspeech.errors import UserError

console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def user_errors(fn: F) -> F:
    """Decorator for commands: print a :class:`UserError` as ``error: ...`` and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)  # paths stay whole
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]
