"""Learning curves of the small recipe against the issue's floors, from one or more finished runs.

Reads each run's ``train.jsonl`` (validation every ``valid_every`` steps, 150 valid utterances) and, where
``mtspeech evaluate`` has written it, the test-split report. Draws one panel per floored metric (CER, LID,
intent, emotion, VAD F1) over training steps with the floor as a dashed line, and writes the points to
bench/results/learning-curves.json.

"What would reach the floor" is answered two ways, and kept apart: measured (the longer run's own points) and
projected (a power law ``error = a * steps^-b`` fitted to the last validation points of the longest run, solved
for the floor; a projection, printed as such, only where the error is still falling).

A run whose directory is gone (an earlier session's) can be drawn from the points an earlier results file kept:
``LABEL=RESULTS.json#STORED_LABEL``; its entry then names the file and the command that measured it.

    python bench/learning_curves.py --runs recipe=work/runs/synth-small longer=work/runs/synth-small-long
    python bench/learning_curves.py --runs new=work/runs/synth-small \
        "old=bench/results/learning-curves-73218da.json#recipe (intent_text, no dropout)"
    python bench/learning_curves.py --runs x4=work/runs/ctc-x4 x2=work/runs/ctc-x2 --metrics cer --x-axis minutes \
        --results-name ctc-subsampling --plot docs/images/ctc-subsampling.png
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results  # noqa: E402
from synth_small import KEYS, training_summary  # noqa: E402

# name -> validation key in train.jsonl; the test-report key, floor and direction come from synth_small.KEYS.
# Intents: the transcript head where a run has one (it then answers intents on the test split too).
VALID_KEYS: dict[str, tuple[str, ...]] = {
    "cer": ("asr_ctc.cer",),
    "lid_acc": ("lid.accuracy",),
    "intent_acc": ("intent_text.accuracy", "intent.accuracy"),
    "emotion_acc": ("emotion.accuracy",),
    "vad_f1": ("vad.f1",),
}
# name -> (validation keys, first present wins; test-report key, floor in %, higher is better)
METRICS: dict[str, tuple[tuple[str, ...], str, float, bool]] = {}
for _name, _valid_key in VALID_KEYS.items():
    _report_key, _floor, _higher = KEYS[_name]
    assert _floor is not None, f"synth_small.KEYS[{_name!r}] has no floor"
    METRICS[_name] = (_valid_key, _report_key, _floor, _higher)


def read_run(run: Path) -> dict[str, Any]:
    """Validation points ``[step, wall minutes, value %]`` per metric, the test-split values, steps trained."""
    records = [json.loads(line) for line in (run / "train.jsonl").read_text().splitlines() if line.strip()]
    if not records:
        raise SystemExit(f"{run / 'train.jsonl'} is empty: is {run} a finished training run?")
    start = records[0]["time"]
    curves: dict[str, list[list[float]]] = {name: [] for name in METRICS}
    for record in records:
        if record.get("kind") != "valid":
            continue
        for name, (keys, _, _, _) in METRICS.items():
            key = next((k for k in keys if isinstance(record.get(k), int | float)), None)
            if key is not None:
                minutes = (record["time"] - start) / 60
                curves[name].append([int(record["step"]), round(minutes, 1), round(100 * record[key], 2)])
    test: dict[str, float] = {}
    report = run / "eval" / "report.json"
    if report.exists():
        metrics = json.loads(report.read_text())["metrics"]
        test = {name: round(float(metrics[key]), 2) for name, (_, key, _, _) in METRICS.items() if key in metrics}
    return {"curves": curves, "test": test, "grad_norms": grad_norms(run), **training_summary(run)}


def read_stored_run(spec: str) -> dict[str, Any]:
    """A run's points as an earlier ``bench/results/*.json`` of this script kept them (``FILE#LABEL``)."""
    file, _, label = spec.partition("#")
    path = Path(file)
    if not path.exists():
        raise SystemExit(f"--runs: {path} does not exist (expected an earlier results file of this script)")
    stored = json.loads(path.read_text())
    if label not in stored.get("runs", {}):
        raise SystemExit(f"--runs: {path} has no run {label!r}; it has {', '.join(map(repr, stored.get('runs', {})))}")
    run = dict(stored["runs"][label])
    if "stored_in" not in run:  # a run carried over twice keeps the command that measured it
        run["stored_in"] = {"file": str(path), "label": label, "command": stored.get("command")}
    return run


def grad_norms(run: Path) -> dict[str, Any] | None:
    """Median of each task's gradient norm at the shared encoder output (the balancer's telemetry.jsonl) over the
    records where every task trains: how hard each task pushes the encoder once all have joined."""
    path = run / "telemetry.jsonl"
    if not path.exists():
        return None
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not records:
        return None
    everyone = max(len(r["grad_norm"]) for r in records)
    shared = [r for r in records if len(r["grad_norm"]) == everyone]
    return {
        "steps": [shared[0]["step"], shared[-1]["step"]],
        "median": {t: round(float(np.median([r["grad_norm"][t] for r in shared])), 2) for t in shared[0]["grad_norm"]},
    }


