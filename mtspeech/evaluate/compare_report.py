"""The comparison's result: a JSON-able summary, ``compare.md`` / ``compare.json`` and its plots.

Columns of the main table are the multi-task runs (one per balancer with ``--balancers``) and, when single-task
runs were given, one column for all of them together ("N single-task models"): for each task the best single
run trained for it, the SUM of their parameters and of their latencies (N models means N front ends, N
encoders), and the geometric mean of their per-task scores. The geometric mean over the tasks every column
has is added when columns cover different tasks, so that the headline comparison is like for like.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtspeech.evaluate.render import fmt
from mtspeech.evaluate.scoring import DEFAULT_EPSILON, HEADLINE, geometric_mean, lower_is_better

if TYPE_CHECKING:
    from mtspeech.evaluate.compare import RunResult

SUMMARY_VERSION = 1
SINGLES = "single-task models"
MAX_PARETO_PLOTS = 6


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _run_entry(result: RunResult, out_name: str) -> dict[str, Any]:
    report = result.report
    return {
        "role": result.spec.role,
        "balancer": result.spec.balancer,
        "source": str(result.spec.source),
        "model": str(result.model_path),
        "status": result.status,
        "steps": result.steps,
        "parameters": result.parameters,
        "train_seconds": result.train_seconds,
        "latency": dict(result.latency),
        "tasks": dict(result.sources),
        "metrics": {HEADLINE[t]: float(report.metrics[HEADLINE[t]]) for t in report.headline},
        "scores": {t: float(s) for t, s in report.headline.items()},
        "score": float(report.score),
        "report": f"eval/{out_name}/report.md",
    }


def _combine_singles(singles: dict[str, dict[str, Any]], epsilon: float) -> dict[str, Any]:
    """The N single-task runs as one system: best run per task, summed parameters and latency."""
    tasks: dict[str, dict[str, Any]] = {}
    for task, metric in HEADLINE.items():
        candidates = [(run["scores"][task], name) for name, run in singles.items() if task in run["scores"]]
        if candidates:
            score, name = max(candidates, key=lambda c: (c[0], c[1]))
            tasks[task] = {"run": name, "metric": metric, "value": singles[name]["metrics"][metric], "score": score}
    latencies = [run["latency"] for run in singles.values()]
    latency = {}
    if latencies and all(latencies):
        latency = {key: sum(lat[key] for lat in latencies) for key in latencies[0]}
    seconds = [run.get("train_seconds") for run in singles.values()]
    return {
        "runs": list(singles),
        "parameters": sum(run["parameters"] for run in singles.values()),
        "train_seconds": sum(seconds) if seconds and None not in seconds else None,
        "latency": latency,
        "tasks": tasks,
        "metrics": {entry["metric"]: entry["value"] for entry in tasks.values()},
        "scores": {task: entry["score"] for task, entry in tasks.items()},
        "score": geometric_mean({t: e["score"] for t, e in tasks.items()}, epsilon=epsilon),
        "steps": sorted({run["steps"] for run in singles.values() if run["steps"] is not None}),
    }


def default_pareto_pairs(columns: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Headline metric pairs: ASR (else the first task) against each other task, preferring tasks every
    column has; at most :data:`MAX_PARETO_PLOTS`."""
    ordered = [t for t in HEADLINE if any(t in c["scores"] for c in columns)]
    shared = [t for t in ordered if all(t in c["scores"] for c in columns)]
    tasks = shared if len(shared) >= 2 else ordered
    if len(tasks) < 2:
        return []
    anchor = "asr" if "asr" in tasks else tasks[0]
    return [(HEADLINE[anchor], HEADLINE[t]) for t in tasks if t != anchor][:MAX_PARETO_PLOTS]


def summarise(
    results: Sequence[RunResult], context: Mapping[str, Any], pareto: Sequence[tuple[str, str]] = ()
) -> dict[str, Any]:
    """Everything compare.md and compare.json show (see the module docstring)."""
    epsilon = next((float(r.report.options.get("epsilon", DEFAULT_EPSILON)) for r in results), DEFAULT_EPSILON)
    runs = {r.spec.name: _run_entry(r, r.spec.name) for r in results}
    singles = {name: run for name, run in runs.items() if run["role"] == "single"}
    columns = [{"name": name, **run} for name, run in runs.items() if run["role"] == "multi"]
    combined = None
    if singles:
        combined = _combine_singles(singles, epsilon)
        columns.append({"name": f"{len(singles)} {SINGLES}", "role": "singles", **combined})
    shared = [t for t in HEADLINE if columns and all(t in c["scores"] for c in columns)]
    for column in columns:
        column["shared_score"] = geometric_mean({t: column["scores"][t] for t in shared}, epsilon=epsilon)
    pairs = list(pareto) or default_pareto_pairs(columns)
    return _finite(
        {
            "version": SUMMARY_VERSION,
            **dict(context),
            "epsilon": epsilon,
            "runs": runs,
            "singles": combined,
            "columns": columns,
            "shared_tasks": shared,
            "table": build_table(columns, shared),
            "findings": findings(columns),
            "pareto": [{"x": x, "y": y} for x, y in pairs],
        }
    )


