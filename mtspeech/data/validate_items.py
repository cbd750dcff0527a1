"""Structural checks of raw Lhotse manifest items (one JSON object per manifest line), shared by
``mtspeech data validate`` and the Lhotse importer.

Lhotse's ``from_dict`` trusts its input: a string duration or a missing ``sources`` list surfaces later as
a ``TypeError`` deep inside training. These checks look at the raw dict first and name the bad field, then
let Lhotse build the object, so whatever passes here loads in training exactly as it loaded here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

SOURCE_TYPES = ("file", "command", "url", "memory", "shar")
SUPPORTED_CUT_TYPES = ("MonoCut", "MultiCut")
MANIFEST_ITEM_KINDS = ("recordings", "supervisions", "cuts")

FieldProblem = tuple[str, str]  # (field, message)


def _is_number(value: Any) -> bool:
    """A finite int/float (JSON lets NaN and Infinity through)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_id(obj: Mapping[str, Any], key: str, prefix: str) -> list[FieldProblem]:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        return [(prefix + key, f"{key} must be a non-empty string, got {value!r}")]
    if value != value.strip() or any(ch.isspace() for ch in value):
        return [(prefix + key, f"{key} {value!r} contains whitespace (ids must be single tokens)")]
    return []


def _check_channel(value: Any, field: str) -> list[FieldProblem]:
    if _is_int(value) or (isinstance(value, list) and value and all(_is_int(c) for c in value)):
        return []
    return [(field, f"channel must be an integer or a non-empty list of integers, got {value!r}")]


def _check_span(obj: Mapping[str, Any], prefix: str, *, positive: bool = True) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    start, duration = obj.get("start"), obj.get("duration")
    if not _is_number(start) or start < 0:
        problems.append((prefix + "start", f"start must be a number of seconds >= 0, got {start!r}"))
    if not _is_number(duration) or duration < 0 or (positive and duration == 0):
        problems.append((prefix + "duration", f"duration must be a positive number of seconds, got {duration!r}"))
    return problems


def check_recording_dict(obj: Mapping[str, Any], prefix: str = "") -> list[FieldProblem]:
    """Problems of a raw Lhotse recording: id, sources, sampling rate, length."""
    problems = _check_id(obj, "id", prefix)
    sources = obj.get("sources")
    if not isinstance(sources, list) or not sources:
        problems.append((prefix + "sources", f"sources must be a non-empty list, got {sources!r}"))
    else:
        for k, source in enumerate(sources):
            field = f"{prefix}sources[{k}]"
            if not isinstance(source, Mapping):
                problems.append((field, f"an audio source must be an object, got {source!r}"))
                continue
            if source.get("type") not in SOURCE_TYPES:
                problems.append((field + ".type", f"type must be one of {SOURCE_TYPES}, got {source.get('type')!r}"))
            channels = source.get("channels")
            if not isinstance(channels, list) or not channels or not all(_is_int(c) for c in channels):
                problems.append((field + ".channels", f"channels must be a list of integers, got {channels!r}"))
            where = source.get("source")
            if not isinstance(where, str | bytes) or not where:
                problems.append((field + ".source", f"source must be a path, command or URL, got {where!r}"))
    rate = obj.get("sampling_rate")
    if not _is_int(rate) or rate <= 0:
        problems.append((prefix + "sampling_rate", f"sampling_rate must be a positive integer (Hz), got {rate!r}"))
    num_samples = obj.get("num_samples")
    if not _is_int(num_samples) or num_samples <= 0:
        problems.append((prefix + "num_samples", f"num_samples must be a positive integer, got {num_samples!r}"))
    duration = obj.get("duration")
    if not _is_number(duration) or duration <= 0:
        problems.append((prefix + "duration", f"duration must be a positive number of seconds, got {duration!r}"))
    channel_ids = obj.get("channel_ids")
    if channel_ids is not None and not (
        isinstance(channel_ids, list) and channel_ids and all(_is_int(c) for c in channel_ids)
    ):
        problems.append((prefix + "channel_ids", f"channel_ids must be a list of integers, got {channel_ids!r}"))
    if obj.get("transforms") is not None and not isinstance(obj["transforms"], list):
        problems.append((prefix + "transforms", f"transforms must be a list, got {obj['transforms']!r}"))
    return problems