def project_steps(points: list[list[float]], floor: float, higher: bool, last: int = 4) -> dict[str, Any] | None:
    """A power law ``error = a * steps^-b`` through the last ``last`` validation points, and the steps at which
    it reaches the floor (None when the floor is already met or the error is not falling there)."""
    tail = [p for p in points if p[0] > 0][-last:]
    if len(tail) < 3:
        return None
    errors = [(100 - v) if higher else v for _, _, v in tail]
    target = (100 - floor) if higher else floor
    if errors[-1] <= target or min(errors) <= 0:
        return None
    slope, intercept = np.polyfit(np.log([p[0] for p in tail]), np.log(errors), 1)
    if slope >= 0:
        return None
    steps = math.exp((math.log(target) - intercept) / slope)
    return {"fitted_on_steps": [int(p[0]) for p in tail], "exponent": round(float(-slope), 3), "steps": f"{steps:.2g}"}


LEGEND_COLUMNS = 5


def plot(runs: dict[str, dict[str, Any]], path: Path, metrics: list[str], x_axis: str = "steps") -> None:
    """One panel per metric; x is the training step or the wall-clock minutes since the run started."""
    column, end_key = (0, "steps") if x_axis == "steps" else (1, "wall_minutes")
    legend_rows = math.ceil(len(runs) / LEGEND_COLUMNS)
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(max(4 * len(metrics), 5), 3.6 + 0.3 * legend_rows), squeeze=False
    )
    axes = axes[0]
    colours = plt.get_cmap("tab20" if len(runs) > 10 else "tab10").colors  # a colour per run, past ten too
    for ax, name in zip(axes, metrics, strict=True):
        _, _, floor, higher = METRICS[name]
        for i, (label, run) in enumerate(runs.items()):
            points = run["curves"][name]
            if points:
                xs, ys = [p[column] for p in points], [p[2] for p in points]
                line = ax.plot(xs, ys, marker="o", ms=3, label=label, color=colours[i % len(colours)])[0]
                if name in run["test"]:
                    ax.scatter([run[end_key]], [run["test"][name]], marker="*", s=90, color=line.get_color())
        ax.axhline(floor, ls="--", color="grey", lw=1)
        ax.set_title(f"{name} (floor {'>=' if higher else '<='} {floor:g}%)")
        ax.set_xlabel("training step" if x_axis == "steps" else "wall-clock minutes (validation included)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("% on valid (line) / test (star)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), LEGEND_COLUMNS), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 * legend_rows / fig.get_figheight()))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs",
        nargs="+",
        required=True,
        help="run directories (train.jsonl inside), each optionally LABEL=DIR; or LABEL=RESULTS.json#LABEL for the "
        "points an earlier results file kept",
    )
    parser.add_argument("--plot", type=Path, default=Path("docs/images/learning-curves.png"))
    parser.add_argument(
        "--metrics", default=",".join(METRICS), help=f"comma-separated panels, from {', '.join(METRICS)}"
    )
    parser.add_argument("--x-axis", choices=["steps", "minutes"], default="steps")
    parser.add_argument("--results-name", default="learning-curves", help="bench/results/<name>.json")
    args = parser.parse_args()
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    if not metrics or any(m not in METRICS for m in metrics):
        parser.error(f"--metrics: expected names from {', '.join(METRICS)}, got {args.metrics!r}")
    runs = {}
    for spec in args.runs:
        label, _, directory = spec.partition("=") if "#" in spec else spec.rpartition("=")
        if "#" in directory:
            runs[label or directory] = read_stored_run(directory)
            continue
        run = Path(directory)
        if not (run / "train.jsonl").exists():
            parser.error(f"--runs: {run} has no train.jsonl (expected a directory written by mtspeech train)")
        runs[label or run.name] = read_run(run)
    longest_label = max(runs, key=lambda label: (runs[label]["steps"], runs[label]["wall_minutes"]))
    longest = runs[longest_label]
    projections = {
        name: project_steps(longest["curves"][name], floor, higher) for name, (_, _, floor, higher) in METRICS.items()
    }
    plot(runs, args.plot, metrics, args.x_axis)
    for label, run in runs.items():
        last = {name: points[-1][2] for name, points in run["curves"].items() if points}
        print(f"{label}: {run['steps']} steps, {run['wall_minutes']} min; last valid {last}; test {run['test']}")
    print(f"projected steps to each floor (power law through the last 4 points of {longest_label!r}):", projections)
    floors = {name: {"floor": floor, "higher_is_better": higher} for name, (_, _, floor, higher) in METRICS.items()}
    command = "python bench/learning_curves.py --runs " + " ".join(f'"{spec}"' for spec in args.runs)
    if args.metrics != ",".join(METRICS):
        command += f" --metrics {args.metrics}"
    if args.x_axis != "steps":
        command += f" --x-axis {args.x_axis}"
    if args.results_name != "learning-curves":
        command += f" --results-name {args.results_name}"
    if args.plot != Path("docs/images/learning-curves.png"):
        command += f" --plot {args.plot}"
    path = write_results(
        args.results_name,
        {
            "runs": runs,
            "floors": floors,
            "projected_steps_to_floor": projections,
            "projected_from": longest_label,
            "plot": str(args.plot),
        },
        command,
    )
    print(f"wrote {path} and {args.plot}")


if __name__ == "__main__":
    main()
