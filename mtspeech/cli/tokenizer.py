"""``mtspeech data tokenizer CORPUS --out DIR``: train the SentencePiece tokenizer on a corpus's training cuts."""

from __future__ import annotations

from pathlib import Path

import typer

from mtspeech.cli.common import user_errors


@user_errors
def train_tokenizer_cmd(
    corpus: Path = typer.Argument(..., help="Corpus directory (with manifests/cuts_{split}.jsonl.gz)."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for tokenizer.model + tokenizer.json."),
    vocab_size: int = typer.Option(1000, "--vocab-size", help="Text pieces incl. 256 byte pieces (soft limit)."),
    model_type: str = typer.Option("unigram", "--model-type", help="SentencePiece model: unigram, bpe or char."),
    split: str = typer.Option("train", "--split", help="Which split's cuts to read."),
    seed: int = typer.Option(0, "--seed", help="SentencePiece random seed (training is single-threaded)."),
    timestamp_resolution: float = typer.Option(0.04, "--timestamp-resolution", help="Seconds per timestamp step."),
    max_timestamp: float = typer.Option(30.0, "--max-timestamp", help="Largest timestamp token, in seconds."),
) -> None:
    """Train the tokenizer on every transcript, translation and SLURP annotation of CORPUS's train split."""
    from mtspeech.data.corpus import load_cuts
    from mtspeech.data.tokenizer import train_tokenizer_from_cuts
    from mtspeech.errors import UserError

    if not corpus.is_dir():
        raise UserError("corpus directory not found", path=corpus)
    cuts = load_cuts(corpus, split)
    tok = train_tokenizer_from_cuts(
        cuts,
        vocab_size=vocab_size,
        model_type=model_type,
        seed=seed,
        timestamp_resolution=timestamp_resolution,
        max_timestamp=max_timestamp,
    )
    tok.save(out)
    typer.echo(
        f"tokenizer: {tok.sp_size} text pieces + {len(tok.special_tokens)} specials = {tok.vocab_size} ids "
        f"({len(tok.languages)} languages, {len(tok.intents)} intents, {tok.num_timestamps} timestamps) -> {out}"
    )


tokenizer = train_tokenizer_cmd
