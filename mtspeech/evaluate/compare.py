"""``mtspeech compare``: one multi-task model against N single-task models (or balancers against each other).

Every run trains with the SAME step budget (``max_steps`` overridden), is evaluated on the SAME test cuts with the
same decoding settings, and has its inference latency measured on the same audio in the same process. The
result (:mod:`mtspeech.evaluate.compare_report`) puts each task's metric, the parameter count, the latency and
the geometric mean of the 1 model beside those of the N models, and draws Pareto plots.

Layout of ``--out``::

    runs/NAME/       each training run (checkpoints, logs, model.pt)
    eval/NAME/       its evaluation report (report.md/html/json, plots/) and predictions.jsonl
    compare.md, compare.json, plots/

Resumable: a run whose ``model.pt`` was trained for the budget is not trained again, a run with checkpoints
but no model continues from its newest checkpoint, and an evaluation whose report was made from the same
model file, test cuts and decoding settings is read back instead of decoded again. Latency is always measured
afresh: comparing timings only makes sense within one process on one machine.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mtspeech.errors import UserError
from mtspeech.evaluate.predict import PredictOptions, Predictor, Timings, make_batches, select_cuts
from mtspeech.evaluate.report import EvaluationOptions, EvaluationReport, evaluate_predictions, load_report

logger = logging.getLogger(__name__)

Role = Literal["multi", "single"]
CONFIG_SUFFIXES = (".yaml", ".yml")
MODEL_FILE = "model.pt"  # what `mtspeech train` writes into its output_dir (mtspeech.train.state.MODEL_FILE)


@dataclass
class RunSpec:
    """One column of the comparison: a training config to run, or an existing run directory / model file."""

    name: str
    role: Role
    source: Path
    balancer: str | None = None

    @property
    def trains(self) -> bool:
        return self.source.suffix.lower() in CONFIG_SUFFIXES


@dataclass
class CompareOptions:
    out: Path
    steps: int | None = None  # None: the first training config's max_steps, for every run
    data: Path | None = None  # test corpus; None: the first corpus of the first run's training config
    split: str = "test"
    predict: PredictOptions = field(default_factory=PredictOptions)
    evaluation: EvaluationOptions = field(default_factory=lambda: EvaluationOptions.from_dict({}))
    train_overrides: list[str] = field(default_factory=list)  # `--set KEY=VALUE` for every training run
    latency_utterances: int = 16  # 0 = do not measure latency
    latency_repeats: int = 3
    pareto: list[tuple[str, str]] = field(default_factory=list)  # metric pairs; empty: chosen from the tasks


@dataclass
class RunResult:
    spec: RunSpec
    model_path: Path
    report: EvaluationReport
    sources: dict[str, str]  # evaluation task -> what answers it in this model
    parameters: int
    steps: int | None
    status: str  # how the model was obtained: trained | resumed | reused | existing
    latency: dict[str, float] = field(default_factory=dict)
    train_seconds: float | None = None  # wall time of its training loop (model metadata), when recorded


# --- planning ---------------------------------------------------------------------------------------------
def _run_name(source: Path) -> str:
    if source.suffix.lower() in CONFIG_SUFFIXES:
        return source.stem
    if source.is_file():  # RUN/model.pt names its run; any other file names itself
        return source.parent.name if source.name == MODEL_FILE else source.stem
    return source.name


def plan_runs(
    multi: Sequence[Path], single: Sequence[Path] = (), balancers: Sequence[str] | None = None
) -> list[RunSpec]:
    """Columns in order: each multi-task source (once per balancer when ``balancers`` is given), then the
    single-task sources. Names come from file names; clashes get a numeric suffix."""
    from mtspeech.train.balancers.config import METHODS

    unknown = [b for b in balancers or () if b not in METHODS]
    if unknown:
        raise UserError(f"unknown balancer {unknown[0]!r} in --balancers; known: {', '.join(METHODS)}")
    if not multi and not single:
        raise UserError("nothing to compare: give training configs (or runs) with CONFIG..., --multi or --single")
    if balancers and not any(_is_config(p) for p in multi):
        raise UserError("--balancers needs a multi-task training config (CONFIG or --multi) to train per balancer")
    specs: list[RunSpec] = []
    for source in multi:
        _check_source(source)
        if balancers and _is_config(source):
            specs += [RunSpec(f"{_run_name(source)}-{b}", "multi", source, b) for b in dict.fromkeys(balancers)]
        else:
            specs.append(RunSpec(_run_name(source), "multi", source))
    for source in single:
        _check_source(source)
        specs.append(RunSpec(_run_name(source), "single", source))
    seen: dict[str, int] = {}
    for spec in specs:
        count = seen.get(spec.name, 0)
        seen[spec.name] = count + 1
        if count:
            spec.name = f"{spec.name}-{count + 1}"
    return specs


def _is_config(path: Path) -> bool:
    return path.suffix.lower() in CONFIG_SUFFIXES


def _check_source(source: Path) -> None:
    if not source.exists():
        raise UserError("no such training config, run directory or model file", path=source)
    if source.is_dir() and not (source / MODEL_FILE).is_file():
        raise UserError(f"run directory without a {MODEL_FILE} (training unfinished?)", path=source)
    if source.is_file() and not _is_config(source) and source.suffix != ".pt":
        raise UserError("expected a training config (.yaml), a run directory or a model file (.pt)", path=source)


# --- training ---------------------------------------------------------------------------------------------
def _balancer_section(raw: dict[str, Any], name: str) -> dict[str, Any]:
    """The config's balancer section switched to ``name``: task weights and telemetry kept, options of other
    methods dropped (a DWA temperature must not fail a PCGrad run)."""
    from mtspeech.train.balancers.config import OPTION_METHODS

    section = dict(raw.get("balancer") or {})
    kept = {k: v for k, v in section.items() if k in ("weights", "telemetry_every")}
    kept.update({k: v for k, v in section.items() if name in OPTION_METHODS.get(k, ())})
    return {**kept, "name": name}


def training_config(spec: RunSpec, options: CompareOptions, steps: int | None) -> Any:
    """The validated TrainConfig of ``spec``: the file, the ``--set`` overrides, then the comparison's own
    settings (budget, output directory, balancer) on top."""
    from mtspeech.train.config import validate_train_config
    from mtspeech.train.config_file import apply_overrides, load_raw_config

    raw = apply_overrides(load_raw_config(spec.source), options.train_overrides)
    if steps is not None:
        raw.data["max_steps"] = steps
    raw.data["output_dir"] = str(options.out / "runs" / spec.name)
    if not options.predict.progress:  # --no-progress: quiet training too
        raw.data["progress_bar"] = False
    if spec.balancer is not None:
        raw.data["balancer"] = _balancer_section(raw.data, spec.balancer)
    return validate_train_config(raw, source=spec.source)


def step_budget(specs: Sequence[RunSpec], options: CompareOptions) -> int | None:
    """``--steps``, else the first training config's ``max_steps`` (None when nothing is trained)."""
    if options.steps is not None:
        if options.steps < 1:
            raise UserError(f"--steps must be >= 1, got {options.steps}")
        return options.steps
    first = next((s for s in specs if s.trains), None)
    return None if first is None else int(training_config(first, options, None).max_steps)


