"""``mtspeech lm --model M --data CORPUS``: add an n-gram language model to a packaged model for shallow fusion.

Estimates a token n-gram LM on one split's transcripts (``train``), the corpus' text-only rows of that split
(sentences no recording speaks, ``manifests/texts_train.jsonl.gz`` of a synthesised corpus) and any ``--text``
files, tunes its fusion
weight and length bonus by the CER of the model's own ASR decoding on another split (``valid``), and writes the
model file with the LM and the tuned values inside; ``evaluate``, ``analyze`` and ``serve`` then use them
(``--lm-weight 0`` turns it off).
"""

from __future__ import annotations

from pathlib import Path

import typer

from mtspeech.cli.common import console, user_errors
from mtspeech.errors import UserError


def _floats(text: str, option: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{option}: expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise UserError(f"{option}: give at least one number")
    return values


def read_text_files(paths: list[Path]) -> list[str]:
    """Non-empty lines of each ``--text`` file (UTF-8)."""
    lines: list[str] = []
    for path in paths:
        if not path.is_file():
            raise UserError("--text: file not found", path=path)
        try:
            content = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise UserError(f"--text: not UTF-8 text ({err.reason} at byte {err.start})", path=path) from None
        lines += [line.strip() for line in content.splitlines() if line.strip()]
    return lines


@user_errors
def lm_cmd(
    model: Path = typer.Option(..., "--model", "-m", help="Packaged model file (RUN/model.pt)."),
    data: Path = typer.Option(..., "--data", "-d", help="Corpus directory whose transcripts train and tune the LM."),
    fit_split: str = typer.Option("train", "--fit-split", help="Split whose transcripts estimate the LM."),
    tune_split: str = typer.Option("valid", "--tune-split", help="Split the fusion weight is tuned on (by CER)."),
    order: int = typer.Option(8, "--order", help="N-gram order in tokenizer pieces (characters for a char model)."),
    weights: str = typer.Option("0.5,0.7,1,1.3", "--weights", help="LM weights to try (comma-separated)."),
    bonuses: str = typer.Option("1,1.5,2,2.5,3,3.5", "--bonuses", help="Per-token length bonuses to try."),
    text: list[Path] = typer.Option(
        [], "--text", help="Also estimate on this text file (one sentence per line; may be repeated)."
    ),
    corpus_text: bool = typer.Option(
        True, "--corpus-text/--no-corpus-text", help="Also estimate on the corpus' text-only rows of --fit-split."
    ),
    max_utterances: int | None = typer.Option(None, "--max-utterances", help="Tune on the first N cuts only."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Model file to write (default: --model, in place)."),
) -> None:
    """Estimate an n-gram LM on a split's transcripts, tune its fusion weight on another split, and store both
    in the model file."""
    from rich.table import Table

    from mtspeech.data.corpus import load_cuts, load_texts
    from mtspeech.decode.lm_fit import TuningPoint, best_point, fit_lm, transcripts, tune_fusion, write_with_lm
    from mtspeech.evaluate.predict import PredictOptions, resolve_decoding, select_cuts
    from mtspeech.evaluate.text import normalise_text
    from mtspeech.model.package import load_model

    if order < 1:
        raise UserError(f"--order must be >= 1, got {order}")
    weight_grid, bonus_grid = _floats(weights, "--weights"), _floats(bonuses, "--bonuses")
    if any(w < 0 for w in weight_grid):
        raise UserError(f"--weights must be >= 0, got {weights!r}")
    if not data.is_dir():
        raise UserError("corpus directory not found (expected the output of mtspeech corpus synth)", path=data)
    loaded = load_model(model)
    if "asr_ctc" not in loaded.model.tasks:
        raise UserError("the n-gram LM is fused into CTC prefix beam search, and this model has no asr_ctc head")
    texts = transcripts(load_cuts(data, fit_split))
    unspoken = [row.text for row in load_texts(data, fit_split)] if corpus_text else []
    extra = read_text_files(text)
    lm = fit_lm(texts + unspoken + extra, loaded.tokenizer, order)
    more = f", {len(unspoken):,} text-only rows" if unspoken else ""
    more += f" and {len(extra):,} lines of --text" if extra else ""
    console.print(
        f"LM: order {order}, {lm.metadata['ngrams']:,} n-grams from {len(texts):,} {fit_split} transcripts{more}",
        highlight=False,
    )

    loaded.lm = None  # the base decoding is the model's own, whatever LM it carried before
    base = resolve_decoding(loaded, PredictOptions(lm_weight=0.0))
    assert base is not None  # the model has a CTC head
    tune_cuts = select_cuts(load_cuts(data, tune_split), max_utterances)
    # A tuning sentence the LM has seen makes the tuned weight too trusting: say how many there are.
    seen = {normalise_text(t) for t in texts + unspoken + extra}
    tune_texts = transcripts(tune_cuts)
    overlap = sum(normalise_text(t) in seen for t in tune_texts)
    source = fit_split + (" + text-only rows" if unspoken else "") + (" + --text" if extra else "")
    console.print(f"{overlap} of {len(tune_texts)} {tune_split} transcripts also occur in the LM's text ({source})")
    table = Table(title=f"{base.mode} on {tune_split}: CER / WER by LM weight and length bonus", title_justify="left")
    for header in ("weight", "bonus", "CER %", "WER %"):
        table.add_column(header, justify="right")

    def show(point: TuningPoint) -> None:
        console.print(f"  weight {point.weight:g}, bonus {point.bonus:g}: CER {point.cer:.2f}%", highlight=False)

    points = tune_fusion(loaded, lm, tune_cuts, base, weight_grid, bonus_grid, progress=show)
    best = best_point(points)
    for p in points:
        mark = " *" if p is best else ""
        table.add_row(f"{p.weight:g}", f"{p.bonus:g}", f"{p.cer:.2f}{mark}", f"{p.wer:.2f}")
    console.print(table)
    lm.metadata |= {
        "weight": best.weight,
        "bonus": best.bonus,
        "fit_split": fit_split,
        "tune_split": tune_split,
        "tune_transcripts_in_fit_split": overlap,
        "text_only_rows": len(unspoken),
        "text_files": [str(p) for p in text],
        "text_lines": len(extra),
        "tuning": [p.__dict__ for p in points],
    }
    path = write_with_lm(loaded, lm, out or model)
    without = points[0]
    change = f"{tune_split} CER {without.cer:.2f}% -> {best.cer:.2f}%"
    console.print(f"chosen: weight {best.weight:g}, bonus {best.bonus:g} ({change}); wrote {path}", highlight=False)
