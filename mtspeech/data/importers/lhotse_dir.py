"""Import existing Lhotse manifests as they are: a directory of ``*recordings*``/``*supervisions*``/``*cuts*``
JSONL(.gz) files (e.g. ``librispeech_supervisions_dev-clean.jsonl.gz`` from a Lhotse recipe, or another
mtspeech corpus), or single manifest files.

Cuts are taken as they are; recordings + supervisions become one cut per supervision (``cuts="supervision"``,
right for utterance-level corpora) or per recording (``cuts="recording"``, right when supervisions mark the
speech inside short recordings). Relative audio paths are made absolute, languages and genders are
normalised ("English" -> "en"), and every label is checked against the contract of
:mod:`mtspeech.data.schema`; every problem is reported with its file and line before anything is written.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtspeech.data import schema
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
    warn_new_labels,
    write_corpus,
)
from mtspeech.data.validate_items import MANIFEST_ITEM_KINDS, load_item, sniff_kind
from mtspeech.data.validate_labels import check_supervision_labels, normalize_gender, normalize_language
from mtspeech.errors import UserError

# "librispeech_cuts_dev-clean.jsonl.gz", "cuts_train.jsonl", "recordings.jsonl.gz", "dev_supervisions.jsonl"
_MANIFEST_NAME = re.compile(
    r"^(?:(?P<before>.+?)[_.-])?(?P<kind>recordings|supervisions|cuts)(?:[_.-](?P<after>.+?))?\.jsonl(?:\.gz)?$"
)
# Split names of common recipes that mean mtspeech's "valid".
SPLIT_ALIASES = {"dev": "valid", "devel": "valid", "validation": "valid", "val": "valid"}
CUT_MODES = ("supervision", "recording")


@dataclass
class SplitFiles:
    """The manifests found for one split."""

    recordings: Path | None = None
    supervisions: Path | None = None
    cuts: Path | None = None

    def paths(self) -> list[Path]:
        return [p for p in (self.cuts, self.recordings, self.supervisions) if p is not None]


def _kind_and_split(path: Path) -> tuple[str | None, str | None]:
    """Manifest kind and split from a file name (``librispeech_cuts_dev-clean.jsonl.gz`` -> cuts, dev-clean)."""
    match = _MANIFEST_NAME.match(path.name)
    if match is None:
        return None, None
    split = match.group("after")
    if split is None and match.group("before") and match.group("before").lower() in (*schema.SPLITS, *SPLIT_ALIASES):
        split = match.group("before")  # "dev_cuts.jsonl.gz"
    return match.group("kind"), split


def _sniff_file(path: Path) -> str | None:
    log = ProblemLog(str(path))
    for _, obj in iter_json_objects(path, log):
        return sniff_kind(obj)
    return None


def find_manifests(
    sources: Sequence[Path], split: str | None = None, split_map: Mapping[str, str] | None = None
) -> dict[str, SplitFiles]:
    """Manifests per mtspeech split: files given directly, or every JSONL(.gz) manifest in the given
    directories (and their ``manifests/`` subdirectory). ``split`` puts everything into that split."""
    aliases = {**SPLIT_ALIASES, **(split_map or {})}
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            found = [p for d in (source, source / "manifests") for p in sorted(d.glob("*.jsonl*")) if p.is_file()]
            files += [p for p in found if _kind_and_split(p)[0] is not None]
        elif source.is_file():
            files.append(source)
        else:
            raise UserError("no such file or directory", path=source)
    if not files:
        raise UserError(
            "no Lhotse manifests found (expected *recordings*/*supervisions*/*cuts*.jsonl[.gz] files)",
            path=sources[0] if len(sources) == 1 else None,
        )
    splits: dict[str, SplitFiles] = defaultdict(SplitFiles)
    for path in files:
        kind, name_split = _kind_and_split(path)
        kind = kind or _sniff_file(path)
        if kind not in MANIFEST_ITEM_KINDS:
            raise UserError("cannot tell whether this is a recordings, supervisions or cuts manifest", path=path)
        target = split or name_split or "train"
        target = aliases.get(target, aliases.get(target.lower(), target))
        if getattr(splits[target], kind) is not None:
            raise UserError(
                f"two {kind} manifests for split {target!r}: {getattr(splits[target], kind)} and {path}; "
                "import them one at a time with --split",
                path=path,
            )
        setattr(splits[target], kind, path)
    for target, found in splits.items():
        if found.cuts is None and found.recordings is None:
            message = f"split {target!r} has supervisions but no recordings or cuts manifest"
            raise UserError(message, path=found.supervisions)
    return dict(splits)


def _split_order(split: str) -> tuple[int, str]:
    """train, valid, test first, then other splits alphabetically."""
    return (schema.SPLITS.index(split) if split in schema.SPLITS else len(schema.SPLITS), split)


@dataclass
class _Options:
    name: str
    split: str
    bases: list[Path]
    skip_missing_audio: bool
    exact_segments: bool | None
    log: ProblemLog
    progress: ProgressFn
    exists: dict[str, bool] = field(default_factory=dict)  # path -> is a file (stat each path once)
    missing_audio: set[str] = field(default_factory=set)  # recording ids whose audio was not found


def _items(path: Path, kind: str, opts: _Options) -> list[tuple[int, Any]]:
    """Lhotse objects of one manifest with their line numbers; bad lines and duplicate ids are problems."""
    items: list[tuple[int, Any]] = []
    first_line: dict[str, int] = {}
    stage = f"reading {path.name}"
    for line, obj in iter_json_objects(path, opts.log):
        item, problems = load_item(kind, obj)
        for field_name, message in problems:
            opts.log.add(path, line, f"{field_name}: {message}" if field_name else message)
        if item is None:
            continue
        if item.id in first_line:
            opts.log.add(path, line, f"duplicate id {item.id!r} (first at line {first_line[item.id]})")
            continue
        first_line[item.id] = line
        items.append((line, item))
        if len(items) % 1000 == 0:
            opts.progress(stage, len(items), None)
    return items


def _absolute_sources(recording: Any, path: Path, line: int, opts: _Options) -> Any | None:
    """``recording`` with its file sources made absolute; None (after a problem/warning) when one is missing."""
    from lhotse.utils import fastcopy

    sources = []
    for source in recording.sources:
        if source.type != "file":
            sources.append(source)
            continue
        raw = Path(str(source.source)).expanduser()
        candidates = [raw] if raw.is_absolute() else [(base / raw).absolute() for base in opts.bases]
        found = next((c for c in candidates if opts.exists.setdefault(str(c), c.is_file())), None)
        if found is None:
            report = opts.log.warn if opts.skip_missing_audio else opts.log.add
            report(path, line, f"audio file of recording {recording.id!r} not found: {source.source}")
            opts.missing_audio.add(recording.id)
            return None
        sources.append(fastcopy(source, source=str(found)))
    return fastcopy(recording, sources=sources)


def _normalise_supervision(sup: Any, path: Path, line: int, declared: Mapping[str, set[str]], opts: _Options) -> Any:
    """Language/gender in the contract's form; label problems logged against ``path:line``."""
    from lhotse.utils import fastcopy

    changes: dict[str, str] = {}
    for key, normalize in (("language", normalize_language), ("gender", normalize_gender)):
        value = getattr(sup, key)
        if value is not None:
            try:
                changes[key] = normalize(value)
            except ValueError as err:
                opts.log.add(path, line, f"supervision {sup.id!r}: {err}")
    sup = fastcopy(sup, **changes)
    raw = {"text": sup.text, "language": sup.language, "gender": sup.gender, "custom": sup.custom}
    for _, field_name, message in check_supervision_labels(raw, declared):
        if field_name not in ("language", "gender"):  # already reported above
            opts.log.add(path, line, f"supervision {sup.id!r} {field_name}: {message}")
    return sup


