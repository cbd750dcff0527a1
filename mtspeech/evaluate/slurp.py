"""SLU metrics as SLURP defines them (span F1 and SLU-F1) and SLURP's prediction JSONL format.

An *entity* is ``(type, filler)``: the slot type and its words. Counts are micro-averaged over the corpus.

**Span F1**: a predicted entity is a true positive when an unused reference entity of the same utterance has the
same type and the same filler (after :func:`normalise_filler`); leftovers are false positives (predicted) and
false negatives (reference). F1 = 2 TP / (2 TP + FP + FN).

**SLU-F1** (Bastianelli et al., 2020) gives partial credit when the type is right but the filler is not, which
span F1 punishes as harshly as a missing entity (ASR near-misses such as ``eighteen`` / ``eighteenth``). In each
utterance and for each type, reference and predicted entities of that type are paired one-to-one with the
smallest total distance (Hungarian assignment). A pair with filler distance ``d`` in [0, 1] adds
``TP += 1, FP += d, FN += d``; unpaired references add ``FN += 1``, unpaired predictions ``FP += 1``.
This is done twice, with a word-level distance (word edit distance / reference words) and a character-level
distance (character edit distance / reference characters, spaces removed), each clipped at 1. SLU-F1 is the
F1 of the summed counts of both passes: ``P = (TP_w + TP_c) / (TP_w + TP_c + FP_w + FP_c)``,
``R = (TP_w + TP_c) / (TP_w + TP_c + FN_w + FN_c)``, ``SLU-F1 = 2PR / (P + R)``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from scipy.optimize import linear_sum_assignment

from mtspeech.data.schema import SlotSpan
from mtspeech.errors import UserError
from mtspeech.evaluate.records import UtteranceResult, write_jsonl_atomic
from mtspeech.evaluate.text import normalise_filler
from mtspeech.jsonl import json_lines
from mtspeech.tasks.metrics import edit_distance

Entity = tuple[str, str]  # (type, filler)


@dataclass
class F1Counts:
    """Possibly fractional TP / FP / FN counts; precision, recall and F1 in percent (NaN when undefined)."""

    tp: float = 0.0
    fp: float = 0.0
    fn: float = 0.0

    def __add__(self, other: F1Counts) -> F1Counts:
        return F1Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def precision(self) -> float:
        return 100.0 * self.tp / (self.tp + self.fp) if self.tp + self.fp else math.nan

    @property
    def recall(self) -> float:
        return 100.0 * self.tp / (self.tp + self.fn) if self.tp + self.fn else math.nan

    @property
    def f1(self) -> float:
        """2 TP / (2 TP + FP + FN): equal to 2PR / (P + R); 100 when there is nothing to find and nothing found."""
        denominator = 2 * self.tp + self.fp + self.fn
        return 100.0 * 2 * self.tp / denominator if denominator else 100.0


def entities_of(slots: Sequence[SlotSpan] | None, text: str | None = None) -> list[Entity]:
    """``(type, filler)`` of each slot; an empty ``value`` falls back to the words of ``text`` it spans."""
    words = (text or "").split()
    found = []
    for slot in slots or []:
        filler = slot.value or " ".join(words[slot.start : slot.end])
        found.append((slot.type, normalise_filler(filler)))
    return found


def span_counts(reference: Sequence[Entity], predicted: Sequence[Entity]) -> F1Counts:
    """Exact ``(type, filler)`` matches of one utterance (multisets: a repeated entity must be predicted twice)."""
    matched = sum((Counter(reference) & Counter(predicted)).values())
    return F1Counts(matched, len(predicted) - matched, len(reference) - matched)


def filler_distance(reference: str, predicted: str, level: Literal["word", "char"]) -> float:
    """Edit distance normalised by the reference length and clipped to [0, 1]."""
    if level == "word":
        ref_units, pred_units = reference.split(), predicted.split()
    else:
        ref_units, pred_units = list("".join(reference.split())), list("".join(predicted.split()))
    if not ref_units:
        return 0.0 if not pred_units else 1.0
    return min(1.0, edit_distance(pred_units, ref_units) / len(ref_units))


def distance_counts(
    reference: Sequence[Entity], predicted: Sequence[Entity], level: Literal["word", "char"]
) -> F1Counts:
    """One utterance's SLU-F1 counts at one distance level (see the module docstring)."""
    counts = F1Counts()
    for kind in {t for t, _ in reference} | {t for t, _ in predicted}:
        refs = [f for t, f in reference if t == kind]
        preds = [f for t, f in predicted if t == kind]
        pairs: list[tuple[int, int]] = []
        if refs and preds:
            cost = np.array([[filler_distance(r, p, level) for p in preds] for r in refs])
            rows, cols = linear_sum_assignment(cost)
            pairs = list(zip(rows.tolist(), cols.tolist(), strict=True))
            for i, j in pairs:
                counts.tp += 1.0
                counts.fp += cost[i, j]
                counts.fn += cost[i, j]
        counts.fn += len(refs) - len(pairs)
        counts.fp += len(preds) - len(pairs)
    return counts


