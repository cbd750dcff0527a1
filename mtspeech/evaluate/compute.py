"""All task metrics of a list of :class:`UtteranceResult` records, as one flat ``task/metric`` dict.

Which utterances a task is scored on: those whose reference has the task's label. A task is evaluated at all
only when at least one of those utterances also has a prediction for it (a run that did not decode a task is
not punished for it). Inside an evaluated task a missing prediction counts as wrong: an empty transcript or
translation, no intent, no slots, no speech.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mtspeech.data import schema
from mtspeech.evaluate import metrics as m
from mtspeech.evaluate.records import UtteranceResult
from mtspeech.evaluate.slurp import entities_of, slot_metrics, split_intent
from mtspeech.evaluate.vad import vad_metrics

# task name -> (label field, closed label order for its confusion matrix or None)
CLASSIFICATION_TASKS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "intent": ("intent", None),
    "lid": ("language", schema.LANGUAGES),
    "emotion": ("emotion", schema.EMOTIONS),
    "accent": ("accent", schema.ACCENTS),
    "speaker": ("speaker", None),
    "gender": ("gender", schema.GENDERS),
}
CONFUSION_TASKS = ("intent", "lid", "emotion", "accent")


@dataclass
class TaskResults:
    """Metrics of one set of records: values, the number of utterances each task was scored on, confusions."""

    metrics: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    confusions: dict[str, m.ConfusionMatrix] = field(default_factory=dict)


def _scored(records: Sequence[UtteranceResult], has_reference: Callable, has_prediction: Callable):
    """Records with a reference label, or [] when none of them has a prediction (task not evaluated)."""
    labelled = [r for r in records if has_reference(r)]
    return labelled if any(has_prediction(r) for r in labelled) else []


def compute_metrics(records: Sequence[UtteranceResult], *, confusions: bool = True) -> TaskResults:
    """Every metric the records allow (see the module docstring)."""
    out = TaskResults()
    _asr(records, out)
    _translation(records, out)
    _slots(records, out)
    _classification(records, out, confusions)
    _vad(records, out)
    return out


def _asr(records: Sequence[UtteranceResult], out: TaskResults) -> None:
    scored = _scored(records, lambda r: r.reference.text is not None, lambda r: r.prediction.text is not None)
    if not scored:
        return
    refs = [r.reference.text or "" for r in scored]
    hyps = [r.prediction.text or "" for r in scored]
    words = m.word_errors(refs, hyps)
    if not words.reference_units:
        return  # only empty references: a rate is undefined
    out.metrics["asr/wer"] = words.rate
    out.metrics["asr/cer"] = m.character_errors(refs, hyps).rate
    out.metrics["asr/substitutions"] = 100.0 * words.substitutions / words.reference_units
    out.metrics["asr/deletions"] = 100.0 * words.deletions / words.reference_units
    out.metrics["asr/insertions"] = 100.0 * words.insertions / words.reference_units
    out.counts["asr"] = len(scored)


def _translation(records: Sequence[UtteranceResult], out: TaskResults) -> None:
    targets = sorted({t for r in records for t in r.reference.translation})
    pooled_refs: list[str] = []
    pooled_hyps: list[str] = []
    for target in targets:
        scored = _scored(
            records, lambda r, t=target: t in r.reference.translation, lambda r, t=target: t in r.prediction.translation
        )
        if not scored:
            continue
        refs = [r.reference.translation[target] for r in scored]
        hyps = [r.prediction.translation.get(target, "") for r in scored]
        out.metrics[f"st/bleu_{target}"] = m.bleu(refs, hyps)
        out.metrics[f"st/chrf_{target}"] = m.chrf(refs, hyps)
        out.counts[f"st_{target}"] = len(scored)
        pooled_refs += refs
        pooled_hyps += hyps
    if pooled_refs:
        out.metrics["st/bleu"] = m.bleu(pooled_refs, pooled_hyps)
        out.metrics["st/chrf"] = m.chrf(pooled_refs, pooled_hyps)
        out.counts["st"] = len(pooled_refs)


def _slots(records: Sequence[UtteranceResult], out: TaskResults) -> None:
    scored = _scored(records, lambda r: r.reference.slots is not None, lambda r: r.prediction.slots is not None)
    if not scored:
        return
    refs = [entities_of(r.reference.slots, r.reference.text) for r in scored]
    preds = [entities_of(r.prediction.slots, r.prediction.text) for r in scored]
    for name, value in slot_metrics(refs, preds).items():
        out.metrics[f"slots/{name}"] = value
    out.counts["slots"] = len(scored)


def _classification(records: Sequence[UtteranceResult], out: TaskResults, confusions: bool) -> None:
    for task, (name, order) in CLASSIFICATION_TASKS.items():
        scored = _scored(
            records,
            lambda r, n=name: getattr(r.reference, n) is not None,
            lambda r, n=name: getattr(r.prediction, n) is not None,
        )
        if not scored:
            continue
        refs = [getattr(r.reference, name) for r in scored]
        preds = [getattr(r.prediction, name) for r in scored]
        out.metrics[f"{task}/accuracy"] = m.accuracy(refs, preds)
        out.metrics[f"{task}/uar"] = m.unweighted_average_recall(refs, preds)
        out.counts[task] = len(scored)
        if task == "intent":
            # SLURP reports scenario and action accuracy beside the joint intent.
            ref_parts = [split_intent(x) for x in refs]
            pred_parts = [split_intent(x) for x in preds]
            out.metrics["intent/scenario_accuracy"] = m.accuracy([a for a, _ in ref_parts], [a for a, _ in pred_parts])
            out.metrics["intent/action_accuracy"] = m.accuracy([b for _, b in ref_parts], [b for _, b in pred_parts])
        if confusions and task in CONFUSION_TASKS:
            out.confusions[task] = m.confusion_matrix(
                refs, preds, [x for x in order or () if x in set(refs) | set(preds)]
            )


def _vad(records: Sequence[UtteranceResult], out: TaskResults) -> None:
    scored = _scored(
        records, lambda r: r.reference.speech_segments is not None, lambda r: r.prediction.vad_segments() is not None
    )
    if not scored:
        return
    refs = [r.reference.speech_segments or [] for r in scored]
    preds = [r.prediction.vad_segments() or [] for r in scored]
    for name, value in vad_metrics(refs, preds, [r.duration for r in scored]).items():
        out.metrics[f"vad/{name}"] = value
    out.counts["vad"] = len(scored)


def worst_transcripts(records: Sequence[UtteranceResult], limit: int) -> list[dict[str, Any]]:
    """The ``limit`` utterances with the most word errors (ties by id), for the report."""
    rows = []
    for record in records:
        if record.reference.text is None or record.prediction.text is None:
            continue
        counts = m.word_errors([record.reference.text], [record.prediction.text])
        errors = counts.substitutions + counts.deletions + counts.insertions
        if errors:
            rows.append(
                {
                    "id": record.id,
                    "reference": record.reference.text,
                    "hypothesis": record.prediction.text,
                    "errors": errors,
                    "wer": counts.rate,
                }
            )
    rows.sort(key=lambda row: (-row["errors"], row["id"]))
    return rows[:limit]
