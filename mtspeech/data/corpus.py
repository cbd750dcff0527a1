"""The on-disk layout of a corpus, shared by the synthesiser, the importers, validation and training.

CORPUS/
  corpus.json                              name, origin, label sets, creation parameters
  manifests/recordings_{split}.jsonl.gz    Lhotse RecordingSet
  manifests/supervisions_{split}.jsonl.gz  Lhotse SupervisionSet (labels per schema.py)
  manifests/cuts_{split}.jsonl.gz          Lhotse CutSet (what training reads)
  manifests/texts_{split}.jsonl.gz         optional text-only rows: sentences of the split no recording speaks
                                           (``id``, ``language``, ``text`` and labels per schema.py), for
                                           language models and heads that read transcripts
  audio/...                                audio files (synthetic corpus; imports may point elsewhere)
  SUMMARY.md, plots/                       written by ``mtspeech corpus summary``
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtspeech.data.schema import SPLITS
from mtspeech.errors import UserError
from mtspeech.jsonl import json_lines

if TYPE_CHECKING:
    from lhotse import CutSet, RecordingSet, SupervisionSet

MANIFEST_KINDS = ("recordings", "supervisions", "cuts")
INFO_FILE = "corpus.json"


@dataclass(frozen=True)
class TextRow:
    """A sentence without audio: its words and the labels text can carry (``custom``: intent, slots, ...)."""

    id: str
    language: str
    text: str
    custom: dict[str, Any] = field(default_factory=dict)


def manifest_path(corpus_dir: str | Path, kind: str, split: str) -> Path:
    if kind not in MANIFEST_KINDS:
        raise ValueError(f"manifest kind must be one of {MANIFEST_KINDS}, got {kind!r}")
    return Path(corpus_dir) / "manifests" / f"{kind}_{split}.jsonl.gz"


def available_splits(corpus_dir: str | Path) -> list[str]:
    """Splits with a cuts manifest, standard splits first, then any others alphabetically."""
    found = {p.name[len("cuts_") : -len(".jsonl.gz")] for p in (Path(corpus_dir) / "manifests").glob("cuts_*.jsonl.gz")}
    return [s for s in SPLITS if s in found] + sorted(found - set(SPLITS))


def load_cuts(corpus_dir: str | Path, split: str) -> CutSet:
    """Lazily open the cuts of ``split``; a clear error names the missing file and the splits present."""
    from lhotse import CutSet

    path = manifest_path(corpus_dir, "cuts", split)
    if not path.is_file():
        present = available_splits(corpus_dir)
        raise UserError(f"no cuts for split {split!r} (splits present: {present or 'none'})", path=path)
    return CutSet.from_jsonl_lazy(path)


def save_split(
    corpus_dir: str | Path,
    split: str,
    recordings: RecordingSet,
    supervisions: SupervisionSet,
    cuts: CutSet,
) -> None:
    """Write the three manifests of ``split``; each through a temp file + rename so a crash never
    leaves a half-written manifest behind."""
    for kind, manifest in (("recordings", recordings), ("supervisions", supervisions), ("cuts", cuts)):
        path = manifest_path(corpus_dir, kind, split)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(".tmp-" + path.name)
        manifest.to_file(tmp)
        tmp.replace(path)


def write_info(corpus_dir: str | Path, info: dict[str, Any]) -> None:
    path = Path(corpus_dir) / INFO_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".tmp-" + path.name)
    tmp.write_text(json.dumps(info, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
    tmp.replace(path)


def read_info(corpus_dir: str | Path) -> dict[str, Any]:
    """``corpus.json`` as a dict; an empty dict when the corpus has none (e.g. plain Lhotse manifests)."""
    path = Path(corpus_dir) / INFO_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"not valid JSON ({err.msg} at line {err.lineno})", path=path) from None


def texts_path(corpus_dir: str | Path, split: str) -> Path:
    return Path(corpus_dir) / "manifests" / f"texts_{split}.jsonl.gz"


def save_texts(corpus_dir: str | Path, split: str, rows: Iterable[TextRow]) -> Path:
    """Write the text-only rows of ``split`` (gzipped JSON lines) through a temp file + rename."""
    path = texts_path(corpus_dir, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".tmp-" + path.name)
    with gzip.open(tmp, "wt", encoding="utf-8") as f:
        for row in rows:
            record = {"id": row.id, "language": row.language, "text": row.text, **row.custom}
            f.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def load_texts(corpus_dir: str | Path, split: str) -> list[TextRow]:
    """The text-only rows of ``split``; none when the corpus has no such file (imported corpora, older corpora).
    A malformed row is a UserError naming the file, the line and the field."""
    path = texts_path(corpus_dir, split)
    if not path.is_file():
        return []
    rows = []
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            lines = list(f)
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise UserError(f"cannot read the text rows ({err})", path=path) from None
    for number, record in json_lines(lines, path):
        for key in ("id", "language", "text"):
            if not isinstance(record.get(key), str) or not record[key].strip():
                raise UserError(f"field {key!r} must be a non-empty string", path=path, line=number)
        rows.append(
            TextRow(
                id=record.pop("id"),
                language=record.pop("language"),
                text=" ".join(record.pop("text").split()),
                custom=record,
            )
        )
    return rows
