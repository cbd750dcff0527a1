"""``mtspeech data ...``: import, validate and prepare corpora."""

from __future__ import annotations

import typer

app = typer.Typer(help="Import your own corpora, validate them and train the tokenizer.", no_args_is_help=True)
