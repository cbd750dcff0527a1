"""``mtspeech train CONFIG [--resume] [--set key=value ...]``: train one multi-task model from a YAML recipe.

Under ``torchrun`` every process runs this same command; see docs/training.md for multi-GPU launches.
"""

from __future__ import annotations

from pathlib import Path

import typer

from mtspeech.cli.common import user_errors


@user_errors
def train_cmd(
    config: Path = typer.Argument(..., help="Training config (YAML; may extend others with 'base:')."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in output_dir."),
    overrides: list[str] = typer.Option(
        [], "--set", help="Override a config key, e.g. --set optim.lr=3e-4 --set max_steps=200 (repeatable)."
    ),
) -> None:
    """Train on the corpora of CONFIG; writes checkpoints, logs, plots and the packaged model to output_dir."""
    from mtspeech.train.config import load_train_config
    from mtspeech.train.trainer import train

    train_config = load_train_config(config, overrides)
    result = train(train_config, resume=resume)
    if result.model_path is not None:
        typer.echo(f"trained {result.steps} steps ({result.stopped_by}); model: {result.model_path}")
    else:
        typer.echo(
            f"stopped at step {result.steps} ({result.stopped_by}); checkpoint in {result.run_dir / 'checkpoints'}, "
            "continue with --resume"
        )
