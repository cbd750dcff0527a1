"""``mtspeech evaluate`` (one model on one test split) and ``mtspeech compare`` (1 multi-task model vs N
single-task models, or balancers against each other). See docs/evaluation.md and docs/compare.md."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from mtspeech.cli.common import user_errors
from mtspeech.errors import UserError

if TYPE_CHECKING:
    from mtspeech.evaluate.predict import PredictOptions
    from mtspeech.evaluate.report import EvaluationReport

# `compare` collects its run lists itself (see _split_run_arguments): click options take one value each, and a
# shell glob such as `--single recipes/single/*.yaml` expands into several words.
COMPARE_COMMAND: dict[str, Any] = {
    "context_settings": {"allow_extra_args": True, "ignore_unknown_options": True},
    "options_metavar": "[OPTIONS] [CONFIG|RUN]... [--single CONFIG|RUN...]",
}
ROLE_FLAGS = {"--multi": "multi", "--single": "single", "--runs": "multi"}

DECODING_HELP = (
    "ASR decoding mode: auto (CTC prefix beam + attention rescoring when the model has both), ctc_greedy, "
    "ctc_prefix_beam, attention_beam, attention_rescoring or joint_ctc_attention."
)
LANGUAGE_HELP = "Decoder prompt language: auto (the lid head's answer, else the reference) or reference."


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA device is available")
    return name


def _tasks(text: str | None) -> tuple[str, ...] | None:
    return None if not text else tuple(t.strip() for t in text.split(",") if t.strip())


def _predict_options(**values: Any) -> PredictOptions:
    from mtspeech.evaluate.predict import PredictOptions

    values["device"] = _device(values["device"])
    values["tasks"] = _tasks(values.get("tasks"))
    return PredictOptions(**values)


def print_report(report: EvaluationReport, sources: dict[str, str]) -> None:
    """The headline table of a report on stdout."""
    from rich.console import Console
    from rich.table import Table

    from mtspeech.evaluate.render import fmt
    from mtspeech.evaluate.scoring import HEADLINE

    table = Table(title=f"{report.num_utterances} utterances", title_justify="left")
    for header in ("task", "answered by", "metric", "value", "score (0-100)", "utterances"):
        table.add_column(header, justify="right" if header in ("value", "score (0-100)", "utterances") else "left")
    for task, score in report.headline.items():
        metric = HEADLINE[task]
        count = str(report.counts.get(task, ""))
        table.add_row(task, sources.get(task, ""), metric, fmt(report.metrics.get(metric)), fmt(score), count)
    console = Console()
    console.print(table)
    console.print(f"[bold]score[/] (geometric mean of {len(report.headline)} task scores): {fmt(report.score)}")


@user_errors
def evaluate_cmd(
    model: Path = typer.Option(..., "--model", "-m", help="Packaged model file (RUN/model.pt)."),
    data: Path = typer.Option(..., "--data", "-d", help="Corpus directory (mtspeech corpus synth or an importer)."),
    split: str = typer.Option("test", "--split", help="Split of the corpus to evaluate on."),
    decoding: str = typer.Option("auto", "--decoding", help=DECODING_HELP),
    beam_size: int = typer.Option(5, "--beam-size", help="Beam size of every search (and n-best of rescoring)."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="Answer tokens at most per utterance."),
    language: str = typer.Option("auto", "--language", help=LANGUAGE_HELP),
    vad_gating: bool = typer.Option(False, "--vad-gating", help="Decode only the speech found by the vad head."),
    lm_weight: float | None = typer.Option(
        None, "--lm-weight", help="N-gram LM fusion weight (default: the one mtspeech lm tuned; 0: no LM)."
    ),
    tasks: str | None = typer.Option(None, "--tasks", help="Only these tasks, e.g. asr,intent (default: all)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Report directory (default: MODEL_DIR/eval-SPLIT)."),
    slurp_predictions: Path | None = typer.Option(
        None, "--slurp-predictions", help="Also write intents and slots as SLURP prediction JSONL to this path."
    ),
    max_utterances: int | None = typer.Option(None, "--max-utterances", help="Evaluate the first N cuts only."),
    batch_duration: float = typer.Option(60.0, "--batch-duration", help="Seconds of padded audio per batch."),
    min_group_size: int = typer.Option(5, "--min-group-size", help="Smallest group shown in the breakdown."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    num_workers: int = typer.Option(0, "--num-workers", help="Processes reading audio."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Score a model on a test split: every task it was trained for, the 0-100 geometric mean, a breakdown by
    language/accent/gender/noise, report.md + report.html with plots, and predictions.jsonl."""
    from mtspeech.data.corpus import load_cuts
    from mtspeech.evaluate.predict import Predictor, select_cuts
    from mtspeech.evaluate.records import write_results_jsonl
    from mtspeech.evaluate.render import write_report
    from mtspeech.evaluate.report import EvaluationOptions, evaluate_predictions
    from mtspeech.evaluate.slurp import slurp_predictions as to_slurp
    from mtspeech.evaluate.slurp import write_slurp_predictions
    from mtspeech.model.package import load_model

    options = _predict_options(
        decoding=decoding,
        beam_size=beam_size,
        max_tokens=max_tokens,
        language=language,
        vad_gating=vad_gating,
        lm_weight=lm_weight,
        tasks=tasks,
        max_utterances=max_utterances,
        batch_duration=batch_duration,
        device=device,
        num_workers=num_workers,
        progress=progress,
    )
    evaluation = EvaluationOptions.from_dict({"min_group_size": min_group_size})
    if not data.is_dir():
        raise UserError("corpus directory not found (expected the output of mtspeech corpus synth)", path=data)
    cuts = select_cuts(load_cuts(data, split), max_utterances)
    loaded = load_model(model, map_location=options.device)
    predictor = Predictor(loaded, options)
    records = predictor.predict(cuts)
    metadata = {"model": str(model), "data": str(data), "split": split, **predictor.describe()}
    metadata["model_seconds"] = round(predictor.timings.model_seconds, 3)
    report = evaluate_predictions(records, evaluation, metadata=metadata)
    out_dir = out if out is not None else model.parent / f"eval-{split}"
    paths = write_report(report, out_dir)
    predictions = write_results_jsonl(records, out_dir / "predictions.jsonl")
    print_report(report, predictor.sources)
    typer.echo(f"report: {paths['markdown']} and {paths['html']}; predictions: {predictions}")
    if slurp_predictions is not None:
        written = write_slurp_predictions(to_slurp(records), slurp_predictions)
        typer.echo(f"SLURP predictions: {written}")