def slot_metrics(references: Sequence[Sequence[Entity]], predictions: Sequence[Sequence[Entity]]) -> dict[str, float]:
    """Corpus span F1 and SLU-F1 (with its word- and character-level parts), all in percent."""
    if len(references) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    span, word, char = F1Counts(), F1Counts(), F1Counts()
    for ref, pred in zip(references, predictions, strict=True):
        span += span_counts(ref, pred)
        word += distance_counts(ref, pred, "word")
        char += distance_counts(ref, pred, "char")
    slu = word + char
    return {
        "span_f1": span.f1,
        "span_precision": span.precision,
        "span_recall": span.recall,
        "slu_f1": slu.f1,
        "slu_precision": slu.precision,
        "slu_recall": slu.recall,
        "slu_f1_word": word.f1,
        "slu_f1_char": char.f1,
    }


# --- SLURP's prediction JSONL ------------------------------------------------------------------------------


def split_intent(intent: str | None) -> tuple[str, str]:
    """``alarm_set`` -> (``alarm``, ``set``); SLURP scenarios have no underscore, actions may (``hue_lightoff``)."""
    if not intent:
        return "", ""
    scenario, _, action = intent.partition("_")
    return scenario, action


def join_intent(scenario: str, action: str) -> str | None:
    if not scenario and not action:
        return None
    return f"{scenario}_{action}" if action else scenario


@dataclass
class SlurpPrediction:
    """One line of a SLURP prediction file."""

    file: str
    scenario: str
    action: str
    entities: list[dict[str, str]] = field(default_factory=list)  # [{"type": ..., "filler": ...}]

    @property
    def intent(self) -> str | None:
        return join_intent(self.scenario, self.action)

    def to_dict(self) -> dict:
        return {"file": self.file, "scenario": self.scenario, "action": self.action, "entities": self.entities}


def to_slurp_prediction(
    file: str, intent: str | None, slots: Sequence[SlotSpan] | None, text: str | None = None
) -> SlurpPrediction:
    """A :class:`SlurpPrediction` from an intent and slot spans (fillers as written, not normalised)."""
    scenario, action = split_intent(intent)
    words = (text or "").split()
    entities = [{"type": s.type, "filler": s.value or " ".join(words[s.start : s.end])} for s in slots or []]
    return SlurpPrediction(file, scenario, action, entities)


def slurp_predictions(
    records: Iterable[UtteranceResult],
    *,
    file_names: Mapping[str, str] | None = None,
    side: Literal["prediction", "reference"] = "prediction",
) -> list[SlurpPrediction]:
    """SLURP lines for the records that have an intent or slots on ``side``. ``file`` is the utterance id unless
    ``file_names`` maps it to the recording file SLURP's gold data names (``audio-1490105541.flac``);
    ``side="reference"`` exports the references the same way (handy to check a scorer on gold input)."""
    found = []
    for record in records:
        labels = record.prediction if side == "prediction" else record.reference
        if labels.intent is None and labels.slots is None:
            continue
        file = (file_names or {}).get(record.id, record.id)
        found.append(to_slurp_prediction(file, labels.intent, labels.slots, labels.text))
    return found


def write_slurp_predictions(predictions: Iterable[SlurpPrediction], path: str | Path) -> Path:
    """One JSON object per line, as SLURP's scorer reads them (``file``, ``scenario``, ``action``, ``entities``)."""
    return write_jsonl_atomic((prediction.to_dict() for prediction in predictions), path)


def read_slurp_predictions(path: str | Path) -> list[SlurpPrediction]:
    """Inverse of :func:`write_slurp_predictions`; a malformed line is a UserError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise UserError("no such SLURP prediction file", path=path)
    found = []
    for number, data in json_lines(path.read_text(encoding="utf-8").splitlines(), path, objects=False):
        found.append(_prediction_from_json(data, path, number))
    return found


def _prediction_from_json(data: object, path: Path, line: int) -> SlurpPrediction:
    if not isinstance(data, Mapping):
        raise UserError("expected a JSON object per line", path=path, line=line)
    for key in ("file", "scenario", "action"):
        if not isinstance(data.get(key), str):
            raise UserError(f"field {key!r} must be a string", path=path, line=line)
    entities = data.get("entities", [])
    if not isinstance(entities, list) or not all(
        isinstance(e, Mapping) and isinstance(e.get("type"), str) and isinstance(e.get("filler"), str) for e in entities
    ):
        raise UserError('field "entities" must be a list of {"type": str, "filler": str}', path=path, line=line)
    clean = [{"type": e["type"], "filler": e["filler"]} for e in entities]
    return SlurpPrediction(data["file"], data["scenario"], data["action"], clean)
