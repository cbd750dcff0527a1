"""PNG plots of a run, drawn from its ``train.jsonl``: one figure per task (loss and metrics) and an overview.

``plots/TASK.png``: left, the task's training loss (and its validation loss); right, its validation metrics.
``plots/overview.png``: total training loss, learning rate and the balancer's effective task weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window (servers, CI, DataLoader workers)
import matplotlib.pyplot as plt  # noqa: E402


def _series(records: Sequence[dict[str, Any]], kind: str, key: str) -> tuple[list[int], list[float]]:
    steps, values = [], []
    for record in records:
        value = record.get(key)
        if record.get("kind") == kind and isinstance(value, int | float) and not isinstance(value, bool):
            steps.append(int(record["step"]))
            values.append(float(value))
    return steps, values


def _keys(records: Sequence[dict[str, Any]], kind: str, prefix: str) -> list[str]:
    found = {k for r in records if r.get("kind") == kind for k in r if k.startswith(prefix)}
    return sorted(found)


def tasks_in_log(records: Sequence[dict[str, Any]]) -> list[str]:
    tasks = {k.split("/", 1)[1] for r in records for k in r if k.startswith("loss/") and k != "loss/total"}
    return sorted(tasks)


def plot_task(records: Sequence[dict[str, Any]], task: str, path: Path) -> None:
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 3.6))
    for kind, style in (("train", "-"), ("valid", "o-")):
        steps, values = _series(records, kind, f"loss/{task}")
        if steps:
            ax_loss.plot(steps, values, style, label=f"{kind} loss", markersize=3)
    ax_loss.set_title(f"{task}: loss")
    ax_loss.set_xlabel("step")
    metric_keys = _keys(records, "valid", f"{task}.")
    for key in metric_keys:
        steps, values = _series(records, "valid", key)
        if steps:
            ax_metric.plot(steps, values, "o-", label=key.split(".", 1)[1], markersize=3)
    ax_metric.set_title(f"{task}: validation metrics")
    ax_metric.set_xlabel("step")
    for ax in (ax_loss, ax_metric):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes, color="grey")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_overview(records: Sequence[dict[str, Any]], path: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    steps, values = _series(records, "train", "loss/total")
    axes[0].plot(steps, values, label="train")
    steps, values = _series(records, "valid", "loss/total")
    axes[0].plot(steps, values, "o-", label="valid", markersize=3)
    axes[0].set_title("total loss (sum over tasks)")
    steps, values = _series(records, "train", "lr")
    axes[1].plot(steps, values)
    axes[1].set_title("learning rate")
    for key in _keys(records, "train", "weight/"):
        steps, values = _series(records, "train", key)
        axes[2].plot(steps, values, label=key.split("/", 1)[1])
    axes[2].set_title("balancer task weights")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if len(ax.lines) > 1:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_plots(records: Sequence[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """Draw ``overview.png`` and one ``TASK.png`` per task found in ``records``; returns the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    path = out_dir / "overview.png"
    plot_overview(records, path)
    written.append(path)
    for task in tasks_in_log(records):
        path = out_dir / f"{task}.png"
        plot_task(records, task, path)
        written.append(path)
    return written