def _split_run_arguments(args: list[str]) -> dict[str, list[Path]]:
    """Extra words of ``compare`` in order: configs/runs are multi-task until ``--single`` switches the role;
    ``--multi`` and ``--runs`` switch back. An unknown option is a UserError (click let it through)."""
    lists: dict[str, list[Path]] = {"multi": [], "single": []}
    role = "multi"
    for word in args:
        flag, eq, value = word.partition("=")
        if flag in ROLE_FLAGS:
            role = ROLE_FLAGS[flag]
            if eq:
                lists[role].append(Path(value))
        elif word.startswith("-") and word != "-":
            raise UserError(f"unknown option {word!r} for compare; see mtspeech compare --help")
        else:
            lists[role].append(Path(word))
    return lists


def _pareto_pairs(values: list[str]) -> list[tuple[str, str]]:
    from mtspeech.evaluate.scoring import HEADLINE

    pairs = []
    for value in values:
        x, sep, y = value.partition(":")
        metrics = [x.strip(), y.strip()]
        if not sep or not all("/" in m for m in metrics):
            raise UserError(f"--pareto expects TASK/METRIC:TASK/METRIC (e.g. asr/wer:intent/accuracy), got {value!r}")
        unknown = [m for m in metrics if m.split("/", 1)[0] not in HEADLINE]
        if unknown:
            raise UserError(f"--pareto: unknown task in {unknown[0]!r}; tasks: {', '.join(HEADLINE)}")
        pairs.append((metrics[0], metrics[1]))
    return pairs