def _declared_free_labels(supervisions: Sequence[Any]) -> dict[str, set[str]]:
    """Emotion/accent labels are open sets for imports (corpus.json declares them), so accept those present."""
    found: dict[str, set[str]] = {schema.EMOTION: set(), schema.ACCENT: set()}
    for sup in supervisions:
        for key, values in found.items():
            value = (sup.custom or {}).get(key)
            if isinstance(value, str) and value:
                values.add(value)
    return found


def _cut_labels(existing: Mapping[str, Any] | None, opts: _Options) -> dict[str, Any]:
    custom = dict(existing or {})
    exact = custom.get(schema.EXACT_SEGMENTS)
    if opts.exact_segments is not None or not isinstance(exact, bool):
        exact = bool(opts.exact_segments)
    custom.update(cut_custom(opts.name, opts.split, exact_segments=exact))
    return custom


def _from_cuts(path: Path, opts: _Options) -> list[Any]:
    from lhotse.utils import fastcopy

    loaded = _items(path, "cuts", opts)
    declared = _declared_free_labels([s for _, cut in loaded for s in cut.supervisions])
    cuts = []
    for line, cut in loaded:
        recording = _absolute_sources(cut.recording, path, line, opts)
        if recording is None:
            continue
        if cut.start + cut.duration > recording.duration + END_TOLERANCE_S:
            opts.log.add(path, line, f"cut {cut.id!r} ends after its recording ({recording.duration:.3f} s)")
        for sup in cut.supervisions:
            if cut.start + sup.end > recording.duration + END_TOLERANCE_S:
                end = cut.start + sup.end
                message = f"supervision {sup.id!r} ends at {end:.3f} s, after the end of its recording"
                opts.log.add(path, line, f"{message} ({recording.duration:.3f} s)")
        sups = [_normalise_supervision(s, path, line, declared, opts) for s in cut.supervisions]
        cuts.append(fastcopy(cut, recording=recording, supervisions=sups, custom=_cut_labels(cut.custom, opts)))
    return cuts


