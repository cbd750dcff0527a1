"""What every importer shares: collecting input problems with file and line, reading line-numbered
(optionally gzipped) text and JSON lines, probing audio headers, building cuts and writing the corpus.

Importers never stop at the first bad line: they note every problem in a :class:`ProblemLog` and raise
one :class:`~mtspeech.errors.UserError` listing them all before anything is written.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtspeech.data import corpus, schema
from mtspeech.data.validate_labels import collect_label_sets
from mtspeech.errors import UserError

if TYPE_CHECKING:
    from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

# A supervision may overshoot its recording by this much (rounding of segment times in the source).
END_TOLERANCE_S = 0.01

_SPLIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

# ``progress(stage, done, total)``: called as long work advances (the CLI draws rich progress bars from it).
ProgressFn = Callable[[str, int, int | None], None]


def no_progress(stage: str, done: int, total: int | None) -> None:
    """The default progress callback: report nothing."""


@dataclass(frozen=True)
class InputProblem:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line is not None else f"{self.file}: {self.message}"


@dataclass
class ProblemLog:
    """Problems (stop the import) and warnings (reported, import goes on) of one import run."""

    what: str  # "Kaldi data dir /data/train", used in the error's first line
    problems: list[InputProblem] = field(default_factory=list)
    warnings: list[InputProblem] = field(default_factory=list)

    def add(self, file: str | Path, line: int | None, message: str) -> None:
        self.problems.append(InputProblem(str(file), line, message))

    def warn(self, file: str | Path, line: int | None, message: str) -> None:
        self.warnings.append(InputProblem(str(file), line, message))

    def raise_if_any(self) -> None:
        """One UserError listing every problem, so a user fixes them all in one pass."""
        if not self.problems:
            return
        count = len(self.problems)
        listing = "\n".join(f"  {p}" for p in self.problems)
        raise UserError(f"{count} problem{'s' * (count != 1)} in {self.what}; nothing was written:\n{listing}")


@dataclass
class ImportSummary:
    """What an import wrote: counts per kind, the label sets found and the warnings to show the user."""

    corpus_dir: Path
    split: str
    recordings: int
    supervisions: int
    cuts: int
    hours: float
    labels: dict[str, list[str]]
    warnings: list[InputProblem]


def open_text(path: Path) -> Any:
    """Text handle for a plain or gzip-compressed (``.gz``) UTF-8 file."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def iter_lines(path: Path, log: ProblemLog) -> Iterator[tuple[int, str]]:
    """``(line_number, line)`` for every non-blank line; an unreadable file or a broken byte is a problem."""
    line_no = 0
    try:
        with open_text(path) as handle:
            for line_no, line in enumerate(handle, start=1):  # noqa: B007 - line_no is read after the loop
                if line.strip():
                    yield line_no, line.rstrip("\r\n")
    except FileNotFoundError:
        log.add(path, None, "file not found")
    except UnicodeDecodeError as err:
        log.add(path, line_no + 1, f"not UTF-8 text ({err.reason}); the rest of the file was not read")
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError; a truncated .gz raises EOFError
        log.add(path, line_no + 1, f"cannot read the file ({err}); the rest of the file was not read")


