"""``mtspeech data ...``: import your own corpora, validate them and train the tokenizer."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mtspeech.cli.common import console, user_errors
from mtspeech.cli.tokenizer import train_tokenizer_cmd
from mtspeech.errors import UserError

if TYPE_CHECKING:
    from mtspeech.data.importers.common import ImportSummary, ProgressFn

app = typer.Typer(help="Import your own corpora, validate them and train the tokenizer.", no_args_is_help=True)
import_app = typer.Typer(
    help="Import a corpus (Kaldi, SLURP, JSONL or Lhotse manifests) into mtspeech's layout: "
    "OUT/manifests/{recordings,supervisions,cuts}_{split}.jsonl.gz + OUT/corpus.json. Audio stays where it is.",
    no_args_is_help=True,
)
app.add_typer(import_app, name="import")
app.command("tokenizer")(train_tokenizer_cmd)


class AudioCheck(StrEnum):
    none = "none"
    header = "header"
    full = "full"


class CutMode(StrEnum):
    supervision = "supervision"
    recording = "recording"


_OUT = typer.Option(..., "--out", "-o", help="Corpus directory to write (created; other splits in it are kept).")
_NAME = typer.Option(None, "--name", help="Corpus name for mixing several corpora (default: the --out folder name).")
_OVERWRITE = typer.Option(False, "--overwrite", help="Replace splits that already exist in --out.")


@contextmanager
def _progress_bars() -> Iterator[ProgressFn]:
    """A progress callback drawing one rich bar per stage on stderr (a counter when the total is unknown)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as bars:
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int | None) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total)
            bars.update(tasks[stage], completed=done, total=total)

        yield update


def _print_summaries(summaries: Sequence[ImportSummary]) -> None:
    from rich.table import Table

    table = Table(title=f"imported into {summaries[0].corpus_dir}")
    for column in ("split", "recordings", "supervisions", "cuts", "hours", "labels"):
        table.add_column(column, justify="left" if column in ("split", "labels") else "right")
    for s in summaries:
        labels = "; ".join(f"{k}: {len(v)}" for k, v in s.labels.items()) or "transcripts only"
        table.add_row(s.split, str(s.recordings), str(s.supervisions), str(s.cuts), f"{s.hours:.3f}", labels)
    console.print(table)
    for summary in summaries:
        for warning in summary.warnings:
            console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    console.print(f"next: mtspeech data validate {summaries[0].corpus_dir}", highlight=False)


@import_app.command("kaldi")
@user_errors
def import_kaldi_cmd(
    data_dir: Path = typer.Argument(..., help="Kaldi data dir: wav.scp + text (+ segments, utt2spk, utt2lang, ...)."),
    out: Path = _OUT,
    split: str = typer.Option("train", "--split", help="Split to write (train, valid, test, or any name)."),
    name: str | None = _NAME,
    audio_root: Path | None = typer.Option(
        None, "--audio-root", help="Resolve relative wav.scp paths here (default: the current directory, as Kaldi)."
    ),
    overwrite: bool = _OVERWRITE,
) -> None:
    """Import a Kaldi data directory (wav.scp, text, segments, utt2spk, ...).

    wav.scp may hold files or pipes ('sox in.sph -t wav - |'). Without segments each wav.scp entry is one
    utterance; with segments, the segments are. utt2spk gives speakers, spk2gender/utt2gender genders
    (m/f), utt2lang ISO 639-1 languages ('English' is accepted).
    """
    from mtspeech.data.importers.kaldi import import_kaldi

    with _progress_bars() as progress:
        summary = import_kaldi(
            data_dir, out, split=split, name=name, audio_root=audio_root, overwrite=overwrite, progress=progress
        )
    _print_summaries([summary])


@import_app.command("slurp")
@user_errors
def import_slurp_cmd(
    source: Path = typer.Argument(..., help="SLURP's dataset/slurp directory (train/devel/test.jsonl) or one jsonl."),
    audio_dir: Path = typer.Option(..., "--audio-dir", help="Directory holding slurp_real/ and/or slurp_synth/."),
    out: Path = _OUT,
    split: str | None = typer.Option(
        None, "--split", help="Put everything into this split (default: train/devel/test from the file names)."
    ),
    name: str | None = _NAME,
    skip_missing_audio: bool = typer.Option(
        False, "--skip-missing-audio", help="Leave out recordings whose audio is missing (warn) instead of failing."
    ),
    overwrite: bool = _OVERWRITE,
) -> None:
    """Import SLURP (train/devel/test.jsonl + audio).

    Each recording of a line becomes a cut with the sentence, intent (scenario_action), slots as word spans +
    BIO tags and the bracketed annotation. train_synthetic joins train, devel becomes valid."""
    from mtspeech.data.importers.slurp import import_slurp

    with _progress_bars() as progress:
        summaries = import_slurp(
            source,
            audio_dir,
            out,
            split=split,
            name=name,
            skip_missing_audio=skip_missing_audio,
            overwrite=overwrite,
            progress=progress,
        )
    _print_summaries(summaries)


