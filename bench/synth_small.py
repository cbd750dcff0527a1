"""The small CPU recipe's test-split scores, in percent, as bench/results/synth-small.json.

Reads the report that ``mtspeech evaluate`` wrote (``make demo`` writes work/runs/synth-small/eval), or runs the
evaluation first with ``--evaluate``. Also records how far training got (steps, minutes, stop reason) and the
floors of the issue, so a reader sees at once which are met.

    python bench/synth_small.py [--run work/runs/synth-small] [--corpus work/corpus-small] [--evaluate]
                                [--lm-weight W] [--results-name synth-small]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results  # noqa: E402

# result key -> (report metric, floor, higher is better)
KEYS: dict[str, tuple[str, float | None, bool]] = {
    "wer": ("asr/wer", None, False),
    "cer": ("asr/cer", 10.0, False),
    "lid_acc": ("lid/accuracy", 95.0, True),
    "intent_acc": ("intent/accuracy", 80.0, True),
    "slu_f1": ("slots/slu_f1", None, True),
    "vad_f1": ("vad/frame_f1", 95.0, True),
    "emotion_acc": ("emotion/accuracy", 85.0, True),
    "accent_acc": ("accent/accuracy", None, True),
    "speaker_acc": ("speaker/accuracy", None, True),
    "gender_acc": ("gender/accuracy", None, True),
    "bleu": ("st/bleu", None, True),
    "emotion_uar": ("emotion/uar", None, True),
}


# Validation metrics kept per validated step, so that runs can be compared at equal steps (percent), with the
# seconds that validation took and the median seconds of a training step since the previous validation (the
# median of the gaps between train records over their steps: robust to the checkpoint writes in between).
CURVE_KEYS = (
    "asr_ctc.cer",
    "lid.accuracy",
    "intent.accuracy",
    "emotion.accuracy",
    "speaker.accuracy",
    "gender.accuracy",
    "accent.accuracy",
    "vad.f1",
)


def training_summary(run: Path) -> dict[str, object]:
    """Steps, wall minutes, why training stopped, the median seconds of one validation (from the valid record's
    time back to the train record of the same step) and the validation curve, from the run's train.jsonl."""
    steps, first, last, stopped = 0, None, None, None
    train_time: dict[int, float] = {}
    validation_seconds: list[float] = []
    curve: dict[str, dict[str, float]] = {}
    step_seconds: list[float] = []  # since the last validation
    previous: tuple[int, float] | None = None  # (step, time) of the last train record, None after a validation
    for line in (run / "train.jsonl").read_text().splitlines():
        record = json.loads(line)
        first = first if first is not None else record.get("time")
        last = record.get("time", last)
        steps = max(steps, int(record.get("step", 0)))
        stopped = record.get("stopped_by", stopped)
        if record.get("kind") == "train":
            step = int(record["step"])
            train_time[step] = record["time"]
            if previous is not None and step > previous[0]:
                step_seconds.append((record["time"] - previous[1]) / (step - previous[0]))
            previous = (step, record["time"])
        elif record.get("kind") == "valid":
            point = {k: round(100 * record[k], 2) for k in CURVE_KEYS if k in record}
            if int(record["step"]) in train_time:
                validation_seconds.append(record["time"] - train_time[int(record["step"])])
                point["seconds"] = round(validation_seconds[-1], 1)
            if step_seconds:
                point["step_seconds_median"] = round(float(np.median(step_seconds)), 3)
            curve[str(record["step"])] = point
            step_seconds, previous = [], None
    minutes = (last - first) / 60 if first is not None and last is not None else None
    return {
        "steps": steps,
        "wall_minutes": round(minutes, 1) if minutes else None,
        "stopped_by": stopped,
        "validation_seconds_median": round(float(np.median(validation_seconds)), 1) if validation_seconds else None,
        "valid_curve": curve,
    }


