"""The evaluation entry point: records in, :class:`EvaluationReport` out (JSON-serialisable, re-loadable).

``evaluate_predictions(records)`` computes every metric (:mod:`compute`), their 0-100 forms and the geometric
mean score (:mod:`scoring`), the per-group breakdown (:mod:`groups`) and keeps what the plots need (confusion
matrices, a few VAD examples, the worst transcripts). ``write_report`` (:mod:`render`) turns it into files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from mtspeech.errors import UserError
from mtspeech.evaluate.compute import compute_metrics, worst_transcripts
from mtspeech.evaluate.groups import DIMENSIONS, Breakdown, breakdown
from mtspeech.evaluate.metrics import ConfusionMatrix
from mtspeech.evaluate.records import UtteranceResult
from mtspeech.evaluate.scoring import geometric_mean, headline_scores, normalise_all
from mtspeech.model.config import StrictConfig, format_validation_error

REPORT_VERSION = 1


class EvaluationOptions(StrictConfig):
    """How a report is computed and drawn (a YAML ``evaluate:`` section or CLI flags)."""

    group_by: list[str] = Field(default_factory=lambda: ["language", "accent", "gender", "noise"])
    min_group_size: int = Field(5, ge=1, description="groups with fewer utterances are skipped in the breakdown")
    epsilon: float = Field(0.1, gt=0, le=100, description="floor of each 0-100 score inside the geometric mean")
    boundary_tolerance_ms: float = Field(500.0, gt=0, description="VAD boundary error that normalises to 0")
    top_intents: int = Field(15, ge=2, description="intents shown in the intent confusion matrix")
    vad_examples: int = Field(4, ge=0, description="utterances drawn as VAD timelines")
    worst_transcripts: int = Field(10, ge=0, description="worst ASR utterances listed in the report")

    @field_validator("group_by")
    @classmethod
    def _known_dimensions(cls, value: list[str]) -> list[str]:
        unknown = [d for d in value if d not in DIMENSIONS]
        if unknown:
            raise ValueError(f"unknown group dimension {unknown[0]!r}; known: {', '.join(DIMENSIONS)}")
        return value

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, *, source: str | Path | None = None) -> EvaluationOptions:
        """Validate a mapping (a YAML ``evaluate:`` section, CLI flags); errors become one UserError."""
        if data is not None and not isinstance(data, Mapping):
            raise UserError(f"evaluation options must be a mapping, got {type(data).__name__}", path=source)
        try:
            return cls.model_validate(dict(data or {}))
        except ValidationError as err:
            raise UserError(format_validation_error(err, prefix="evaluate"), path=source) from None


@dataclass
class EvaluationReport:
    """Everything an evaluation found. Metric values are in their natural units (percent, BLEU, ms);
    ``normalised`` holds the 0-100 higher-is-better forms and ``score`` their geometric mean over ``headline``."""

    num_utterances: int
    metrics: dict[str, float]
    counts: dict[str, int]
    normalised: dict[str, float]
    headline: dict[str, float]
    score: float
    options: dict[str, Any]
    confusions: dict[str, ConfusionMatrix] = field(default_factory=dict)
    groups: dict[str, Breakdown] = field(default_factory=dict)
    worst_transcripts: list[dict[str, Any]] = field(default_factory=list)
    vad_examples: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)  # set by the caller: model, corpus, split, decoding

    def to_dict(self) -> dict[str, Any]:
        return _finite(
            {
                "version": REPORT_VERSION,
                "num_utterances": self.num_utterances,
                "score": self.score,
                "headline": self.headline,
                "metrics": self.metrics,
                "normalised": self.normalised,
                "counts": self.counts,
                "options": self.options,
                "confusions": {k: c.to_dict() for k, c in self.confusions.items()},
                "groups": {k: b.to_dict() for k, b in self.groups.items()},
                "worst_transcripts": self.worst_transcripts,
                "vad_examples": self.vad_examples,
                "metadata": self.metadata,
            }
        )

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> EvaluationReport:
        data = _nan_back(data)
        return EvaluationReport(
            num_utterances=int(data["num_utterances"]),
            metrics=dict(data["metrics"]),
            counts={k: int(v) for k, v in data["counts"].items()},
            normalised=dict(data["normalised"]),
            headline=dict(data["headline"]),
            score=data["score"],
            options=dict(data.get("options", {})),
            confusions={k: ConfusionMatrix.from_dict(c) for k, c in data.get("confusions", {}).items()},
            groups={k: Breakdown.from_dict(b) for k, b in data.get("groups", {}).items()},
            worst_transcripts=list(data.get("worst_transcripts", [])),
            vad_examples=list(data.get("vad_examples", [])),
            metadata=dict(data.get("metadata", {})),
        )


def evaluate_predictions(
    records: Sequence[UtteranceResult],
    options: EvaluationOptions | Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> EvaluationReport:
    """Score ``records`` (see the package docs); an empty list or duplicate ids are a UserError."""
    if not isinstance(options, EvaluationOptions):
        options = EvaluationOptions.from_dict(options)
    if not records:
        raise UserError("nothing to evaluate: no utterance results")
    seen: set[str] = set()
    for record in records:
        if record.id in seen:
            raise UserError(f"utterance id {record.id!r} appears twice in the results")
        seen.add(record.id)
    results = compute_metrics(records)
    if "intent" in results.confusions:
        results.confusions["intent"] = results.confusions["intent"].top(options.top_intents)
    normalised = normalise_all(results.metrics, tolerance_ms=options.boundary_tolerance_ms)
    headline = headline_scores(normalised)
    return EvaluationReport(
        num_utterances=len(records),
        metrics=results.metrics,
        counts=results.counts,
        normalised=normalised,
        headline=headline,
        score=geometric_mean(headline, epsilon=options.epsilon),
        options=options.model_dump(),
        confusions=results.confusions,
        groups=breakdown(
            records,
            options.group_by,
            min_group_size=options.min_group_size,
            epsilon=options.epsilon,
            tolerance_ms=options.boundary_tolerance_ms,
        ),
        worst_transcripts=worst_transcripts(records, options.worst_transcripts),
        vad_examples=_vad_examples(records, options.vad_examples),
        metadata=dict(metadata or {}),
    )


def _vad_examples(records: Sequence[UtteranceResult], limit: int) -> list[dict[str, Any]]:
    """The utterances with the most reference speech segments (scenes are the interesting ones), ties by id."""
    candidates = [
        r for r in records if r.reference.speech_segments is not None and r.prediction.vad_segments() is not None
    ]
    candidates.sort(key=lambda r: (-len(r.reference.speech_segments or []), r.id))
    examples = []
    for record in candidates[:limit]:
        reference = [list(s) for s in record.reference.speech_segments or []]
        predicted = [list(s) for s in record.prediction.vad_segments() or []]
        ends = [end for _, end in [*reference, *predicted]]
        duration = record.duration if record.duration is not None else max(ends, default=0.0)
        examples.append({"id": record.id, "duration": duration, "reference": reference, "predicted": predicted})
    return examples


def save_report_json(report: EvaluationReport, path: str | Path) -> Path:
    """Write ``report.json`` (temp + rename); NaN becomes null so any JSON reader accepts it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".tmp-" + path.name)
    tmp.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def load_report(path: str | Path) -> EvaluationReport:
    """A report written by :func:`save_report_json` (a directory means its ``report.json``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    if not path.is_file():
        raise UserError("no evaluation report here (expected report.json)", path=path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("version") != REPORT_VERSION:
            raise ValueError(f"not an mtspeech evaluation report (version {REPORT_VERSION})")
        return EvaluationReport.from_dict(data)
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"cannot read evaluation report: {err}", path=path) from None


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


_NAN_DICTS = ("metrics", "normalised", "headline")


def _nan_back(data: Mapping[str, Any]) -> dict[str, Any]:
    """null -> NaN where a number is expected (top-level metric dicts, scores and group metrics)."""
    out = dict(data)
    out["score"] = math.nan if data.get("score") is None else float(data["score"])
    for key in _NAN_DICTS:
        out[key] = {k: (math.nan if v is None else float(v)) for k, v in data.get(key, {}).items()}
    groups = {}
    for dim, block in data.get("groups", {}).items():
        block = dict(block)
        block["groups"] = {
            name: {
                **g,
                "score": math.nan if g.get("score") is None else g["score"],
                "metrics": {k: (math.nan if v is None else v) for k, v in g.get("metrics", {}).items()},
            }
            for name, g in block.get("groups", {}).items()
        }
        groups[dim] = block
    out["groups"] = groups
    return out
