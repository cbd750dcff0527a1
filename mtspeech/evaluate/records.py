"""What evaluation scores: one :class:`UtteranceResult` per utterance, reference labels beside predictions.

Everything in :mod:`mtspeech.evaluate` is a pure function of a list of these records, so the metrics do not
depend on the model, the decoder or the data loader. The ``mtspeech evaluate`` command fills them (references
with :func:`reference_from_cut`, predictions from the model) and may save them as JSONL
(:func:`write_results_jsonl`) so a run can be re-scored later without decoding again.

A field left ``None`` (or empty) means "no label" on the reference side and "not predicted" on the
prediction side; see :mod:`mtspeech.evaluate.compute` for how each task treats missing predictions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mtspeech.data import schema
from mtspeech.data.schema import SlotSpan
from mtspeech.errors import UserError
from mtspeech.jsonl import json_lines

Interval = tuple[float, float]  # (start, end) in seconds from the start of the utterance audio


@dataclass
class Labels:
    """The task labels shared by references and predictions."""

    text: str | None = None  # transcript in the spoken language
    language: str | None = None  # spoken language (ISO 639-1)
    intent: str | None = None  # SLURP ``scenario_action``
    slots: list[SlotSpan] | None = None  # word spans over ``text.split()``
    translation: dict[str, str] = field(default_factory=dict)  # target language -> translated text
    emotion: str | None = None
    accent: str | None = None
    gender: str | None = None
    speaker: str | None = None


@dataclass
class Reference(Labels):
    """Reference labels plus the recording conditions used to group results."""

    noise_type: str | None = None  # one of schema.NOISE_TYPES, "none" for clean audio
    snr_db: float | None = None
    speech_segments: list[Interval] | None = None  # exact speech segments; None when boundaries are not trusted


@dataclass
class Prediction(Labels):
    """Predictions; voice activity as segments, or as frame labels that are turned into segments."""

    speech_segments: list[Interval] | None = None
    vad_frames: list[int] | None = None  # 1 = speech, one per ``vad_frame_shift`` seconds
    vad_frame_shift: float = 0.04

    def vad_segments(self) -> list[Interval] | None:
        """``speech_segments`` when given, else runs of speech frames in ``vad_frames``, else None."""
        if self.speech_segments is not None:
            return self.speech_segments
        if self.vad_frames is None:
            return None
        return frames_to_segments(self.vad_frames, self.vad_frame_shift)


@dataclass
class UtteranceResult:
    """One utterance: its id, audio duration (seconds), reference labels and predictions."""

    id: str
    reference: Reference
    prediction: Prediction
    duration: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "duration": self.duration,
            "reference": _labels_to_dict(self.reference),
            "prediction": _labels_to_dict(self.prediction),
        }

    @staticmethod
    def from_dict(
        data: Mapping[str, Any], *, path: str | Path | None = None, line: int | None = None
    ) -> UtteranceResult:
        """Inverse of :meth:`to_dict`; a malformed record is a UserError naming the field."""
        try:
            unknown = sorted(set(data) - {"id", "duration", "reference", "prediction"})
            if unknown:
                raise ValueError(f"unknown key {unknown[0]!r}")
            duration = data.get("duration")
            return UtteranceResult(
                id=str(data["id"]),
                duration=None if duration is None else float(duration),
                reference=_labels_from_dict(Reference, data.get("reference") or {}),
                prediction=_labels_from_dict(Prediction, data.get("prediction") or {}),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise UserError(f"bad evaluation record: {err}", path=path, line=line) from None


def frames_to_segments(frames: Iterable[int | float | bool], frame_shift: float) -> list[Interval]:
    """Runs of truthy frames as ``(start, end)`` seconds; frame ``i`` covers ``[i, i + 1) * frame_shift``."""
    segments: list[Interval] = []
    start = None
    count = 0
    for i, value in enumerate(frames):
        count = i + 1
        if value and start is None:
            start = i
        elif not value and start is not None:
            segments.append((round(start * frame_shift, 6), round(i * frame_shift, 6)))
            start = None
    if start is not None:
        segments.append((round(start * frame_shift, 6), round(count * frame_shift, 6)))
    return segments


def _labels_to_dict(labels: Labels) -> dict[str, Any]:
    data = asdict(labels)
    if labels.slots is not None:
        data["slots"] = [s.to_dict() for s in labels.slots]
    if data.get("speech_segments") is not None:
        data["speech_segments"] = [[float(a), float(b)] for a, b in data["speech_segments"]]
    return {k: v for k, v in data.items() if v is not None and v != {}}


def _labels_from_dict(cls: type[Labels], data: Mapping[str, Any]) -> Labels:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__.lower()} key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")
    values = dict(data)
    if values.get("slots") is not None:
        values["slots"] = [SlotSpan.from_dict(s) for s in values["slots"]]
    if values.get("speech_segments") is not None:
        values["speech_segments"] = [(float(a), float(b)) for a, b in values["speech_segments"]]
    if values.get("translation") is not None:
        values["translation"] = {str(k): str(v) for k, v in values["translation"].items()}
    return cls(**values)


def write_jsonl_atomic(rows: Iterable[Mapping[str, Any]], path: str | Path) -> Path:
    """One JSON object per line (temp file + rename, so a crash never leaves half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".tmp-" + path.name)
    with tmp.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def write_results_jsonl(records: Iterable[UtteranceResult], path: str | Path) -> Path:
    """One record per line, written atomically."""
    return write_jsonl_atomic((record.to_dict() for record in records), path)