def obtain_model(spec: RunSpec, config: Any, steps: int | None) -> tuple[Path, str]:
    """Train ``spec`` unless its run directory already holds a model trained for ``steps``; resume a run that
    stopped early. Returns the model path and what was done."""
    if not spec.trains:
        return (spec.source / MODEL_FILE if spec.source.is_dir() else spec.source), "existing"
    from mtspeech.model.package import load_model
    from mtspeech.train.trainer import train

    run_dir = Path(config.output_dir)
    model_path = run_dir / MODEL_FILE
    if model_path.is_file():
        metadata = load_model(model_path).metadata
        trained = metadata.get("trained_steps")
        # A run that its own max_minutes stopped early finished its budget too (a time-budgeted comparison).
        planned = (metadata.get("train_config") or {}).get("max_steps")
        if trained == steps or (metadata.get("stopped_by") == "max_minutes" and planned == steps):
            return model_path, "reused"
        raise UserError(
            f"run {spec.name!r} was trained for {trained} steps, not {steps}: choose another --out, or delete "
            "the run directory to train it again",
            path=run_dir,
        )
    resume = any((run_dir / "checkpoints").glob("step-*.pt"))
    logger.info("%s run %s for %s steps", "resuming" if resume else "training", spec.name, steps)
    result = train(config, resume=resume)
    if result.model_path is None:
        raise UserError(f"training of {spec.name!r} stopped at step {result.steps}; run compare again to resume it")
    return Path(result.model_path), "resumed" if resume else "trained"


# --- evaluation -------------------------------------------------------------------------------------------
def test_corpus(specs: Sequence[RunSpec], configs: dict[str, Any], options: CompareOptions) -> Path:
    """``--data``, else the first corpus of the first run that names one (its config or model metadata)."""
    if options.data is not None:
        return options.data
    for spec in specs:
        if spec.name in configs:
            return Path(configs[spec.name].data.corpora[0].path)
    raise UserError("no test corpus: pass --data CORPUS_DIR (the runs carry no training config naming one)")


def evaluate_model(
    predictor: Predictor,
    model_path: Path,
    cuts: list[Any],
    out_dir: Path,
    fingerprint: dict[str, Any],
    evaluation: EvaluationOptions,
) -> tuple[EvaluationReport, bool]:
    """The model's report on ``cuts`` and whether it was read back (``out_dir`` holds one with the same
    ``fingerprint``) rather than decoded, scored and written (report files and predictions.jsonl)."""
    from mtspeech.evaluate.records import write_results_jsonl
    from mtspeech.evaluate.render import write_report

    if (out_dir / "report.json").is_file():
        report = load_report(out_dir)
        if report.metadata.get("fingerprint") == fingerprint:
            return report, True
    records = predictor.predict(cuts)
    metadata = {"model": str(model_path), **predictor.describe(), "fingerprint": fingerprint}
    report = evaluate_predictions(records, evaluation, metadata=metadata)
    write_report(report, out_dir)
    write_results_jsonl(records, out_dir / "predictions.jsonl")
    return report, False


