"""The one console script: every subcommand answers --help, user errors never show a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from mtspeech.cli import app

runner = CliRunner()


def _command_paths() -> list[list[str]]:
    """Every command path of the typer app, found by walking the click tree (so new commands are covered)."""
    import typer.main

    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(cmd, prefix: list[str]) -> None:  # noqa: ANN001 - click objects
        paths.append(prefix)
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*prefix, name])

    walk(root, [])
    return paths


def test_every_command_has_help() -> None:
    paths = _command_paths()
    assert ["corpus"] in paths and ["data"] in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("mtspeech ")


@pytest.mark.parametrize("args", [["corpus", "summary", "/nonexistent/corpus"], ["data", "validate", "/nonexistent"]])
def test_missing_directory_is_a_clean_error(args: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "mtspeech", *args], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "/nonexistent" in proc.stderr + proc.stdout
