"""Import SLURP (Bastianelli et al., 2020) as released: ``train.jsonl``, ``train_synthetic.jsonl``,
``devel.jsonl``, ``test.jsonl`` + an audio directory holding ``slurp_real/`` and/or ``slurp_synth/``.

Every recording file of a SLURP line becomes one recording + one supervision + one cut, labelled with the
line's sentence (language ``en``), intent (``scenario_action``), slots as word spans over the sentence, their
BIO tags and SLURP's bracketed annotation. SLURP's entity spans index spaCy tokens ("what's" is two
tokens), so they are mapped to whitespace words here; an entity covering part of a word covers the word.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtspeech.data import schema
from mtspeech.data.importers.common import (
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
    write_corpus,
)
from mtspeech.data.validate_labels import INTENT_PATTERN
from mtspeech.errors import UserError

AUDIO_SUBDIRS = ("slurp_real", "slurp_synth")
# SLURP file stem -> mtspeech split; the synthetic (TTS) training recordings join the real ones.
SPLIT_OF_FILE = {"train": "train", "train_synthetic": "train", "devel": "valid", "test": "test"}
_REQUIRED = ("sentence", "recordings")
# "[time : eight am]" in SLURP's sentence_annotation
_ANNOTATED_SLOT = re.compile(r"\[\s*([^\[\]:]+?)\s*:\s*([^\[\]]*?)\s*\]")


def slurp_slots(
    sentence: str, tokens: Sequence[Mapping[str, Any]], entities: Sequence[Mapping[str, Any]]
) -> list[schema.SlotSpan]:
    """SLURP entities (lists of token ids) as word spans over ``sentence.split()``.

    Tokens and words are aligned character by character, spaces ignored, so spaCy's splits ("what" "'s")
    and SLURP's few sentences corrected after tokenising ("grass market" vs the token "grassmarket",
    "rihanna" vs "rihana") both land on the right words. Raises ValueError for an entity naming no token."""
    words = sentence.lower().split()
    word_of_char = [index for index, word in enumerate(words) for _ in word]
    token_ids = [int(token["id"]) for token in tokens]
    surfaces = [str(token.get("surface", "")).lower().replace(" ", "") for token in tokens]
    token_of_char = [k for k, surface in enumerate(surfaces) for _ in surface]
    token_words: list[set[int]] = [set() for _ in tokens]
    if word_of_char:
        matcher = difflib.SequenceMatcher(None, "".join(surfaces), "".join(words), autojunk=False)
        for _, t1, t2, s1, s2 in matcher.get_opcodes():
            for t in range(t1, t2):  # equal/replace/delete: map proportionally into the sentence's range
                s = s1 + (t - t1) * (s2 - s1) // (t2 - t1) if s2 > s1 else min(s1, len(word_of_char) - 1)
                token_words[token_of_char[t]].add(word_of_char[s])
    word_range = {tid: (min(ws), max(ws)) for tid, ws in zip(token_ids, token_words, strict=True) if ws}
    spans = []
    for entity in entities:
        ids = entity.get("span")
        if not isinstance(ids, list) or not ids or any(i not in word_range for i in ids):
            raise ValueError(f"entity {dict(entity)!r} names token ids that are not in the sentence")
        start = min(word_range[i][0] for i in ids)
        end = max(word_range[i][1] for i in ids) + 1
        spans.append(schema.SlotSpan(str(entity.get("type")), start, end, " ".join(sentence.split()[start:end])))
    return spans


def annotation_slots(sentence: str, annotation: str) -> list[schema.SlotSpan]:
    """Slots from SLURP's bracketed ``sentence_annotation`` (for lines without ``tokens``/``entities``).

    The annotation's words act as tokens and each bracket as an entity over them, so the same character
    alignment as :func:`slurp_slots` carries them onto ``sentence`` (which may have been corrected since).
    Raises ValueError for a stray bracket."""
    tokens: list[dict[str, Any]] = []
    entities: list[dict[str, Any]] = []

    def add_words(chunk: str) -> None:
        if "[" in chunk or "]" in chunk:
            raise ValueError(f"unbalanced or malformed bracket in sentence_annotation {annotation!r}")
        tokens.extend([{"id": len(tokens) + k, "surface": word} for k, word in enumerate(chunk.split())])

    position = 0
    for match in _ANNOTATED_SLOT.finditer(annotation):
        add_words(annotation[position : match.start()])
        first = len(tokens)
        add_words(match.group(2))
        if len(tokens) > first:
            entities.append({"type": match.group(1).strip(), "span": list(range(first, len(tokens)))})
        position = match.end()
    add_words(annotation[position:])
    return slurp_slots(sentence, tokens, entities)


@dataclass(frozen=True)
class _Utterance:
    file: Path  # the jsonl
    line: int
    recording_id: str
    audio: Path
    text: str
    custom: dict[str, Any]


def _index_audio(audio_dir: Path) -> dict[str, Path]:
    """File name -> path for every file of audio_dir/slurp_real, audio_dir/slurp_synth and audio_dir itself."""
    index: dict[str, Path] = {}
    for directory in (audio_dir, *(audio_dir / sub for sub in AUDIO_SUBDIRS)):
        if directory.is_dir():
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.is_file():
                        index.setdefault(entry.name, Path(entry.path).absolute())
    return index


def _shape_problems(obj: Mapping[str, Any]) -> list[str]:
    """Fields of a SLURP line that have the wrong type (so later steps can trust them)."""
    problems = [
        f"'{key}' must be a string, got {obj[key]!r}"
        for key in ("sentence", "sentence_annotation", "intent", "scenario", "action")
        if key in obj and not isinstance(obj[key], str)
    ]
    tokens, entities = obj.get("tokens"), obj.get("entities")
    if tokens is not None and not (
        isinstance(tokens, list)
        and all(
            isinstance(t, Mapping) and isinstance(t.get("id"), int) and isinstance(t.get("surface"), str)
            for t in tokens
        )
    ):
        problems.append("'tokens' must be a list of {'id': int, 'surface': str} objects")
    if entities is not None and not (
        isinstance(entities, list)
        and all(isinstance(e, Mapping) and isinstance(e.get("type"), str) and e["type"] for e in entities)
    ):
        problems.append("'entities' must be a list of {'span': [token ids], 'type': str} objects")
    return problems


def _parse_line(path: Path, line: int, obj: dict[str, Any], log: ProblemLog) -> tuple[str, dict[str, Any]] | None:
    """(text, supervision custom) of one SLURP line, or None after logging why it cannot be used."""
    missing = [key for key in _REQUIRED if key not in obj]
    if "intent" not in obj and not ("scenario" in obj and "action" in obj):
        missing.append("intent")
    if missing:
        log.add(path, line, f"missing SLURP field(s) {missing}")
        return None
    shape = _shape_problems(obj)
    if shape:
        log.add(path, line, "; ".join(shape))
        return None
    text = " ".join(str(obj["sentence"]).split())
    # A few SLURP lines carry only the action in "intent"; scenario + action is the canonical intent.
    intent = f"{obj['scenario']}_{obj['action']}" if "scenario" in obj and "action" in obj else str(obj["intent"])
    if not text:
        log.add(path, line, "empty sentence")
        return None
    if not INTENT_PATTERN.match(intent):
        log.add(path, line, f"intent {intent!r} is not of the form scenario_action")
        return None
    annotation = obj.get("sentence_annotation")
    try:
        if "tokens" in obj and "entities" in obj:
            spans = slurp_slots(text, obj["tokens"], obj["entities"])
        elif isinstance(annotation, str):
            spans = annotation_slots(text, annotation)
        elif obj.get("entities"):
            raise ValueError("'entities' index 'tokens', which this line lacks (or give a 'sentence_annotation')")
        else:
            spans = []
        bio = schema.spans_to_bio(len(text.split()), spans)
    except (ValueError, KeyError, TypeError) as err:
        log.add(path, line, f"bad entity span: {err}")
        return None
    custom = {
        schema.INTENT: intent,
        schema.SLOTS: [span.to_dict() for span in spans],
        schema.BIO: bio,
        schema.SOURCE: "slurp",
    }
    if obj.get("slurp_id") is not None:
        custom[schema.SENTENCE_ID] = f"slurp-{obj['slurp_id']}"
    if isinstance(annotation, str):
        custom[schema.SLURP_ANNOTATION] = annotation
    return text, custom


def _read_jsonl(
    path: Path, audio: dict[str, Path], seen: dict[str, tuple[Path, int]], skip_missing: bool, log: ProblemLog
) -> list[_Utterance]:
    utterances = []
    for line, obj in iter_json_objects(path, log):
        parsed = _parse_line(path, line, obj, log)
        if parsed is None:
            continue
        text, custom = parsed
        recordings = obj["recordings"]
        if not isinstance(recordings, list) or not all(isinstance(r, dict) and "file" in r for r in recordings):
            log.add(path, line, "recordings must be a list of {'file': ...} objects")
            continue
        for rec in recordings:
            name = str(rec["file"])
            rec_id = Path(name).stem
            if name not in audio:
                report = log.warn if skip_missing else log.add
                report(path, line, f"audio file {name} not found under {'/, '.join(AUDIO_SUBDIRS)}/ of the audio dir")
            elif rec_id in seen:
                first = seen[rec_id]
                log.add(path, line, f"recording {name} is already used at {first[0]}:{first[1]}")
            else:
                seen[rec_id] = (path, line)
                utterances.append(_Utterance(path, line, rec_id, audio[name], text, custom))
    return utterances


def _jsonl_files(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    if source.is_dir():
        found = sorted(p for p in source.glob("*.jsonl") if p.stem in SPLIT_OF_FILE)
        if found:
            return found
        raise UserError(
            f"no SLURP files ({', '.join(f + '.jsonl' for f in SPLIT_OF_FILE)}) in this directory", path=source
        )
    raise UserError("no such file or directory", path=source)


def import_slurp(
    source: str | Path,
    audio_dir: str | Path,
    out_dir: str | Path,
    *,
    split: str | None = None,
    name: str | None = None,
    skip_missing_audio: bool = False,
    overwrite: bool = False,
    progress: ProgressFn = no_progress,
) -> list[ImportSummary]:
    """Import SLURP text (one jsonl file or SLURP's ``dataset/slurp`` directory) with the audio under ``audio_dir``.

    Each file goes to the split its name implies (train/train_synthetic -> train, devel -> valid, test -> test)
    unless ``split`` puts everything into one split. Missing audio is a problem, or a warning (the recording is
    left out) with ``skip_missing_audio``.
    """
    from lhotse import RecordingSet, SupervisionSegment, SupervisionSet
    from lhotse.cut import CutSet

    source, audio_dir, out_dir = Path(source), Path(audio_dir), Path(out_dir)
    files = _jsonl_files(source)
    if not audio_dir.is_dir():
        raise UserError("audio directory not found", path=audio_dir)
    split_of = {}
    for path in files:
        if split is None and path.stem not in SPLIT_OF_FILE:
            raise UserError(f"cannot tell the split from the name {path.name!r}: pass --split", path=path)
        split_of[path] = split or SPLIT_OF_FILE[path.stem]
    for target in sorted(set(split_of.values())):
        check_output(out_dir, target, overwrite)

    log = ProblemLog(f"SLURP import from {source}")
    audio, seen = _index_audio(audio_dir), {}
    utterances = {path: _read_jsonl(path, audio, seen, skip_missing_audio, log) for path in files}
    probed = probe_recordings([(u.recording_id, u.audio) for us in utterances.values() for u in us], progress)
    for us in utterances.values():
        for u in us:
            if isinstance(probed[u.recording_id], str):
                log.add(u.file, u.line, str(probed[u.recording_id]))
    log.raise_if_any()

    name = name or out_dir.absolute().name
    summaries = []
    for target in sorted(set(split_of.values())):
        recordings, supervisions, cuts = [], [], []
        split_files = [p for p in files if split_of[p] == target]
        for path in split_files:
            for u in utterances[path]:
                recording = probed[u.recording_id]
                sup = SupervisionSegment(
                    id=u.recording_id,
                    recording_id=u.recording_id,
                    start=0.0,
                    duration=recording.duration,
                    channel=recording_channel(recording),
                    text=u.text,
                    language="en",
                    custom=dict(u.custom),
                )
                recordings.append(recording)
                supervisions.append(sup)
                custom = cut_custom(name, target, exact_segments=False)
                cuts.append(make_cut(u.recording_id, recording, 0.0, recording.duration, [sup], custom))
        summaries.append(
            write_corpus(
                out_dir,
                target,
                RecordingSet.from_recordings(recordings),
                SupervisionSet.from_segments(supervisions),
                CutSet.from_cuts(cuts),
                name=name,
                source_format="slurp",
                source=split_files,
                options={"audio_dir": str(audio_dir.absolute()), "skip_missing_audio": skip_missing_audio},
                warnings=[w for w in log.warnings if Path(w.file) in split_files],
            )
        )
    return summaries
