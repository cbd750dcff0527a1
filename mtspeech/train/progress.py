"""The console view of a training run (rank 0): a rich progress bar with the latest loss, and one line per
validation. Disabled, it does nothing, so the loop never has to ask."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class TrainProgressBar:
    def __init__(self, total_steps: int, start_step: int = 0, enabled: bool = True) -> None:
        self.enabled = enabled
        self.console = Console(stderr=True)
        self._loss = float("nan")
        self._progress: Progress | None = None
        self._task: Any = None
        if enabled:
            self._progress = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._task = self._progress.add_task("train", total=total_steps, completed=start_step, loss="-")

    def __enter__(self) -> TrainProgressBar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, step: int, loss: float | None = None) -> None:
        if self._progress is None:
            return
        if loss is not None:
            self._loss = loss
        shown = f"{self._loss:.4f}" if math.isfinite(self._loss) else "-"
        self._progress.update(self._task, completed=step, loss=shown)

    def log_validation(self, step: int, metrics: dict[str, float], best_metric: str, improved: bool) -> None:
        if not self.enabled:
            return
        shown = [f"{k}={v:.4g}" for k, v in metrics.items() if not k.endswith(".loss")]
        marker = " [green](best)" if improved else ""
        message = f"step {step} valid: " + ", ".join(shown) + marker
        (self._progress.console if self._progress is not None else self.console).print(message, highlight=False)
