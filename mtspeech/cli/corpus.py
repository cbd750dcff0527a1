"""``mtspeech corpus ...``: the synthetic multi-task corpus (owned by the synthesis module)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Synthesise and summarise the embedded multilingual multi-task corpus.", no_args_is_help=True)
