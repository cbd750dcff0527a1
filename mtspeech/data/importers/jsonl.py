"""Import a generic JSONL manifest: one utterance per line, audio referenced by path.

Keys of a line (only ``audio`` is required; any other key is an error naming the key and line, so a typo
such as ``"langauge"`` never silently drops a label)::

    audio        path, relative to the JSONL file's directory or absolute
    id           utterance id (default: the recording id, plus start/end in ms when a segment is given)
    text         transcript
    language     ISO 639-1 code ("en"; "English" and "en-US" are accepted and normalised)
    speaker      speaker label            gender   m / f (male / female accepted)
    intent       SLURP-style scenario_action
    slots        [{"type", "start", "end"}] word spans over text.split(), end exclusive
    bio          one BIO tag per word ("O", "B-time", "I-time"), instead of or alongside slots
    translation  {"fr": "...", ...}
    emotion, accent, sentence_id, slurp_annotation
    start, end   the utterance's segment of the audio file, seconds
    segments     exact speech segments, seconds: [[0.4, 1.9], ...] or [{"start", "end", "text"}, ...]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from math import isfinite
from pathlib import Path
from typing import Any

from mtspeech.data.importers.common import (
    END_TOLERANCE_S,
    ImportSummary,
    ProblemLog,
    ProgressFn,
    check_output,
    cut_custom,
    iter_json_objects,
    make_cut,
    no_progress,
    probe_recordings,
    recording_channel,
    warn_new_labels,
    write_corpus,
)
from mtspeech.data.importers.jsonl_labels import LabelError, parse_labels, parse_segments
from mtspeech.errors import UserError

KNOWN_KEYS = frozenset(
    {
        "audio",
        "id",
        "text",
        "language",
        "speaker",
        "gender",
        "intent",
        "slots",
        "bio",
        "translation",
        "emotion",
        "accent",
        "sentence_id",
        "slurp_annotation",
        "start",
        "end",
        "segments",
    }
)


@dataclass
class _Line:
    line: int
    audio: Path
    recording_id: str = ""
    explicit_id: str | None = None
    start: float = 0.0
    end: float | None = None
    segments: list[tuple[float, float, str | None]] | None = None
    text: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # language/speaker/gender
    custom: dict[str, Any] = field(default_factory=dict)


def _recording_ids(lines: list[_Line], base: Path) -> None:
    """Recording id per distinct audio file: its path under the JSONL's directory (``spk1_utt3``), else its
    stem; distinct files that would share an id get ``-2``, ``-3``, ..."""
    ids: dict[Path, str] = {}
    taken: Counter[str] = Counter()
    for item in lines:
        if item.audio not in ids:
            try:
                stem = item.audio.relative_to(base).with_suffix("").as_posix().replace("/", "_")
            except ValueError:
                stem = item.audio.stem
            taken[stem] += 1
            ids[item.audio] = stem if taken[stem] == 1 else f"{stem}-{taken[stem]}"
        item.recording_id = ids[item.audio]


def _parse_line(path: Path, line: int, obj: dict[str, Any], log: ProblemLog) -> _Line | None:
    unknown = sorted(set(obj) - KNOWN_KEYS)
    for key in unknown:
        log.add(path, line, f"unknown key {key!r} (known keys: {', '.join(sorted(KNOWN_KEYS))})")
    audio = obj.get("audio")
    if not isinstance(audio, str) or not audio:
        log.add(path, line, f"'audio' must be a path, got {audio!r}")
        return None
    audio_path = Path(audio).expanduser()
    audio_path = (audio_path if audio_path.is_absolute() else path.parent / audio_path).absolute()
    if not audio_path.is_file():
        log.add(path, line, f"audio file not found: {audio_path}")
        return None
    item = _Line(line, audio_path)
    if "id" in obj:
        if isinstance(obj["id"], bool) or not isinstance(obj["id"], str | int) or not str(obj["id"]).strip():
            log.add(path, line, f"'id' must be a non-empty string, got {obj['id']!r}")
            return None
        item.explicit_id = str(obj["id"]).strip()
    try:
        item.start, item.end = _segment_bounds(obj)
        item.segments = parse_segments(obj.get("segments"), item.start, item.end)
        item.text, item.fields, item.custom = parse_labels(obj, several_segments=len(item.segments or []) > 1)
    except LabelError as err:
        log.add(path, line, str(err))
        return None
    return None if unknown else item


def _segment_bounds(obj: Mapping[str, Any]) -> tuple[float, float | None]:
    start, end = obj.get("start"), obj.get("end")
    start = 0.0 if start is None else start  # null means "from the beginning", like a missing key
    for key, value in (("start", start), ("end", end)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or not isfinite(value)):
            raise LabelError(f"'{key}' must be seconds (a number), got {value!r}")
    if start < 0 or (end is not None and end <= start):
        raise LabelError(f"segment [{start}, {end}] is empty or starts before 0")
    return float(start), None if end is None else float(end)


def import_jsonl(
    source: str | Path,
    out_dir: str | Path,
    *,
    split: str = "train",
    name: str | None = None,
    overwrite: bool = False,
    progress: ProgressFn = no_progress,
) -> ImportSummary:
    """Import the generic JSONL manifest ``source`` (plain or .gz) as split ``split`` of ``out_dir``."""
    from lhotse import RecordingSet, SupervisionSegment, SupervisionSet
    from lhotse.cut import CutSet

    source, out_dir = Path(source), Path(out_dir)
    if not source.is_file():
        raise UserError("JSONL manifest not found", path=source)
    check_output(out_dir, split, overwrite)
    log = ProblemLog(f"JSONL manifest {source}")
    lines = [item for line, obj in iter_json_objects(source, log) if (item := _parse_line(source, line, obj, log))]
    _recording_ids(lines, source.parent.absolute())
    probed = probe_recordings(sorted({(item.recording_id, item.audio) for item in lines}), progress)

    name = name or out_dir.absolute().name
    recordings, supervisions, cuts, first_line_of, first_line_of_sup = {}, [], [], {}, {}
    for item in lines:
        recording = probed[item.recording_id]
        if isinstance(recording, str):
            log.add(source, item.line, recording)
            continue
        end = recording.duration if item.end is None else item.end
        last = max([end, *(e for _, e, _ in item.segments or [])])
        if last > recording.duration + END_TOLERANCE_S:
            log.add(
                source, item.line, f"segment ends at {last} s, after the end of the audio ({recording.duration:.3f} s)"
            )
            continue
        end = min(end, recording.duration)
        cut_id = item.explicit_id or (
            item.recording_id
            if item.start == 0 and item.end is None
            else f"{item.recording_id}-{round(item.start * 1000):07d}-{round(end * 1000):07d}"
        )
        if cut_id in first_line_of:
            log.add(source, item.line, f"duplicate id {cut_id!r} (first at line {first_line_of[cut_id]})")
            continue
        first_line_of[cut_id] = item.line
        spans = item.segments or [(item.start, end, item.text)]
        sups = [
            SupervisionSegment(
                id=cut_id if len(spans) == 1 else f"{cut_id}-seg{k}",
                recording_id=item.recording_id,
                start=seg_start,
                duration=round(seg_end - seg_start, 6),
                channel=recording_channel(recording),
                text=seg_text if len(spans) > 1 else (seg_text or item.text),
                custom=dict(item.custom) or None,
                **item.fields,
            )
            for k, (seg_start, seg_end, seg_text) in enumerate(spans)
        ]
        clashes = [sup.id for sup in sups if sup.id in first_line_of_sup]
        if clashes:
            taken_at = first_line_of_sup[clashes[0]]
            log.add(source, item.line, f"supervision id {clashes[0]!r} is taken (at line {taken_at})")
            continue
        first_line_of_sup.update({sup.id: item.line for sup in sups})
        recordings[item.recording_id] = recording
        supervisions += sups
        custom = cut_custom(name, split, exact_segments=item.segments is not None)
        cuts.append(make_cut(cut_id, recording, item.start, round(end - item.start, 6), sups, custom))
    log.raise_if_any()
    warn_new_labels(supervisions, source, log)
    return write_corpus(
        out_dir,
        split,
        RecordingSet.from_recordings(recordings.values()),
        SupervisionSet.from_segments(supervisions),
        CutSet.from_cuts(cuts),
        name=name,
        source_format="jsonl",
        source=source,
        options={},
        warnings=log.warnings,
    )