def _from_recordings(files: SplitFiles, cut_mode: str, opts: _Options) -> list[Any]:
    assert files.recordings is not None
    recordings: dict[str, Any] = {}
    for line, rec in _items(files.recordings, "recordings", opts):
        if (fixed := _absolute_sources(rec, files.recordings, line, opts)) is not None:
            recordings[rec.id] = fixed
    by_recording: dict[str, list[Any]] = defaultdict(list)
    if files.supervisions is not None:
        loaded = _items(files.supervisions, "supervisions", opts)
        declared = _declared_free_labels([sup for _, sup in loaded])
        for line, sup in loaded:
            if sup.recording_id not in recordings:
                if sup.recording_id not in opts.missing_audio:  # a missing audio file was reported already
                    message = f"recording {sup.recording_id!r} of supervision {sup.id!r} is not in "
                    opts.log.add(files.supervisions, line, message + files.recordings.name)
                continue
            recording = recordings[sup.recording_id]
            if sup.end > recording.duration + END_TOLERANCE_S:
                opts.log.add(
                    files.supervisions,
                    line,
                    f"supervision {sup.id!r} ends at {sup.end:.3f} s, after the end of its recording "
                    f"({recording.duration:.3f} s)",
                )
                continue
            by_recording[sup.recording_id].append(_normalise_supervision(sup, files.supervisions, line, declared, opts))
    cuts = []
    unlabelled = 0
    for rec_id, recording in recordings.items():
        sups = sorted(by_recording.get(rec_id, []), key=lambda s: s.start)
        if cut_mode == "recording":
            cuts.append(make_cut(rec_id, recording, 0.0, recording.duration, sups, _cut_labels(None, opts)))
            continue
        unlabelled += not sups
        for sup in sups:
            end = min(sup.end, recording.duration)
            duration = round(end - sup.start, 6)
            cuts.append(make_cut(sup.id, recording, sup.start, duration, [sup], _cut_labels(None, opts)))
    if unlabelled:
        opts.log.warn(files.recordings, None, f"{unlabelled} recording(s) without supervisions were left out")
    return cuts


def import_lhotse(
    sources: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    *,
    split: str | None = None,
    split_map: Mapping[str, str] | None = None,
    name: str | None = None,
    cuts: str = "supervision",
    exact_segments: bool | None = None,
    audio_root: str | Path | None = None,
    skip_missing_audio: bool = False,
    overwrite: bool = False,
    progress: ProgressFn = no_progress,
) -> list[ImportSummary]:
    """Import Lhotse manifests (a directory or files) into the corpus at ``out_dir``, one split per group found.

    ``split`` forces one split; otherwise it comes from the file names (``dev``/``devel``/``validation`` ->
    ``valid``, more via ``split_map``; no name -> ``train``). ``cuts`` says how recordings + supervisions
    become cuts (cuts manifests are kept as they are). ``exact_segments`` sets the cut flag that lets VAD
    trust the supervisions (default: the cut's own flag, else False). Relative audio paths are resolved
    against ``audio_root``, else the manifest's directory, then the current directory.
    """
    from lhotse import RecordingSet, SupervisionSet
    from lhotse.cut import CutSet

    if cuts not in CUT_MODES:
        raise UserError(f"cuts must be one of {CUT_MODES}, got {cuts!r}")
    paths = [Path(sources)] if isinstance(sources, str | Path) else [Path(s) for s in sources]
    if not paths:
        raise UserError("give at least one manifest file or directory")
    out_dir = Path(out_dir)
    groups = find_manifests(paths, split, split_map)
    for target in groups:
        check_output(out_dir, target, overwrite)
    name = name or out_dir.absolute().name
    log = ProblemLog(f"Lhotse manifests {', '.join(str(p) for p in paths)}")
    built: dict[str, list[Any]] = {}
    for target, files in sorted(groups.items(), key=lambda item: _split_order(item[0])):
        manifest_dir = (files.cuts or files.recordings or Path(".")).parent.absolute()
        bases = [Path(audio_root).absolute()] if audio_root is not None else [manifest_dir, Path.cwd()]
        opts = _Options(name, target, bases, skip_missing_audio, exact_segments, log, progress)
        # Cuts embed their recordings and supervisions, so the manifests beside them add nothing.
        built[target] = _from_cuts(files.cuts, opts) if files.cuts is not None else _from_recordings(files, cuts, opts)
    log.raise_if_any()
    summaries = []
    for target, cut_list in built.items():
        cut_set = CutSet.from_cuts(cut_list)
        recordings, supervisions, _ = cut_set.decompose()
        files = groups[target]
        if supervisions is not None:
            warn_new_labels(list(supervisions), files.paths()[0], log)
        summaries.append(
            write_corpus(
                out_dir,
                target,
                recordings if recordings is not None else RecordingSet.from_recordings([]),
                supervisions if supervisions is not None else SupervisionSet.from_segments([]),
                cut_set,
                name=name,
                source_format="lhotse",
                source=files.paths(),
                options={"cuts": cuts, "exact_segments": exact_segments, "skip_missing_audio": skip_missing_audio},
                warnings=[w for w in log.warnings if Path(w.file) in files.paths()],
            )
        )
    return summaries
