"""Gradient telemetry of multi-task training: do the tasks pull the shared encoder the same way?

Every ``balancer.telemetry_every`` steps the balancer measures, on the shared parameters:

* the pairwise cosine similarity of the task gradients (``cosine[i][j]``; < 0 means task i's step makes task j
  worse to first order: a *conflict*),
* the share of task pairs in conflict (``conflict_share``),
* each task's gradient norm (of its plain loss, before weighting) and the balancer's effective weights.

The trainer appends each record to ``telemetry.jsonl``; :func:`plot_telemetry` turns that log into PNGs:
``cosine_latest.png`` / ``cosine_mean.png`` (heatmaps), ``weights.png`` and ``conflicts.png`` (over steps).
From the command line: ``python -m mtspeech.train.telemetry RUN/telemetry.jsonl OUT_DIR``.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mtspeech.errors import UserError
from mtspeech.jsonl import json_lines


def telemetry_record(
    step: int,
    tasks: Sequence[str],
    gramian: torch.Tensor,
    factors: Sequence[float],
    *,
    weights: dict[str, float] | None = None,
) -> dict[str, Any]:
    """A JSON-ready record from the Gramian ``G[i, j] = g_i . g_j`` of the tasks' shared-parameter gradients.

    ``factors[i]`` is the factor row i was scaled by (loss scale x prior weight); norms are divided by it so
    they are those of the plain task loss."""
    g = gramian.detach().double().cpu()
    norms = g.diagonal().clamp(min=0).sqrt()
    denom = torch.outer(norms, norms).clamp(min=1e-30)
    cosine = (g / denom).clamp(-1.0, 1.0)
    pairs = [(i, j) for i in range(len(tasks)) for j in range(i + 1, len(tasks))]
    conflicts = sum(1 for i, j in pairs if cosine[i, j] < 0)
    return {
        "step": int(step),
        "tasks": list(tasks),
        "cosine": [[round(float(c), 6) for c in row] for row in cosine],
        "conflict_share": conflicts / len(pairs) if pairs else 0.0,
        "grad_norm": {t: float(norms[i]) / max(float(factors[i]), 1e-30) for i, t in enumerate(tasks)},
        "weights": {t: float(w) for t, w in (weights or {}).items()},
    }


def write_record(path: str | Path, record: dict[str, Any]) -> None:
    """Append one record as a JSON line."""
    with Path(path).open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def read_telemetry(path: str | Path) -> list[dict[str, Any]]:
    """All records of a telemetry JSONL log, in order."""
    path = Path(path)
    if not path.is_file():
        raise UserError("telemetry log not found", path=path)
    records = []
    for number, record in json_lines(path.read_text(encoding="utf-8").splitlines(), path, objects=False):
        if not isinstance(record, dict) or not {"step", "tasks", "cosine"} <= record.keys():
            raise UserError("not a telemetry record (needs step, tasks, cosine)", path=path, line=number)
        records.append(record)
    if not records:
        raise UserError("telemetry log has no records", path=path)
    return records


def mean_cosine(records: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[float]]]:
    """Mean cosine matrix over all records, per task pair over the records where both tasks were present."""
    tasks: list[str] = []
    for record in records:
        tasks += [t for t in record["tasks"] if t not in tasks]
    index = {t: i for i, t in enumerate(tasks)}
    sums = [[0.0] * len(tasks) for _ in tasks]
    counts = [[0] * len(tasks) for _ in tasks]
    for record in records:
        for a, ta in enumerate(record["tasks"]):
            for b, tb in enumerate(record["tasks"]):
                sums[index[ta]][index[tb]] += record["cosine"][a][b]
                counts[index[ta]][index[tb]] += 1
    means = [
        [s / c if c else math.nan for s, c in zip(srow, crow, strict=True)]
        for srow, crow in zip(sums, counts, strict=True)
    ]
    return tasks, means


def _heatmap(ax: Any, tasks: list[str], matrix: list[list[float]], title: str) -> None:
    image = ax.imshow(matrix, vmin=-1.0, vmax=1.0, cmap="RdBu")
    ax.set_xticks(range(len(tasks)), tasks, rotation=45, ha="right")
    ax.set_yticks(range(len(tasks)), tasks)
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            if not math.isnan(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8)
    ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, fraction=0.046)


def plot_telemetry(log: str | Path, out_dir: str | Path) -> list[Path]:
    """Heatmaps of the latest and mean cosines, weights and conflict share over steps; returns the PNG paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_telemetry(log)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []

    latest = records[-1]
    fig, ax = plt.subplots(figsize=(6, 5))
    _heatmap(ax, latest["tasks"], latest["cosine"], f"gradient cosine, step {latest['step']}")
    fig.tight_layout()
    written.append(out / "cosine_latest.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)

    tasks, means = mean_cosine(records)
    fig, ax = plt.subplots(figsize=(6, 5))
    _heatmap(ax, tasks, means, f"mean gradient cosine over {len(records)} records")
    fig.tight_layout()
    written.append(out / "cosine_mean.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)

    steps = [r["step"] for r in records]
    fig, ax = plt.subplots(figsize=(7, 4))
    for task in tasks:
        points = [(r["step"], r.get("weights", {}).get(task)) for r in records]
        points = [(s, w) for s, w in points if w is not None]
        if points:
            ax.plot(*zip(*points, strict=True), marker=".", label=task)
    ax.set_xlabel("step")
    ax.set_ylabel("effective weight")
    ax.set_title("task weights")
    if ax.lines:
        ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(out / "weights.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [r.get("conflict_share", 0.0) for r in records], marker=".")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("step")
    ax.set_ylabel("share of task pairs with cosine < 0")
    ax.set_title("gradient conflicts")
    fig.tight_layout()
    written.append(out / "conflicts.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mtspeech.train.telemetry LOG.jsonl OUT_DIR``: write the telemetry plots."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m mtspeech.train.telemetry TELEMETRY.jsonl OUT_DIR", file=sys.stderr)
        return 2
    try:
        for path in plot_telemetry(args[0], args[1]):
            print(path)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