def iter_json_objects(path: Path, log: ProblemLog) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line_number, object)`` for every JSON-object line; malformed lines become problems."""
    for line_no, line in iter_lines(path, log):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            log.add(path, line_no, f"not valid JSON: {err.msg} (column {err.colno})")
            continue
        if not isinstance(obj, dict):
            log.add(path, line_no, f"expected a JSON object, got {type(obj).__name__}")
            continue
        yield line_no, obj


def resolve_audio_path(raw: str, bases: Sequence[Path]) -> Path | None:
    """An absolute path to an existing file: ``raw`` itself if absolute, else the first base it exists under."""
    path = Path(os.path.expanduser(raw))
    if path.is_absolute():
        return path if path.is_file() else None
    for base in bases:
        candidate = (base / path).absolute()
        if candidate.is_file():
            return candidate
    return None


def probe_recordings(
    items: Sequence[tuple[str, Path]], progress: ProgressFn = no_progress
) -> dict[str, Recording | str]:
    """Recording (header only: rate, channels, length) per id, or the error text for a file that cannot be read.

    Headers are read in a few threads: on network file systems the latency, not the CPU, dominates."""
    from lhotse import Recording

    def probe(item: tuple[str, Path]) -> tuple[str, Recording | str]:
        rec_id, path = item
        try:
            return rec_id, Recording.from_file(path, recording_id=rec_id)
        except Exception as err:  # soundfile/ffmpeg raise many types; all mean "cannot read this audio"
            return rec_id, f"cannot read audio header of {path}: {str(err).splitlines()[0] if str(err) else err!r}"

    stage = "reading audio headers"
    results: dict[str, Recording | str] = {}
    progress(stage, 0, len(items))
    with ThreadPoolExecutor(max_workers=8 if len(items) >= 16 else 1) as pool:
        for done, (rec_id, result) in enumerate(pool.map(probe, items), start=1):
            results[rec_id] = result
            progress(stage, done, len(items))
    return results


def recording_channel(recording: Recording) -> int | list[int]:
    """The ``channel`` a supervision/cut over the whole recording gets: an int for mono, else all channels."""
    ids = list(recording.channel_ids)
    return ids[0] if len(ids) == 1 else ids


def make_cut(
    cut_id: str,
    recording: Recording,
    start: float,
    duration: float,
    supervisions: Sequence[SupervisionSegment],
    custom: dict[str, Any],
) -> Any:
    """A MonoCut (MultiCut for multi-channel audio) over ``[start, start + duration)`` of ``recording``,
    holding ``supervisions`` re-timed relative to the cut, as Lhotse expects."""
    from lhotse import MonoCut, MultiCut
    from lhotse.utils import fastcopy

    channel = recording_channel(recording)
    cls = MultiCut if isinstance(channel, list) else MonoCut
    return cls(
        id=cut_id,
        start=start,
        duration=duration,
        channel=channel,
        recording=recording,
        supervisions=[fastcopy(s, start=round(s.start - start, 6)) for s in supervisions],
        custom=custom,
    )


def cut_custom(corpus_name: str, split: str, *, exact_segments: bool) -> dict[str, Any]:
    """Cut-level labels of schema.CUT_KEYS that an importer knows."""
    custom: dict[str, Any] = {schema.EXACT_SEGMENTS: exact_segments, schema.CORPUS: corpus_name}
    if split in schema.SPLITS:
        custom[schema.SPLIT] = split
    return custom


def check_output(out_dir: Path, split: str, overwrite: bool) -> None:
    """Refuse a split name that cannot be a file name part, and an existing split unless asked to replace it,
    before any slow work is done."""
    if not _SPLIT_NAME.match(split):
        raise UserError(f"split name {split!r} must be letters, digits, '.', '_' or '-' (e.g. train, valid, test)")
    existing = [p for kind in corpus.MANIFEST_KINDS if (p := corpus.manifest_path(out_dir, kind, split)).exists()]
    if existing and not overwrite:
        raise UserError(
            f"split {split!r} already exists ({existing[0].name}); pass --overwrite to replace it", path=out_dir
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError("output exists and is not a directory", path=out_dir)


def warn_new_labels(supervisions: Sequence[Any], source: Path, log: ProblemLog) -> None:
    """Emotions/accents outside mtspeech's built-in sets are allowed (corpus.json declares them); say so once."""
    for key, builtin in ((schema.EMOTION, schema.EMOTIONS), (schema.ACCENT, schema.ACCENTS)):
        found = {s.custom[key] for s in supervisions if s.custom and isinstance(s.custom.get(key), str)}
        new = sorted(found - set(builtin))
        if new:
            log.warn(
                source,
                None,
                f"{key} labels {new} are not built in ({', '.join(builtin)}); "
                "corpus.json declares them so validation accepts them",
            )


def write_corpus(
    out_dir: Path,
    split: str,
    recordings: RecordingSet,
    supervisions: SupervisionSet,
    cuts: CutSet,
    *,
    name: str,
    source_format: str,
    source: Path | Sequence[Path],
    options: dict[str, Any],
    warnings: Sequence[InputProblem] = (),
) -> ImportSummary:
    """Save the split's manifests and merge this import into corpus.json (other splits' entries are kept)."""
    corpus.save_split(out_dir, split, recordings, supervisions, cuts)
    labels = collect_label_sets(supervisions)
    info = corpus.read_info(out_dir)
    merged_labels = {k: list(v) for k, v in (info.get("labels") or {}).items() if isinstance(v, list)}
    for key, values in labels.items():
        merged_labels[key] = sorted(set(merged_labels.get(key, [])) | set(values))
    hours = sum(c.duration for c in cuts) / 3600
    sources = [str(Path(p).absolute()) for p in ([source] if isinstance(source, Path) else source)]
    imports = dict(info.get("imports") or {})
    imports[split] = {
        "format": source_format,
        "source": sources[0] if len(sources) == 1 else sources,
        "options": options,
    }
    splits = dict(info.get("splits") or {})
    splits[split] = {
        "recordings": len(recordings),
        "supervisions": len(supervisions),
        "cuts": len(cuts),
        "hours": round(hours, 4),
    }
    formats = sorted({entry["format"] for entry in imports.values()})
    info.update(
        name=info.get("name") or name,
        origin=formats[0] if len(formats) == 1 else "mixed",
        imports=imports,
        labels=merged_labels,
        splits=splits,
    )
    corpus.write_info(out_dir, info)
    return ImportSummary(
        corpus_dir=out_dir,
        split=split,
        recordings=len(recordings),
        supervisions=len(supervisions),
        cuts=len(cuts),
        hours=hours,
        labels=labels,
        warnings=list(warnings),
    )
