"""PNG figures of an evaluation: confusion matrices, per-group bars, VAD timelines and the Pareto plot of runs.

Every function draws one figure into ``path`` and closes it (matplotlib's Agg backend: files only, no window).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window (servers, CI)
import matplotlib.pyplot as plt  # noqa: E402

from mtspeech.errors import UserError  # noqa: E402
from mtspeech.evaluate.groups import Breakdown  # noqa: E402
from mtspeech.evaluate.metrics import ConfusionMatrix  # noqa: E402
from mtspeech.evaluate.scoring import lower_is_better  # noqa: E402


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_confusion(matrix: ConfusionMatrix, title: str, path: str | Path) -> Path:
    """Counts in each cell; colour is the row share (recall of the reference class), so rare classes show too."""
    size = len(matrix.labels)
    side = min(14.0, 2.5 + 0.45 * size)
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    shares = [[c / max(sum(row), 1) for c in row] for row in matrix.counts]
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(size), matrix.labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(size), matrix.labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    ax.set_title(title)
    if size <= 20:
        for i, row in enumerate(matrix.counts):
            for j, count in enumerate(row):
                if count:
                    colour = "white" if shares[i][j] > 0.6 else "black"
                    ax.text(j, i, str(count), ha="center", va="center", fontsize=7, color=colour)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of reference row")
    fig.tight_layout()
    return _save(fig, path)


def plot_group_bars(breakdown: Breakdown, dimension: str, path: str | Path) -> Path:
    """Grouped bars: one cluster per task (its headline metric on the 0-100 scale, plus the overall score),
    one bar per group, so a group that lags on some task stands out."""
    from mtspeech.evaluate.scoring import headline_scores

    groups = list(breakdown.groups)
    per_group = {g: {**headline_scores(r.normalised), "score": r.score} for g, r in breakdown.groups.items()}
    tasks = [t for t in dict.fromkeys(t for scores in per_group.values() for t in scores) if t != "score"] + ["score"]
    width = 0.8 / max(len(groups), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(tasks) + 0.25 * len(tasks) * len(groups)), 4.0))
    for k, group in enumerate(groups):
        values = [per_group[group].get(t, math.nan) for t in tasks]
        xs = [i - 0.4 + width * (k + 0.5) for i in range(len(tasks))]
        size = breakdown.groups[group].size
        ax.bar(xs, [0.0 if math.isnan(v) else v for v in values], width, label=f"{group} (n={size})")
        for x, value in zip(xs, values, strict=True):
            if math.isnan(value):  # an absent bar must not read as a score of 0
                ax.text(x, 1.0, "n/a", ha="center", va="bottom", fontsize=6, rotation=90, color="grey")
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_ylim(0, 105)
    ax.set_ylabel("score (0-100, higher is better)")
    ax.set_title(f"by {dimension}")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=min(4, max(len(groups), 1)), loc="upper center", bbox_to_anchor=(0.5, -0.1))
    fig.tight_layout()
    return _save(fig, path)


def plot_vad_timelines(examples: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """One panel per utterance: reference speech segments above, predicted ones below, over time in seconds."""
    if not examples:
        raise ValueError("no VAD examples to draw")
    fig, axes = plt.subplots(len(examples), 1, figsize=(10, 1.3 * len(examples) + 0.6), squeeze=False)
    for ax, example in zip(axes[:, 0], examples, strict=True):
        for row, (key, colour) in enumerate((("predicted", "tab:orange"), ("reference", "tab:green"))):
            spans = [(start, end - start) for start, end in example[key]]
            ax.broken_barh(spans, (row + 0.1, 0.8), facecolors=colour)
        ax.set_xlim(0, max(float(example["duration"]), 1e-3))
        ax.set_ylim(0, 2)
        ax.set_yticks([0.5, 1.5], ["predicted", "reference"], fontsize=8)
        ax.set_title(str(example["id"]), fontsize=9, loc="left")
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    return _save(fig, path)


def metric_value(point: Mapping[str, Any], metric: str) -> float | None:
    """``point[metric]``, else ``point["metrics"][metric]`` (a report dict); None when absent or not finite."""
    value = point.get(metric)
    if value is None and isinstance(point.get("metrics"), Mapping):
        value = point["metrics"].get(metric)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def pareto_front(
    points: Sequence[Mapping[str, Any]], x_metric: str, y_metric: str, *, x_higher: bool, y_higher: bool
) -> list[int]:
    """Indices of the points no other point dominates (at least as good on both metrics, better on one);
    points missing either metric are never on the front."""
    signed = []
    for point in points:
        x, y = metric_value(point, x_metric), metric_value(point, y_metric)
        signed.append(None if x is None or y is None else (x if x_higher else -x, y if y_higher else -y))
    front = []
    for i, a in enumerate(signed):
        if a is None:
            continue
        dominated = any(b is not None and b[0] >= a[0] and b[1] >= a[1] and b != a for b in signed)
        if not dominated:
            front.append(i)
    return front


def pareto_plot(
    points: list[dict],
    x_metric: str,
    y_metric: str,
    out_path: str | Path,
    *,
    label_key: str = "name",
    x_higher_better: bool | None = None,
    y_higher_better: bool | None = None,
) -> Path:
    """Scatter of runs (one dict per run: ``label_key`` and metric values, flat or under ``"metrics"``) with the
    Pareto front highlighted and joined. Directions default to the metric's nature (WER lower is better).
    Runs without both metrics are left out and counted in the title; none with both is a UserError."""
    x_higher = not lower_is_better(x_metric) if x_higher_better is None else x_higher_better
    y_higher = not lower_is_better(y_metric) if y_higher_better is None else y_higher_better
    usable = [
        i
        for i, p in enumerate(points)
        if metric_value(p, x_metric) is not None and metric_value(p, y_metric) is not None
    ]
    if not usable:
        raise UserError(f"no run has both {x_metric!r} and {y_metric!r} to plot")
    front = set(pareto_front(points, x_metric, y_metric, x_higher=x_higher, y_higher=y_higher))
    fig, ax = plt.subplots(figsize=(6.5, 5.0))
    for i in usable:
        x, y = metric_value(points[i], x_metric), metric_value(points[i], y_metric)
        on_front = i in front
        ax.scatter([x], [y], s=60 if on_front else 30, c="tab:red" if on_front else "tab:grey", zorder=3)
        ax.annotate(str(points[i].get(label_key, i)), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ordered = sorted(front, key=lambda i: metric_value(points[i], x_metric))
    ax.plot(
        [metric_value(points[i], x_metric) for i in ordered],
        [metric_value(points[i], y_metric) for i in ordered],
        "-",
        color="tab:red",
        alpha=0.6,
        label="Pareto front",
        zorder=2,
    )
    arrow = {True: "higher is better", False: "lower is better"}
    ax.set_xlabel(f"{x_metric} ({arrow[x_higher]})")
    ax.set_ylabel(f"{y_metric} ({arrow[y_higher]})")
    left_out = len(points) - len(usable)
    ax.set_title("runs" + (f" ({left_out} without both metrics not shown)" if left_out else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out_path)