def _metric_label(metric: str) -> str:
    return f"{metric} ({'lower' if lower_is_better(metric) else 'higher'} is better)"


def _millions(count: int | None) -> str:
    return "n/a" if count is None else f"{count / 1e6:.2f} M"


def build_table(columns: Sequence[Mapping[str, Any]], shared: Sequence[str]) -> dict[str, Any]:
    """``{"headers": [...], "rows": [[label, cell...]]}``: one row per task, then scores, size and speed."""
    headers = ["", *(c["name"] for c in columns)]
    rows: list[list[str]] = []
    for task, metric in HEADLINE.items():
        if not any(task in c["scores"] for c in columns):
            continue
        cells = []
        for column in columns:
            value = column["metrics"].get(metric)
            cell = fmt(value)
            if column.get("role") == "singles" and task in column["tasks"]:
                cell += f" ({column['tasks'][task]['run']})"
            cells.append(cell)
        rows.append([f"{task}: {_metric_label(metric)}", *cells])
    rows.append(["geometric mean, each column's tasks (0-100)", *(fmt(c["score"]) for c in columns)])
    if any(set(c["scores"]) != set(shared) for c in columns):
        label = f"geometric mean, shared tasks: {', '.join(shared) or 'none'} (0-100)"
        rows.append([label, *(fmt(c["shared_score"]) for c in columns)])
    rows.append(["parameters", *(_parameters_cell(c) for c in columns)])
    if any(c["latency"] for c in columns):
        rows.append(["latency, ms per utterance", *(fmt(c["latency"].get("ms_per_utterance")) for c in columns)])
        rows.append(["real-time factor", *(fmt(c["latency"].get("real_time_factor"), 4) for c in columns)])
    rows.append(["training steps", *(_steps_cell(c) for c in columns)])
    if any(c.get("train_seconds") for c in columns):
        minutes = [None if c.get("train_seconds") is None else c["train_seconds"] / 60 for c in columns]
        rows.append(["training time, minutes (N models: their sum)", *(fmt(m, 1) for m in minutes)])
    return {"headers": headers, "rows": rows}


def _parameters_cell(column: Mapping[str, Any]) -> str:
    if column.get("role") == "singles":
        return f"{_millions(column['parameters'])} ({len(column['runs'])} models)"
    return _millions(column["parameters"])


def _steps_cell(column: Mapping[str, Any]) -> str:
    steps = column.get("steps")
    if isinstance(steps, list):
        return " / ".join(map(str, steps)) + " each" if steps else "n/a"
    return fmt(steps)


def findings(columns: Sequence[Mapping[str, Any]]) -> list[str]:
    """One sentence per multi-task run against the single-task models: size, speed, score, task wins."""
    combined = next((c for c in columns if c.get("role") == "singles"), None)
    if combined is None:
        return []
    lines = []
    for column in columns:
        if column is combined:
            continue
        parts = []
        if column["parameters"] and combined["parameters"]:
            parts.append(f"{column['parameters'] / combined['parameters']:.2f}x the parameters")
        mine, theirs = column["latency"].get("seconds"), combined["latency"].get("seconds")
        if mine and theirs:
            parts.append(f"{mine / theirs:.2f}x the inference time")
        delta = column["shared_score"] - combined["shared_score"]
        if math.isfinite(delta):
            parts.append(f"geometric mean over shared tasks {delta:+.2f} points")
        better = [
            t for t in combined["scores"] if t in column["scores"] and column["scores"][t] > combined["scores"][t]
        ]
        worse = [t for t in combined["scores"] if t in column["scores"] and column["scores"][t] < combined["scores"][t]]
        if better or worse:
            parts.append(f"better on {', '.join(better) or 'no task'}, worse on {', '.join(worse) or 'no task'}")
        lines.append(f"{column['name']} vs the {combined['name']}: " + "; ".join(parts) + ".")
    return lines


