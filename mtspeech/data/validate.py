"""``mtspeech data validate``: check a corpus and report every problem at once, each with its file, manifest
line and field, so a user fixes a corpus in one pass instead of one crash at a time.

Checked: corpus.json (readable, declared label sets); each split's recordings/supervisions/cuts manifests
(unreadable or garbled lines, Lhotse structure, duplicate ids, references between them); every cut
(segments past the end of the audio, supervisions outside the cut, cut-level labels); every supervision's
labels against the contract of :mod:`mtspeech.data.schema` (empty transcripts, ISO 639-1 languages,
emotion/accent/gender sets, SLURP-style intents, slot spans and BIO tags, translations); the audio itself
(see :mod:`mtspeech.data.validate_audio`); and leaks between splits (shared recordings or sentences).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtspeech.data import schema
from mtspeech.data.corpus import INFO_FILE, MANIFEST_KINDS, load_texts, manifest_path, texts_path
from mtspeech.data.importers.common import END_TOLERANCE_S, ProblemLog, ProgressFn, iter_json_objects, no_progress
from mtspeech.data.validate_audio import AUDIO_CHECKS, AudioRef, check_audio
from mtspeech.data.validate_items import load_item
from mtspeech.data.validate_labels import (
    BUILTIN_LABEL_SETS,
    DECLARABLE_LABELS,
    ISO639_1,
    check_supervision_labels,
    declared_label_sets,
)
from mtspeech.data.validate_report import Problem, SplitCounts, ValidationReport
from mtspeech.errors import UserError

__all__ = ["Problem", "ValidationReport", "validate_corpus"]


@dataclass
class _Seen:
    """What earlier lines and splits held: for duplicate ids and leaks between splits."""

    cut_ids: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # id -> (split, file, line)
    recording_splits: dict[str, dict[str, tuple[str, int]]] = field(default_factory=lambda: defaultdict(dict))
    sentence_splits: dict[str, dict[str, tuple[str, int]]] = field(default_factory=lambda: defaultdict(dict))
    spoken_texts: dict[tuple[str, str], dict[str, tuple[str, int]]] = field(default_factory=lambda: defaultdict(dict))
    audio: dict[str, AudioRef] = field(default_factory=dict)  # recording id -> where it is described first


def _read(path: Path, kind: str, report: ValidationReport, progress: ProgressFn) -> Iterator[tuple[int, dict, Any]]:
    """(line, raw dict, Lhotse object) for each sound line of a manifest; every other line is a problem."""
    log = ProblemLog(str(path))
    for count, (line, obj) in enumerate(iter_json_objects(path, log), start=1):
        item, problems = load_item(kind, obj)
        for field_name, message in problems:
            report.add(path, line, field_name, message, kind="invalid_entry")
        if count % 500 == 0:
            progress(f"checking {path.name}", count, None)
        if item is not None:
            yield line, obj, item
    for p in log.problems:
        report.add(p.file, p.line, "", p.message, kind="unreadable_line")


def _check_info(corpus_dir: Path, report: ValidationReport) -> dict[str, set[str]]:
    """corpus.json problems; returns the label sets it declares."""
    path = corpus_dir / INFO_FILE
    if not path.is_file():
        message = "no corpus.json: the built-in label sets apply"
        report.add(path, None, "", message, kind="corpus_info", severity="warning")
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, OSError) as err:
        report.add(path, None, "", f"cannot read the file: {err}", kind="corpus_info")
        return {}
    except json.JSONDecodeError as err:
        report.add(path, err.lineno, "", f"not valid JSON: {err.msg} (column {err.colno})", kind="corpus_info")
        return {}
    if not isinstance(info, Mapping):
        report.add(path, None, "", f"expected a JSON object, got {type(info).__name__}", kind="corpus_info")
        return {}
    labels = info.get("labels") or {}
    for name in DECLARABLE_LABELS:
        values = labels.get(name, labels.get(name + "s")) if isinstance(labels, Mapping) else None
        if values is not None and not (isinstance(values, list) and all(isinstance(v, str) for v in values)):
            report.add(path, None, f"labels.{name}", f"must be a list of strings, got {values!r}", kind="corpus_info")
    declared = declared_label_sets(info)
    bad_languages = sorted(code for code in declared.get("language", ()) if code not in ISO639_1)
    if bad_languages:
        message = f"declared languages {bad_languages} are not ISO 639-1 codes"
        report.add(path, None, "labels.language", message, kind="unknown_label")
    for name, builtin in BUILTIN_LABEL_SETS.items():
        extra = sorted(declared.get(name, set()) - set(builtin))
        if extra:
            message = (
                f"declares {name} labels outside the built-in set {list(builtin)}: {extra} "
                "(accepted; check them for typos)"
            )
            report.add(path, None, f"labels.{name}", message, kind="unknown_label", severity="warning")
    return declared


def _splits_present(corpus_dir: Path) -> list[str]:
    """Splits with any manifest, standard splits first."""
    names = set()
    for kind in MANIFEST_KINDS:
        for path in (corpus_dir / "manifests").glob(f"{kind}_*.jsonl.gz"):
            names.add(path.name[len(kind) + 1 : -len(".jsonl.gz")])
    return [s for s in schema.SPLITS if s in names] + sorted(names - set(schema.SPLITS))


def _check_recordings(path: Path, report: ValidationReport, seen: _Seen, progress: ProgressFn) -> dict[str, int]:
    first_line: dict[str, int] = {}
    for line, _, rec in _read(path, "recordings", report, progress):
        if rec.id in first_line:
            message = f"duplicate recording id {rec.id!r} (first at line {first_line[rec.id]})"
            report.add(path, line, "id", message, kind="duplicate_id")
            continue
        first_line[rec.id] = line
        seen.audio.setdefault(rec.id, AudioRef(rec, str(path), line))
    return first_line


def _check_supervisions(
    path: Path, recordings: Mapping[str, int] | None, report: ValidationReport, progress: ProgressFn
) -> None:
    first_line: dict[str, int] = {}
    for line, _, sup in _read(path, "supervisions", report, progress):
        if sup.id in first_line:
            message = f"duplicate supervision id {sup.id!r} (first at line {first_line[sup.id]})"
            report.add(path, line, "id", message, kind="duplicate_id")
            continue
        first_line[sup.id] = line
        if recordings is not None and sup.recording_id not in recordings:
            message = f"recording {sup.recording_id!r} is not in the recordings manifest"
            report.add(path, line, "recording_id", message, kind="invalid_entry")


def _check_cut_labels(cut: Any, path: Path, line: int, split: str, report: ValidationReport) -> None:
    custom = cut.custom or {}
    if custom.get(schema.SPLIT) not in (None, split):
        message = f"the cut says split {custom[schema.SPLIT]!r} but sits in the {split!r} manifest"
        report.add(path, line, f"custom.{schema.SPLIT}", message, kind="invalid_entry", severity="warning")
    exact = custom.get(schema.EXACT_SEGMENTS)
    if exact is not None and not isinstance(exact, bool):
        message = f"exact_segments must be true or false, got {exact!r}"
        report.add(path, line, f"custom.{schema.EXACT_SEGMENTS}", message, kind="invalid_entry")
    noise = custom.get(schema.NOISE)
    if noise is not None and (not isinstance(noise, Mapping) or noise.get("type") not in schema.NOISE_TYPES):
        message = f"noise must be {{'type': one of {list(schema.NOISE_TYPES)}, ...}}, got {noise!r}"
        report.add(path, line, f"custom.{schema.NOISE}", message, kind="unknown_label")
    if custom.get(schema.CORPUS) is not None and not isinstance(custom[schema.CORPUS], str):
        report.add(path, line, f"custom.{schema.CORPUS}", "corpus must be a string", kind="invalid_entry")
    if not cut.supervisions and not exact:
        message = "no supervisions and exact_segments is not true: the cut carries no label for any task"
        report.add(path, line, "supervisions", message, kind="no_supervisions", severity="warning")


def _check_supervision_times(cut: Any, i: int, sup: Any, path: Path, line: int, report: ValidationReport) -> None:
    where = f"supervisions[{i}]"
    rec_duration = cut.recording.duration
    start, end = cut.start + sup.start, cut.start + sup.end
    if start < -END_TOLERANCE_S or end > rec_duration + END_TOLERANCE_S:
        message = (
            f"supervision {sup.id!r} spans [{start:.3f}, {end:.3f}] s of the recording, "
            f"outside the audio (0 to {rec_duration:.3f} s)"
        )
        report.add(path, line, where, message, kind="segment_past_end")
    elif sup.start < -END_TOLERANCE_S or sup.end > cut.duration + END_TOLERANCE_S:
        message = (
            f"supervision {sup.id!r} [{sup.start:.3f}, {sup.end:.3f}] s overhangs the cut (0 to {cut.duration:.3f} s): "
            "its transcript covers audio the cut does not hold"
        )
        report.add(path, line, where, message, kind="segment_outside_cut", severity="warning")


def _check_cuts(
    path: Path,
    split: str,
    declared: Mapping[str, set[str]],
    recordings: Mapping[str, int] | None,
    report: ValidationReport,
    seen: _Seen,
    progress: ProgressFn,
) -> SplitCounts:
    counts = SplitCounts()
    first_line: dict[str, int] = {}
    for line, raw, cut in _read(path, "cuts", report, progress):
        if cut.id in first_line:
            message = f"duplicate cut id {cut.id!r} (first at line {first_line[cut.id]})"
            report.add(path, line, "id", message, kind="duplicate_id")
            continue
        first_line[cut.id] = line
        if cut.id in seen.cut_ids:
            other_split, other_file, other_line = seen.cut_ids[cut.id]
            message = f"cut id {cut.id!r} is also in split {other_split!r} ({other_file}:{other_line})"
            report.add(path, line, "id", message, kind="duplicate_id")
        seen.cut_ids[cut.id] = (split, str(path), line)
        counts.cuts += 1
        counts.hours += cut.duration / 3600
        recording = cut.recording
        seen.audio.setdefault(recording.id, AudioRef(recording, str(path), line))
        seen.recording_splits[recording.id].setdefault(split, (str(path), line))
        if recordings is not None and recording.id not in recordings:
            message = f"recording {recording.id!r} is not in the recordings manifest"
            report.add(path, line, "recording.id", message, kind="invalid_entry", severity="warning")
        if cut.end > recording.duration + END_TOLERANCE_S:
            message = (
                f"the cut [{cut.start:.3f}, {cut.end:.3f}] s runs past the end of its audio "
                f"({recording.duration:.3f} s)"
            )
            report.add(path, line, "duration", message, kind="segment_past_end")
        _check_cut_labels(cut, path, line, split, report)
        sup_ids: set[str] = set()
        for i, (sup, raw_sup) in enumerate(zip(cut.supervisions, raw.get("supervisions", []), strict=True)):
            counts.supervisions += 1
            if sup.id in sup_ids:
                message = f"supervision id {sup.id!r} repeats within the cut"
                report.add(path, line, f"supervisions[{i}].id", message, kind="duplicate_id")
            sup_ids.add(sup.id)
            if sup.recording_id != recording.id:
                message = f"supervision {sup.id!r} belongs to recording {sup.recording_id!r}, not {recording.id!r}"
                report.add(path, line, f"supervisions[{i}].recording_id", message, kind="invalid_entry")
            _check_supervision_times(cut, i, sup, path, line, report)
            for kind, field_name, message in check_supervision_labels(raw_sup, declared):
                where = f"supervisions[{i}].{field_name}"
                report.add(path, line, where, f"supervision {sup.id!r}: {message}", kind=kind)
            sentence_id = (sup.custom or {}).get(schema.SENTENCE_ID)
            if isinstance(sentence_id, str):
                seen.sentence_splits[sentence_id].setdefault(split, (str(path), line))
            if sup.text and sup.language:
                seen.spoken_texts[(sup.language, " ".join(sup.text.split()))].setdefault(split, (str(path), line))
    counts.hours = round(counts.hours, 4)
    counts.recordings = sum(split in places for places in seen.recording_splits.values())
    return counts


def _report_leaks(what: str, shared: Mapping[str, Mapping[str, tuple[str, int]]], report: ValidationReport) -> None:
    """One warning per pair of splits sharing ``what`` (recordings, sentences), placed at its first line in the
    later split."""
    pairs: dict[tuple[str, str], list[tuple[str, tuple[str, int]]]] = defaultdict(list)
    for key, places in shared.items():
        splits = list(places)
        for later in splits[1:]:
            pairs[(splits[0], later)].append((key, places[later]))
    for (first, later), items in pairs.items():
        examples = ", ".join(repr(key) for key, _ in items[:3])
        file, line = items[0][1]
        message = (
            f"{len(items)} {what} appear in both {first!r} and {later!r} (e.g. {examples}): "
            f"scores on {later!r} will be optimistic"
        )
        report.add(file, line, "", message, kind="split_leak", severity="warning")


def _check_texts(corpus_dir: Path, split: str, report: ValidationReport, seen: _Seen) -> None:
    """The split's text-only rows, if it has any: readable, and none spoken in another split (a train text row that
    is a test utterance hands the n-gram LM and intent_text the test sentence)."""
    path = texts_path(corpus_dir, split)
    try:
        rows = load_texts(corpus_dir, split)
    except UserError as err:
        report.add(err.path or path, err.line, "", err.message, kind="invalid_entry")
        return
    spoken_elsewhere: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        for other in seen.spoken_texts.get((row.language, row.text), {}):
            if other != split:
                spoken_elsewhere[other].append(row.text)
    for other, texts in spoken_elsewhere.items():
        examples = ", ".join(repr(t) for t in texts[:3])
        message = (
            f"{len(texts)} text-only rows of {split!r} are spoken in {other!r} (e.g. {examples}): "
            f"scores on {other!r} will be optimistic"
        )
        report.add(path, None, "", message, kind="split_leak", severity="warning")


def validate_corpus(
    corpus_dir: str | Path,
    splits: Sequence[str] | None = None,
    *,
    audio: str = "header",
    progress: ProgressFn = no_progress,
) -> ValidationReport:
    """Check the corpus at ``corpus_dir`` (all splits, or ``splits``) and report every problem found.

    ``audio`` is how deep the audio is checked: ``none``, ``header`` (default) or ``full`` (decode all).
    Only a missing directory or a bad argument raises :class:`UserError`; everything about the corpus itself,
    garbled manifest lines included, becomes a :class:`Problem` of the report."""
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise UserError("corpus directory not found", path=corpus_dir)
    if audio not in AUDIO_CHECKS:
        raise UserError(f"the audio check must be one of {', '.join(AUDIO_CHECKS)}, got {audio!r}")
    report = ValidationReport(corpus_dir, audio_check=audio)
    declared = _check_info(corpus_dir, report)
    present = _splits_present(corpus_dir)
    manifests_dir = corpus_dir / "manifests"
    for missing in [s for s in splits or () if s not in present]:
        message = f"split {missing!r} has no manifests (present: {present or 'none'})"
        report.add(manifests_dir, None, "", message, kind="missing_manifest")
    chosen = [s for s in present if s in splits] if splits else present
    if not present:
        message = "no manifests found (expected manifests/cuts_{split}.jsonl.gz); import a corpus first"
        report.add(manifests_dir, None, "", message, kind="missing_manifest")
    seen = _Seen()
    for split in chosen:
        paths = {kind: manifest_path(corpus_dir, kind, split) for kind in MANIFEST_KINDS}
        for kind, path in paths.items():
            if not path.is_file():
                why = "training reads cuts" if kind == "cuts" else "the corpus layout has all three manifests"
                severity = "error" if kind == "cuts" else "warning"
                message = f"missing {kind} manifest ({why})"
                report.add(path, None, "", message, kind="missing_manifest", severity=severity)
        recordings = None
        if paths["recordings"].is_file():
            recordings = _check_recordings(paths["recordings"], report, seen, progress)
        if paths["supervisions"].is_file():
            _check_supervisions(paths["supervisions"], recordings, report, progress)
        counts = SplitCounts()
        if paths["cuts"].is_file():
            counts = _check_cuts(paths["cuts"], split, declared, recordings, report, seen, progress)
        report.splits[split] = counts
    _report_leaks("recordings", {k: v for k, v in seen.recording_splits.items() if len(v) > 1}, report)
    _report_leaks("sentences", {k: v for k, v in seen.sentence_splits.items() if len(v) > 1}, report)
    for split in chosen:
        _check_texts(corpus_dir, split, report, seen)
    check_audio(list(seen.audio.values()), report, audio, progress)
    return report
