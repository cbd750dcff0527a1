"""``mtspeech analyze FILES... --model M``: the service's answers for audio files, without a server.

Same inference path as ``POST /v1/analyze`` (:class:`~mtspeech.serve.inference.ModelAnalyzer`): each file is
decoded to 16 kHz mono by the service's decoder, files are batched, the encoder runs once per batch, every
requested task is answered from it. A file that cannot be read is reported in its row (``error``) and the
command exits with status 1 after writing the others.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from mtspeech.cli.common import console, user_errors
from mtspeech.errors import UserError


class OutputFormat(StrEnum):
    json = "json"
    jsonl = "jsonl"
    tsv = "tsv"


def parse_tasks(tasks: str | None, offered: tuple[str, ...], default: tuple[str, ...]) -> tuple[str, ...]:
    """``--tasks asr,intent`` -> validated task names (the model's default tasks when not given)."""
    if not tasks:
        return default
    wanted = tuple(dict.fromkeys(t.strip() for t in tasks.split(",") if t.strip()))
    unknown = [t for t in wanted if t not in offered]
    if unknown or not wanted:
        raise UserError(f"--tasks: unknown task(s) {unknown or [tasks]}; this model answers: {', '.join(offered)}")
    return wanted


def analyze_cmd(
    files: list[Path] = typer.Argument(..., help="Audio files (wav, flac, ogg, mp3, webm, ...; any rate/channels)."),
    model: Path = typer.Option(..., "--model", "-m", help="Model file (written by training / save_model)."),
    tasks: str | None = typer.Option(
        None, "--tasks", "-t", help="Comma-separated tasks (default: all but translation)."
    ),
    translate_to: str | None = typer.Option(
        None, "--translate-to", help="Also translate into this language (fr, de...)."
    ),
    output_format: OutputFormat = typer.Option(OutputFormat.json, "--format", "-f", help="json, jsonl or tsv."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output file (default: stdout)."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Files per encoder pass."),
    decode_mode: str | None = typer.Option(None, "--decode-mode", help="ASR decoding mode (default: per model)."),
    beam_size: int | None = typer.Option(None, "--beam-size", min=1, help="Beam size of every search."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", min=1, help="Answer tokens at most."),
    lm_weight: float | None = typer.Option(
        None, "--lm-weight", min=0.0, help="N-gram LM weight in the CTC search (default: as tuned; 0: off)."
    ),
    quantize: str | None = typer.Option(None, "--quantize", help="int8: dynamic int8 Linear layers (CPU)."),
    int8_engine: str | None = typer.Option(
        None,
        "--int8-engine",
        help="Kernels of --quantize int8 (default auto: oneDNN on AMX CPUs); x86, fbgemm, onednn.",
    ),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1 ..."),
    max_seconds: float = typer.Option(600.0, "--max-seconds", help="Longest file accepted, in seconds."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on stderr for many files."),
) -> None:
    """Answer every requested task for each audio FILE with one encoder pass per batch of files."""
    _analyze(**locals())


@user_errors
def _analyze(**args: Any) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from mtspeech.serve.audio import AudioError, AudioLimits, decode_audio
    from mtspeech.serve.inference import load_analyzer

    files: list[Path] = args["files"]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise UserError("audio file not found", path=missing[0])
    analyzer = load_analyzer(
        args["model"],
        mode=args["decode_mode"],
        beam_size=args["beam_size"],
        max_tokens=args["max_tokens"],
        lm_weight=args["lm_weight"],
        quantize=args["quantize"],
        int8_engine=args["int8_engine"],
        device=args["device"],
    )
    wanted = parse_tasks(args["tasks"], analyzer.tasks, analyzer.default_tasks)
    target = args["translate_to"]
    if target and "translation" not in wanted:
        wanted = (*wanted, "translation")
    if "translation" in wanted and not target:
        raise UserError("the translation task needs --translate-to (fr, de, es, ...)")
    limits = AudioLimits(max_bytes=2**40, max_seconds=args["max_seconds"])
    records: list[dict[str, Any]] = []
    columns = (TextColumn("analyze"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=not args["progress"] or len(files) < 2) as bar:
        task = bar.add_task("analyze", total=len(files))
        for start in range(0, len(files), args["batch_size"]):
            chunk = files[start : start + args["batch_size"]]
            decoded, rows = [], []
            for path in chunk:
                record: dict[str, Any] = {"file": str(path)}
                try:
                    audio = decode_audio(path.read_bytes(), None, limits)
                except AudioError as err:
                    record["error"] = err.message
                else:
                    record["audio"] = {
                        "duration": round(audio.duration, 3),
                        "sample_rate": audio.source_rate,
                        "channels": audio.source_channels,
                    }
                    decoded.append(audio.samples)
                    rows.append(record)
                records.append(record)
            if decoded:
                for record, answer in zip(
                    rows, analyzer.analyze(decoded, wanted, [target] * len(decoded)), strict=True
                ):
                    record.update(answer)
            bar.advance(task, len(chunk))
    _write(records, wanted, args["output_format"], args["out"])
    failed = [r for r in records if "error" in r]
    for record in failed:
        console.print(f"[yellow]warning:[/] {record['file']}: {record['error']}", highlight=False)
    if failed:
        raise typer.Exit(1)


def _write(
    records: list[dict[str, Any]], tasks: tuple[str, ...], output_format: OutputFormat, out: Path | None
) -> None:
    if output_format == OutputFormat.json:
        text = json.dumps(records, ensure_ascii=False, indent=2) + "\n"
    elif output_format == OutputFormat.jsonl:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    else:
        text = tsv_table(records, tasks)
    if out is None:
        sys.stdout.write(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    console.print(f"wrote {len(records)} answer(s) to {out}", highlight=False)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return " ".join(text.replace("\t", " ").split())  # one line, no tabs: a TSV cell


def tsv_table(records: list[dict[str, Any]], tasks: tuple[str, ...]) -> str:
    """One row per file: the label/text and confidence of each task; slots as ``type=value`` pairs, voice
    activity as ``start-end`` seconds."""
    header = ["file", "duration"]
    for task in tasks:
        main = {"asr": "text", "slots": "spans", "vad": "segments", "translation": "text"}.get(task, "label")
        header += [f"{task}_{main}", f"{task}_confidence"]
    header.append("error")
    lines = ["\t".join(header)]
    for record in records:
        cells = [record["file"], record.get("audio", {}).get("duration")]
        for task in tasks:
            answer = record.get(task) or {}
            if task == "slots":
                main = "; ".join(f"{s['type']}={s['value']}" for s in answer.get("spans", []))
            elif task == "vad":
                main = " ".join(f"{s['start']:.2f}-{s['end']:.2f}" for s in answer.get("segments", []))
            elif task in ("asr", "translation"):
                main = answer.get("text")
            else:
                main = answer.get("label")
            cells += [main, answer.get("confidence")]
        cells.append(record.get("error"))
        lines.append("\t".join(_cell(c) for c in cells))
    return "\n".join(lines) + "\n"