def read_results_jsonl(path: str | Path) -> list[UtteranceResult]:
    path = Path(path)
    if not path.is_file():
        raise UserError("no such results file", path=path)
    records = []
    with path.open(encoding="utf-8") as lines:
        for number, data in json_lines(lines, path):
            records.append(UtteranceResult.from_dict(data, path=path, line=number))
    return records


def reference_from_cut(cut: Any) -> Reference:
    """Reference labels of a Lhotse cut that follows the label contract of :mod:`mtspeech.data.schema`.

    Supervisions are read in time order: texts are joined with spaces and slot word spans shifted by the words
    before them (as the decoder's answers for consecutive segments are joined); single-valued labels (language,
    intent, emotion, ...) come from the first supervision that has them. Speech segments are kept only when
    the cut says its segments are exact (``custom["exact_segments"]``); such a cut without supervisions is
    noise only, so its reference transcript is empty (any hypothesised word is an insertion) rather than absent.
    """
    cut_custom = getattr(cut, "custom", None) or {}
    supervisions = sorted(cut.supervisions, key=lambda s: s.start)
    texts, slots, translations = [], [], {}
    word_offset = 0
    found_slots = False

    def first(getter) -> Any:
        return next((v for v in map(getter, supervisions) if v not in (None, "")), None)

    for sup in supervisions:
        custom = sup.custom or {}
        text = sup.text or ""
        if text:
            texts.append(text)
        if custom.get(schema.SLOTS) is not None:
            found_slots = True
            for slot in custom[schema.SLOTS]:
                span = SlotSpan.from_dict(slot)
                slots.append(SlotSpan(span.type, span.start + word_offset, span.end + word_offset, span.value))
        for target, translated in (custom.get(schema.TRANSLATION) or {}).items():
            translations[target] = f"{translations[target]} {translated}" if target in translations else translated
        word_offset += len(text.split())
    noise = cut_custom.get(schema.NOISE) or {}
    exact = bool(cut_custom.get(schema.EXACT_SEGMENTS, False))
    duration = float(cut.duration)
    return Reference(
        # a cut with exact segments and none of them is a noise-only scene: its transcript is known to be empty
        text=" ".join(texts) if supervisions or exact else None,
        language=first(lambda s: s.language),
        intent=first(lambda s: (s.custom or {}).get(schema.INTENT)),
        slots=slots if found_slots else None,
        translation=translations,
        emotion=first(lambda s: (s.custom or {}).get(schema.EMOTION)),
        accent=first(lambda s: (s.custom or {}).get(schema.ACCENT)),
        gender=first(lambda s: s.gender),
        speaker=first(lambda s: s.speaker),
        noise_type=noise.get("type"),
        snr_db=None if noise.get("snr_db") is None else float(noise["snr_db"]),
        # supervision times are relative to the cut; clip to its audio
        speech_segments=[(max(0.0, s.start), min(duration, s.end)) for s in supervisions] if exact else None,
    )
