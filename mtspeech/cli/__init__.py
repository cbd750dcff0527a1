"""The ``mtspeech`` command. Each subcommand group lives in its own module and imports its heavy
dependencies (torch, lhotse) only when it runs, so ``mtspeech --help`` stays instant."""

from __future__ import annotations

import typer

from mtspeech import __version__
from mtspeech.cli import analyze, corpus, data, evaluate, lm, serve, train

app = typer.Typer(
    name="mtspeech",
    help="Train, evaluate and serve one speech model for many tasks (ASR, ST, SLU, LID, VAD, emotion).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(corpus.app, name="corpus")
app.add_typer(data.app, name="data")
app.command("train")(train.train_cmd)
app.command("evaluate")(evaluate.evaluate_cmd)
app.command("compare", **evaluate.COMPARE_COMMAND)(evaluate.compare_cmd)
app.command("lm")(lm.lm_cmd)
app.command("analyze")(analyze.analyze_cmd)
app.command("serve")(serve.serve_cmd)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mtspeech {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """mtspeech: one shared encoder, cheap task heads and a task-token decoder."""


def main() -> None:
    app()