def check_supervision_dict(obj: Mapping[str, Any], prefix: str = "") -> list[FieldProblem]:
    """Problems of a raw Lhotse supervision's structure (its labels are checked by validate_labels)."""
    problems = _check_id(obj, "id", prefix) + _check_id(obj, "recording_id", prefix)
    problems += _check_span(obj, prefix)
    if "channel" in obj:
        problems += _check_channel(obj["channel"], prefix + "channel")
    for key in ("text", "language", "speaker", "gender"):
        if obj.get(key) is not None and not isinstance(obj[key], str):
            problems.append((prefix + key, f"{key} must be a string or null, got {obj[key]!r}"))
    if obj.get("custom") is not None and not isinstance(obj["custom"], Mapping):
        problems.append((prefix + "custom", f"custom must be an object, got {obj['custom']!r}"))
    return problems


def check_cut_dict(obj: Mapping[str, Any]) -> list[FieldProblem]:
    """Problems of a raw Lhotse cut, its embedded recording and its supervisions."""
    problems = _check_id(obj, "id", "")
    cut_type = obj.get("type")
    if cut_type not in SUPPORTED_CUT_TYPES:
        return [
            *problems,
            ("type", f"cut type {cut_type!r} is not supported (mtspeech reads {', '.join(SUPPORTED_CUT_TYPES)})"),
        ]
    problems += _check_span(obj, "")
    problems += _check_channel(obj.get("channel"), "channel")
    recording = obj.get("recording")
    if not isinstance(recording, Mapping):
        problems.append(("recording", "the cut has no recording (mtspeech computes features from the audio)"))
    else:
        problems += check_recording_dict(recording, "recording.")
    supervisions = obj.get("supervisions", [])
    if not isinstance(supervisions, list):
        problems.append(("supervisions", f"supervisions must be a list, got {supervisions!r}"))
    else:
        for i, sup in enumerate(supervisions):
            if not isinstance(sup, Mapping):
                problems.append((f"supervisions[{i}]", f"a supervision must be an object, got {sup!r}"))
            else:
                problems += check_supervision_dict(sup, f"supervisions[{i}].")
    if obj.get("custom") is not None and not isinstance(obj["custom"], Mapping):
        problems.append(("custom", f"custom must be an object, got {obj['custom']!r}"))
    return problems


_CHECKS = {"recordings": check_recording_dict, "supervisions": check_supervision_dict, "cuts": check_cut_dict}


def sniff_kind(obj: Mapping[str, Any]) -> str | None:
    """Which manifest an item belongs to, from its keys (for files whose name does not say)."""
    if "type" in obj and "supervisions" in obj:
        return "cuts"
    if "sources" in obj:
        return "recordings"
    if "recording_id" in obj:
        return "supervisions"
    return None


def load_item(kind: str, obj: Mapping[str, Any]) -> tuple[Any | None, list[FieldProblem]]:
    """(Lhotse object, []) for a sound item of manifest ``kind``, else (None, its problems)."""
    from lhotse import Recording, SupervisionSegment
    from lhotse.cut.set import deserialize_cut

    problems = _CHECKS[kind](obj)
    if problems:
        return None, problems
    build = {"recordings": Recording.from_dict, "supervisions": SupervisionSegment.from_dict, "cuts": deserialize_cut}
    try:
        # from_dict pops keys: hand it a deep-enough copy so the caller's dict stays intact.
        return build[kind](_copy(obj)), []
    except Exception as err:  # Lhotse raises TypeError/KeyError/ValueError/AssertionError for bad fields
        message = str(err).replace("__init__() ", "") or type(err).__name__
        return None, [("", f"Lhotse cannot read this {kind[:-1]}: {message}")]


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
