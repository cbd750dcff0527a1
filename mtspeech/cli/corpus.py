"""``mtspeech corpus ...``: the synthetic multi-task corpus (owned by the synthesis module)."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path

import typer

from mtspeech.cli.common import console, user_errors
from mtspeech.errors import UserError

app = typer.Typer(help="Synthesise and summarise the embedded multilingual multi-task corpus.", no_args_is_help=True)


class Size(StrEnum):
    tiny = "tiny"
    small = "small"
    base = "base"


@app.command()
@user_errors
def synth(
    out: Path = typer.Option(..., "--out", "-o", help="Directory to write the corpus to (created if missing)."),
    size: Size = typer.Option(
        Size.small,
        "--size",
        help="tiny: 72 utterances, ~10 s (tests); small: 3300 utterances, 3.2 h (CPU demo); base: 12000, ~12 h (GPU).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for sentences, splits, voices, prosody and noise."),
    jobs: int | None = typer.Option(None, "--jobs", "-j", help="Worker processes [default: all CPU cores]."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the corpus already in --out."),
) -> None:
    """Speak the embedded sentence pool with espeak-ng into a multi-task corpus.

    English SLURP commands (intent + slots), French/German/Spanish/Italian sentences, English sentences
    with translations, four emotions rendered as prosody, seven English accents, 16 speakers (4 held out
    of train), silences and noise for VAD. Writes 16 kHz FLAC, Lhotse manifests per split, corpus.json
    and SUMMARY.md. Needs espeak-ng (apt-get install espeak-ng).
    """
    from mtspeech.data.synth.build import synthesize
    from mtspeech.data.synth.summary import collect_stats, summary_table

    started = time.perf_counter()
    corpus_dir = synthesize(out, size=size.value, seed=seed, num_jobs=jobs, overwrite=overwrite)
    console.print(summary_table(collect_stats(corpus_dir)))
    console.print(
        f"wrote {corpus_dir} in {time.perf_counter() - started:.0f} s; see {corpus_dir / 'SUMMARY.md'}",
        highlight=False,
    )


@app.command()
@user_errors
def summary(
    corpus_dir: Path = typer.Argument(..., help="Corpus directory (with manifests/cuts_*.jsonl.gz)."),
) -> None:
    """Write CORPUS_DIR/SUMMARY.md and plots/ (label counts per task and split, durations) and print a table."""
    from mtspeech.data.synth.summary import collect_stats, summary_table, write_summary

    if not corpus_dir.is_dir():
        raise UserError("not a directory", path=corpus_dir)
    path = write_summary(corpus_dir)
    console.print(summary_table(collect_stats(corpus_dir)))
    console.print(f"wrote {path}", highlight=False)