@import_app.command("jsonl")
@user_errors
def import_jsonl_cmd(
    source: Path = typer.Argument(..., help="JSONL manifest (.jsonl or .jsonl.gz), one utterance per line."),
    out: Path = _OUT,
    split: str = typer.Option("train", "--split", help="Split to write (train, valid, test, or any name)."),
    name: str | None = _NAME,
    overwrite: bool = _OVERWRITE,
) -> None:
    """Import a generic JSONL manifest, one utterance per line.

    Keys per line: audio (required; relative to the file), id, text,
    language, speaker, gender, intent, slots or bio, translation {lang: text}, emotion, accent, sentence_id,
    slurp_annotation, start/end (seconds) or segments. An unknown key is an error, so typos never drop labels."""
    from mtspeech.data.importers.jsonl import import_jsonl

    with _progress_bars() as progress:
        summary = import_jsonl(source, out, split=split, name=name, overwrite=overwrite, progress=progress)
    _print_summaries([summary])


def _parse_split_map(pairs: Sequence[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        match = re.fullmatch(r"\s*([^=\s]+)\s*=\s*([^=\s]+)\s*", pair)
        if match is None:
            raise UserError(f"--split-map takes FROM=TO (e.g. dev-clean=valid), got {pair!r}")
        mapping[match.group(1)] = match.group(2)
    return mapping


@import_app.command("lhotse")
@user_errors
def import_lhotse_cmd(
    sources: list[Path] = typer.Argument(..., help="A directory of Lhotse manifests, or manifest files."),
    out: Path = _OUT,
    split: str | None = typer.Option(
        None, "--split", help="Put everything into this split (default: from the file names; none -> train)."
    ),
    split_map: list[str] = typer.Option(
        [], "--split-map", help="Rename a split, FROM=TO (repeatable), e.g. --split-map dev-clean=valid."
    ),
    name: str | None = _NAME,
    cuts: CutMode = typer.Option(
        CutMode.supervision,
        "--cuts",
        help="Cuts from recordings + supervisions: one per supervision, or one per recording (cuts files are kept).",
    ),
    exact_segments: bool | None = typer.Option(
        None,
        "--exact-segments/--no-exact-segments",
        help="Whether supervisions mark speech exactly (VAD trusts them) (default: the cut's flag, else no).",
    ),
    audio_root: Path | None = typer.Option(
        None, "--audio-root", help="Resolve relative audio paths here (default: manifest dir, then current dir)."
    ),
    skip_missing_audio: bool = typer.Option(
        False, "--skip-missing-audio", help="Leave out recordings whose audio is missing (warn) instead of failing."
    ),
    overwrite: bool = _OVERWRITE,
) -> None:
    """Import Lhotse manifests as they are (recordings + supervisions, or cuts).

    Reads *recordings*, *supervisions* and *cuts* .jsonl/.jsonl.gz files per split, e.g. from a Lhotse recipe
    or another mtspeech corpus. Splits come from the names ('dev', 'devel', 'validation' become valid)."""
    from mtspeech.data.importers.lhotse_dir import import_lhotse

    with _progress_bars() as progress:
        summaries = import_lhotse(
            sources,
            out,
            split=split,
            split_map=_parse_split_map(split_map),
            name=name,
            cuts=cuts.value,
            exact_segments=exact_segments,
            audio_root=audio_root,
            skip_missing_audio=skip_missing_audio,
            overwrite=overwrite,
            progress=progress,
        )
    _print_summaries(summaries)


@app.command("validate")
@user_errors
def validate_cmd(
    corpus_dir: Path = typer.Argument(..., help="Corpus directory (corpus.json + manifests/)."),
    json_output: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout instead of a table."),
    splits: list[str] = typer.Option([], "--split", help="Check only this split (repeatable) (default: all)."),
    audio: AudioCheck = typer.Option(
        AudioCheck.header, "--audio", help="Audio check: none, header (fast, default) or full (decode everything)."
    ),
) -> None:
    """Check a corpus and print every problem at once, with file and manifest line.

    Checks missing/unreadable audio, sampling rate and channels, empty transcripts, segments past the end of
    the audio, slot spans and BIO tags, unknown labels, duplicate ids and garbled lines.
    Exit status 1 when there are errors, else 0 (warnings allowed)."""
    from rich.console import Console

    from mtspeech.data.validate import validate_corpus

    with _progress_bars() as progress:
        report = validate_corpus(corpus_dir, splits or None, audio=audio.value, progress=progress)
    if json_output:
        typer.echo(report.to_json())
    else:
        report.render(Console(soft_wrap=False))
    if not report.ok:
        raise typer.Exit(1)