# --- files ------------------------------------------------------------------------------------------------
def write_compare(summary: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """compare.json, plots/*.png and compare.md (linking the plots and each run's report)."""
    from mtspeech.errors import UserError
    from mtspeech.evaluate.plots import pareto_plot

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    points = [{"name": c["name"], "metrics": c["metrics"]} for c in summary["columns"]]
    for pair in summary["pareto"]:
        name = f"pareto_{_slug(pair['x'])}__{_slug(pair['y'])}.png"
        try:
            paths[f"plot:{name}"] = pareto_plot(points, pair["x"], pair["y"], out_dir / "plots" / name)
            pair["plot"] = f"plots/{name}"
        except UserError as err:  # a requested pair no run has: say so in the report, keep the rest
            pair["note"] = str(err)
    if summary["columns"]:
        paths["plot:scores"] = plot_scores(summary["columns"], out_dir / "plots" / "scores.png")
    paths["markdown"] = _write(out_dir / "compare.md", to_markdown(summary))
    text = json.dumps(summary, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    paths["json"] = _write(out_dir / "compare.json", text)
    return paths


def _slug(metric: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in metric)


def _write(path: Path, text: str) -> Path:
    tmp = path.with_name(".tmp-" + path.name)
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def plot_scores(columns: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Grouped bars: per task (0-100 headline score) and the geometric mean, one bar per column."""
    from mtspeech.evaluate.plots import _save, plt

    tasks = [t for t in HEADLINE if any(t in c["scores"] for c in columns)]
    groups = [*tasks, "geo. mean"]
    width = 0.8 / max(len(columns), 1)
    fig, ax = plt.subplots(figsize=(min(14.0, max(6.0, 0.8 * len(groups) + 0.25 * len(groups) * len(columns))), 4.2))
    for k, column in enumerate(columns):
        values = [column["scores"].get(t) for t in tasks] + [column["score"]]
        xs = [i - 0.4 + width * (k + 0.5) for i in range(len(groups))]
        ax.bar(xs, [v if v is not None else 0.0 for v in values], width, label=column["name"])
        for x, value in zip(xs, values, strict=True):
            if value is None:  # an absent bar must not read as a score of 0
                ax.text(x, 1.0, "n/a", ha="center", va="bottom", fontsize=6, rotation=90, color="grey")
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylim(0, 105)
    ax.set_ylabel("score (0-100, higher is better)")
    ax.set_title("per-task scores")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=min(3, max(len(columns), 1)), loc="upper center", bbox_to_anchor=(0.5, -0.1))
    fig.tight_layout()
    return _save(fig, path)


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def to_markdown(summary: Mapping[str, Any]) -> str:
    lines = ["# mtspeech compare", ""]
    steps = summary.get("steps")
    lines.append(
        f"Every run trained for {steps if steps is not None else 'its own number of'} steps and was evaluated on "
        f"{summary['utterances']} utterances of `{summary['data']}` (split `{summary['split']}`). Latency: "
        f"median of {summary['latency_repeats']} passes over the first {summary['latency_utterances']} "
        f"utterances on `{summary['device']}`, front end + encoder + every task, audio already decoded. "
        "Metrics are in their own units; scores are 0-100, higher is better (see docs/compare.md)."
    )
    lines.append("")
    table = summary["table"]
    lines += ["## Results", "", _md_row(table["headers"]), "|" + "---|" * len(table["headers"])]
    lines += [_md_row(row) for row in table["rows"]]
    lines.append("")
    if summary["findings"]:
        lines += [f"* {line}" for line in summary["findings"]] + [""]
    lines += ["## Runs", ""]
    headers = ["run", "role", "balancer", "model", "steps", "parameters", "tasks (answered by)", "score", "report"]
    lines += [_md_row(headers), "|" + "---|" * len(headers)]
    for name, run in summary["runs"].items():
        tasks = ", ".join(f"{t} ({s})" for t, s in run["tasks"].items())
        lines.append(
            _md_row(
                [
                    name,
                    run["role"],
                    run["balancer"] or "",
                    run["status"],
                    fmt(run["steps"]),
                    _millions(run["parameters"]),
                    tasks,
                    fmt(run["score"]),
                    f"[report]({run['report']})",
                ]
            )
        )
    lines.append("")
    plotted = [p for p in summary["pareto"] if p.get("plot")]
    if plotted or any(p.get("note") for p in summary["pareto"]):
        lines += ["## Pareto plots", ""]
        lines.append("One point per column; red points are not beaten on both metrics by any other point.")
        lines.append("")
        for pair in summary["pareto"]:
            if pair.get("plot"):
                lines += [f"![{pair['x']} vs {pair['y']}]({pair['plot']})", ""]
            else:
                lines += [f"{pair['x']} vs {pair['y']}: {pair.get('note', 'not drawn')}", ""]
    if summary["columns"]:
        lines += ["## Per-task scores", "", "![per-task scores](plots/scores.png)", ""]
    return "\n".join(lines)