def asr_by_language(report: dict) -> dict[str, dict[str, float]]:
    """Test CER / WER per spoken language (the report's language groups), in percent."""
    groups = ((report.get("groups") or {}).get("language") or {}).get("groups") or {}
    found = {}
    for language, group in sorted(groups.items()):
        metrics = group.get("metrics") or {}
        if "asr/cer" in metrics:
            found[language] = {"cer": round(metrics["asr/cer"], 2), "wer": round(metrics["asr/wer"], 2)}
    return found


def lm_summary(model_path: Path) -> dict[str, object]:
    """What ``mtspeech lm`` stored with the model: order, size, the tuned weight and bonus and the whole grid."""
    if not model_path.exists():
        return {}
    from mtspeech.model.package import load_model

    loaded = load_model(model_path)
    if loaded.lm is None:
        return {}
    keep = ("sentences", "ngrams", "fit_split", "tune_split", "tune_transcripts_in_fit_split", "weight")
    keep += ("bonus", "text_only_rows", "text_lines", "tuning")
    return {"order": loaded.lm.order, **{k: loaded.lm.metadata[k] for k in keep if k in loaded.lm.metadata}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("work/runs/synth-small"))
    parser.add_argument("--corpus", type=Path, default=Path("work/corpus-small"))
    parser.add_argument("--evaluate", action="store_true", help="run mtspeech evaluate first")
    parser.add_argument(
        "--lm-weight", type=float, help="with --evaluate: n-gram LM weight (0: without the model's LM; default: tuned)"
    )
    parser.add_argument(
        "--results-name", default="synth-small", help="writes bench/results/NAME.json (e.g. synth-small-long)"
    )
    args = parser.parse_args()
    # A chosen LM weight gets its own report directory: RUN/eval stays the model's default evaluation.
    eval_dir = args.run / ("eval" if args.lm_weight is None else f"eval-lm{args.lm_weight:g}")
    report_path = eval_dir / "report.json"
    if args.evaluate or args.lm_weight is not None or not report_path.exists():
        cmd = [
            sys.executable,
            "-m",
            "mtspeech",
            "evaluate",
            "--model",
            str(args.run / "model.pt"),
            "--data",
            str(args.corpus),
        ]
        if args.lm_weight is not None:
            cmd += ["--lm-weight", str(args.lm_weight)]
        subprocess.run([*cmd, "--split", "test", "--out", str(eval_dir)], check=True)
    report = json.loads(report_path.read_text())
    metrics = report["metrics"]
    figures: dict[str, object] = {}
    floors: dict[str, dict[str, object]] = {}
    table = Table(title=f"{args.run} on the test split ({report['num_utterances']} utterances)")
    for column in ("metric", "value %", "floor", "met"):
        table.add_column(column)
    for key, (name, floor, higher) in KEYS.items():
        value = metrics.get(name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        figures[key] = round(float(value), 2)
        met = None if floor is None else (value >= floor if higher else value <= floor)
        if floor is not None:
            floors[key] = {"floor": floor, "higher_is_better": higher, "met": met}
        table.add_row(
            key,
            f"{value:.2f}",
            "" if floor is None else f"{'>=' if higher else '<='} {floor:g}",
            "" if met is None else ("yes" if met else "no"),
        )
    figures["geometric_mean"] = round(float(report["score"]), 2) if report.get("score") is not None else None
    Console().print(table)
    command = f"python bench/synth_small.py --run {args.run} --corpus {args.corpus}"
    if args.evaluate:  # without it a rerun would read whatever report the run dir holds
        command += " --evaluate"
    if args.lm_weight is not None:
        command += f" --lm-weight {args.lm_weight:g}"
    if args.results_name != "synth-small":
        command += f" --results-name {args.results_name}"
    meta = report.get("metadata") or {}
    decoding = {k: meta[k] for k in ("decoding", "beam_size", "lm_weight", "lm_bonus") if k in meta}
    summary = {"training": training_summary(args.run), "decoding": decoding, "utterances": report["num_utterances"]}
    summary["asr_by_language"] = asr_by_language(report)
    lm = lm_summary(args.run / "model.pt")
    if lm:
        summary["lm"] = lm
    path = write_results(args.results_name, {**figures, "floors": floors, **summary}, command)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
