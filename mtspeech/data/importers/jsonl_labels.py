"""Label parsing for the generic JSONL importer: one line's keys -> supervision fields and ``custom`` labels
per :mod:`mtspeech.data.schema`. Every problem of a line is gathered into one :class:`LabelError`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from math import isfinite
from typing import Any

from mtspeech.data import schema
from mtspeech.data.validate_labels import (
    INTENT_PATTERN,
    check_bio,
    normalize_gender,
    normalize_language,
    parse_slots,
)

# Labels that describe the whole sentence, so they cannot be shared by several speech segments.
SENTENCE_KEYS = ("text", "intent", "slots", "bio", "translation", "sentence_id", "slurp_annotation")


class LabelError(ValueError):
    """The problems of one JSONL line, joined into one message."""


def parse_segments(raw: Any, start: float, end: float | None) -> list[tuple[float, float, str | None]] | None:
    """``segments`` as sorted, non-overlapping ``(start, end, text)`` inside ``[start, end]``; None if absent."""
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        raise LabelError(f"'segments' must be a non-empty list of [start, end] pairs, got {raw!r}")
    segments = []
    for k, item in enumerate(raw):
        if isinstance(item, Mapping):
            extra = sorted(set(item) - {"start", "end", "text"})
            if extra:
                raise LabelError(f"segment #{k} has unknown key(s) {extra} (allowed: start, end, text)")
            bounds, text = (item.get("start"), item.get("end")), item.get("text")
        elif isinstance(item, list | tuple) and len(item) == 2:
            bounds, text = tuple(item), None
        else:
            raise LabelError(f"segment #{k} must be [start, end] or {{start, end, text}}, got {item!r}")
        if any(isinstance(b, bool) or not isinstance(b, int | float) or not isfinite(b) for b in bounds):
            raise LabelError(f"segment #{k} start/end must be seconds, got {list(bounds)!r}")
        if text is not None and (not isinstance(text, str) or not text.strip()):
            raise LabelError(f"segment #{k} text must be a non-empty string, got {text!r}")
        seg_start, seg_end = float(bounds[0]), float(bounds[1])
        if not start <= seg_start < seg_end or (end is not None and seg_end > end):
            raise LabelError(f"segment #{k} [{seg_start}, {seg_end}] is empty or outside [{start}, {end}]")
        if segments and seg_start < segments[-1][1]:
            raise LabelError(f"segment #{k} [{seg_start}, {seg_end}] overlaps or precedes the one before it")
        segments.append((seg_start, seg_end, None if text is None else " ".join(text.split())))
    return segments


def _non_empty_string(key: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
            raise ValueError(f"'{key}' must be a non-empty string, got {value!r}")
        return str(value).strip()

    return parse


def _intent(value: Any) -> str:
    if not isinstance(value, str) or not INTENT_PATTERN.match(value):
        raise ValueError(f"'intent' must be of SLURP's scenario_action form (e.g. 'alarm_set'), got {value!r}")
    return value


def _translation(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f"'translation' must be {{language: text}}, got {value!r}")
    out = {}
    for lang, text in value.items():
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"translation into {lang!r} is empty")
        out[normalize_language(lang)] = " ".join(text.split())
    return out


_FIELD_PARSERS: dict[str, Callable[[Any], str]] = {
    "language": normalize_language,
    "speaker": _non_empty_string("speaker"),
    "gender": normalize_gender,
}
_CUSTOM_PARSERS: dict[str, Callable[[Any], Any]] = {
    schema.INTENT: _intent,
    schema.TRANSLATION: _translation,
    schema.EMOTION: _non_empty_string("emotion"),
    schema.ACCENT: _non_empty_string("accent"),
    schema.SENTENCE_ID: _non_empty_string("sentence_id"),
    schema.SLURP_ANNOTATION: _non_empty_string("slurp_annotation"),
}


def parse_labels(
    obj: Mapping[str, Any], *, several_segments: bool
) -> tuple[str | None, dict[str, str], dict[str, Any]]:
    """(text, supervision fields, supervision custom) of one line; LabelError lists every bad label."""
    problems: list[str] = []
    if several_segments:
        shared = [key for key in SENTENCE_KEYS if key in obj]
        if shared:
            problems.append(
                f"{shared} describe one sentence and cannot be shared by several segments; "
                "give each segment its own 'text'"
            )
    text = obj.get("text")
    if text is not None and (not isinstance(text, str) or not text.strip()):
        problems.append(f"empty transcript {text!r} (leave 'text' out when there is none)")
        text = None
    text = None if text is None else " ".join(text.split())
    fields: dict[str, str] = {}
    custom: dict[str, Any] = {}
    for parsers, target in ((_FIELD_PARSERS, fields), (_CUSTOM_PARSERS, custom)):
        for key, parse in parsers.items():
            if obj.get(key) is not None:
                try:
                    target[key] = parse(obj[key])
                except ValueError as err:
                    problems.append(str(err))
    problems += _parse_slot_labels(obj, [] if text is None else text.split(), custom)
    if problems:
        raise LabelError("; ".join(problems))
    return text, fields, custom


def _parse_slot_labels(obj: Mapping[str, Any], words: list[str], custom: dict[str, Any]) -> list[str]:
    """Fill custom's slots + bio from ``slots`` and/or ``bio``; problems as messages."""
    raw_slots, raw_bio = obj.get("slots"), obj.get("bio")
    if raw_slots is None and raw_bio is None:
        return []
    if not words:
        return ["'slots'/'bio' need a 'text' to index words in"]
    problems: list[str] = []
    spans, tags = None, None
    if raw_slots is not None:
        try:
            spans, tags = parse_slots(raw_slots, words)
        except ValueError as err:
            return [f"bad slot span: {err}"]
        for span, raw in zip(spans, raw_slots, strict=True):
            if raw.get("value") not in (None, span.value):
                problems.append(
                    f"slot {span.type!r} [{span.start}, {span.end}) covers {span.value!r}, "
                    f"not its 'value' {raw['value']!r}"
                )
    if raw_bio is not None:
        bio_problems = [message for _, message in check_bio(raw_bio, words)]
        if bio_problems:
            return problems + bio_problems
        if tags is not None and tags != raw_bio:
            problems.append(f"'bio' {raw_bio} disagrees with 'slots' (which give {tags})")
        if spans is None:
            spans, tags = schema.bio_to_spans(words, raw_bio), list(raw_bio)
            tags = schema.spans_to_bio(len(words), spans)  # canonical: a stray I- becomes B-
    if not problems and spans is not None:
        custom[schema.SLOTS] = [span.to_dict() for span in spans]
        custom[schema.BIO] = tags
    return problems