def measure_latency(predictors: dict[str, Predictor], cuts: Sequence[Any], repeats: int) -> dict[str, dict[str, float]]:
    """Median seconds each predictor needs for ``cuts`` (front end, encoder and every task; audio decoded from
    files once beforehand and shared). Runs are interleaved per repeat so machine noise hits all alike, after
    one untimed warm-up batch each."""
    from mtspeech.data.features import load_waveform

    if not cuts or not predictors:
        return {}
    any_predictor = next(iter(predictors.values()))
    rate = any_predictor.model.frontend.sample_rate
    batches = make_batches(list(cuts), any_predictor.options.batch_duration)
    audio = [(batch, [load_waveform(cut, rate) for cut in batch]) for batch in batches]
    audio_seconds = sum(float(c.duration) for c in cuts)
    for predictor in predictors.values():
        predictor.predict_batch(*audio[0])
    samples: dict[str, list[float]] = {name: [] for name in predictors}
    for _ in range(max(1, repeats)):
        for name, predictor in predictors.items():
            predictor.timings = Timings()
            for batch, waves in audio:
                predictor.predict_batch(batch, waves)
            samples[name].append(predictor.timings.model_seconds)
    out = {}
    for name, values in samples.items():
        seconds = statistics.median(values)
        out[name] = {
            "seconds": seconds,
            "ms_per_utterance": 1000.0 * seconds / len(cuts),
            "real_time_factor": seconds / audio_seconds if audio_seconds else float("nan"),
        }
    return out


def run_compare(
    specs: Sequence[RunSpec], options: CompareOptions, say: Callable[[str], None] = logger.info
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Train (or reuse), evaluate and time every run, then write the comparison; returns the summary dict
    (as in compare.json) and the written paths."""
    from mtspeech.data.corpus import load_cuts
    from mtspeech.evaluate.compare_report import summarise, write_compare
    from mtspeech.model.model import count_parameters
    from mtspeech.model.package import load_model

    specs = list(specs)
    steps = step_budget(specs, options)
    configs = {s.name: training_config(s, options, steps) for s in specs if s.trains}  # fail fast on bad configs
    data = test_corpus(specs, configs, options)
    if not data.is_dir():
        raise UserError("test corpus directory not found", path=data)
    cuts = select_cuts(load_cuts(data, options.split), options.predict.max_utterances)
    if not cuts:
        raise UserError(f"split {options.split!r} has no cuts", path=data)
    results: list[RunResult] = []
    predictors: dict[str, Predictor] = {}
    for spec in specs:
        say(f"[{spec.name}] {spec.role}-task run from {spec.source}")
        model_path, status = obtain_model(spec, configs.get(spec.name), steps)
        loaded = load_model(model_path, map_location=options.predict.device)
        trained_steps = loaded.metadata.get("trained_steps")
        fingerprint = _json_round_trip(
            {
                "model": str(model_path.resolve()),
                "model_mtime_ns": model_path.stat().st_mtime_ns,
                "data": str(data.resolve()),
                "split": options.split,
                "utterances": len(cuts),
                "predict": {k: v for k, v in dataclasses.asdict(options.predict).items() if k not in _NOT_FINGERPRINT},
                "evaluation": options.evaluation.model_dump(),
            }
        )
        predictor = predictors[spec.name] = Predictor(loaded, options.predict)
        eval_dir = options.out / "eval" / spec.name
        report, reused = evaluate_model(predictor, model_path, cuts, eval_dir, fingerprint, options.evaluation)
        what = "reused the evaluation" if reused else "evaluated"
        say(f"[{spec.name}] {status} model, {what} on {len(cuts)} utterances of {data.name}/{options.split}")
        parameters = count_parameters(loaded.model)["total"]
        results.append(
            RunResult(
                spec,
                model_path,
                report,
                dict(predictor.sources),
                parameters,
                trained_steps,
                status,
                train_seconds=loaded.metadata.get("train_seconds"),
            )
        )
    if options.latency_utterances > 0:
        say(f"measuring latency on {min(len(cuts), options.latency_utterances)} utterances")
        latency = measure_latency(predictors, cuts[: options.latency_utterances], options.latency_repeats)
        for result in results:
            result.latency = latency.get(result.spec.name, {})
    context = {
        "steps": steps,
        "data": str(data),
        "split": options.split,
        "utterances": len(cuts),
        "latency_utterances": min(len(cuts), options.latency_utterances),
        "latency_repeats": options.latency_repeats,
        "device": options.predict.device,
    }
    summary = summarise(results, context, options.pareto)
    return summary, write_compare(summary, options.out)


def _json_round_trip(value: Any) -> Any:
    """As it reads back from report.json (tuples become lists), so a saved fingerprint compares equal."""
    return json.loads(json.dumps(value))


# Options that do not change predictions (a progress bar, worker count) do not invalidate a saved report.
_NOT_FINGERPRINT = ("progress", "num_workers", "device", "max_utterances")