@user_errors
def compare_cmd(
    ctx: typer.Context,
    out: Path = typer.Option(Path("exp/compare"), "--out", "-o", help="Output directory (runs, reports, tables)."),
    steps: int | None = typer.Option(None, "--steps", help="Step budget of every run (default: the first config's)."),
    balancers: str | None = typer.Option(
        None, "--balancers", help="Train the multi-task config once per balancer, e.g. static,dwa,uncertainty,pcgrad."
    ),
    data: Path | None = typer.Option(None, "--data", "-d", help="Test corpus (default: the first run's corpus)."),
    split: str = typer.Option("test", "--split", help="Split every run is evaluated on."),
    decoding: str = typer.Option("auto", "--decoding", help=DECODING_HELP),
    beam_size: int = typer.Option(5, "--beam-size", help="Beam size of every search."),
    language: str = typer.Option("auto", "--language", help=LANGUAGE_HELP),
    max_utterances: int | None = typer.Option(None, "--max-utterances", help="Evaluate on the first N cuts only."),
    batch_duration: float = typer.Option(60.0, "--batch-duration", help="Seconds of padded audio per batch."),
    latency_utterances: int = typer.Option(16, "--latency-utterances", help="Cuts timed for latency (0 = skip)."),
    latency_repeats: int = typer.Option(3, "--latency-repeats", help="Timed passes; the median is reported."),
    pareto: list[str] = typer.Option([], "--pareto", help="Metric pair to plot, e.g. asr/wer:intent/accuracy."),
    overrides: list[str] = typer.Option([], "--set", help="Override a key of every training config (repeatable)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N (evaluation and timing)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Compare runs trained with the same step budget on the same test split.

    Runs are given after the options: CONFIG.yaml files (or run directories / model files) are multi-task runs;
    every one after --single is a single-task baseline, after --multi or --runs a multi-task run again:

        mtspeech compare --multi recipes/synth-small.yaml --single recipes/single/*.yaml --steps 2000

    Writes OUT/compare.md, OUT/compare.json and OUT/plots/; run it again to resume (finished runs are reused).
    """
    from rich.console import Console

    from mtspeech.evaluate.compare import CompareOptions, plan_runs, run_compare
    from mtspeech.evaluate.report import EvaluationOptions

    lists = _split_run_arguments(list(ctx.args))
    names = [b.strip() for b in balancers.split(",") if b.strip()] if balancers else None
    specs = plan_runs(lists["multi"], lists["single"], names)
    if latency_utterances < 0 or latency_repeats < 1:
        raise UserError("--latency-utterances must be >= 0 and --latency-repeats >= 1")
    options = CompareOptions(
        out=out,
        steps=steps,
        data=data,
        split=split,
        predict=_predict_options(
            decoding=decoding,
            beam_size=beam_size,
            language=language,
            max_utterances=max_utterances,
            batch_duration=batch_duration,
            device=device,
            progress=progress,
        ),
        evaluation=EvaluationOptions.from_dict({}),
        train_overrides=list(overrides),
        latency_utterances=latency_utterances,
        latency_repeats=latency_repeats,
        pareto=_pareto_pairs(pareto),
    )
    console = Console(stderr=True)
    summary, paths = run_compare(specs, options, say=lambda text: console.print(text, highlight=False, markup=False))
    print_comparison(summary)
    typer.echo(f"comparison: {paths['markdown']} and {paths['json']}")


def print_comparison(summary: dict[str, Any]) -> None:
    """The comparison table and findings on stdout."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{summary['utterances']} utterances of {summary['split']}", title_justify="left")
    headers = summary["table"]["headers"]
    for i, header in enumerate(headers):
        table.add_column(header or "", justify="left" if i == 0 else "right")
    for row in summary["table"]["rows"]:
        table.add_row(*row)
    console = Console()
    console.print(table)
    for line in summary["findings"]:
        console.print(f"* {line}", highlight=False)
