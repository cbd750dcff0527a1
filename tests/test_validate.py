"""``mtspeech data validate``: a corpus with one of each kind of bad input gets every problem reported, with
file and line, in one run; the CLI prints them without a traceback and exits 1; a clean corpus has none."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet
from typer.testing import CliRunner

from mtspeech.cli import app
from mtspeech.data.corpus import manifest_path, save_split, write_info
from mtspeech.data.validate import validate_corpus


def write_audio(path: Path, seconds: float, rate: int = 16000, channels: int = 1) -> Path:
    t = np.arange(int(round(seconds * rate))) / rate
    wave = (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.stack([wave] * channels, axis=1) if channels > 1 else wave, rate)
    return path


def labelled_cut(recording: Recording, cut_id: str, **overrides: Any) -> dict[str, Any]:
    """A cut dict over the whole recording with one fully labelled supervision; ``overrides`` replace
    supervision fields (``custom`` is merged)."""
    custom = {
        "intent": "alarm_set",
        "slots": [{"type": "time", "start": 4, "end": 5, "value": "seven"}],
        "bio": ["O", "O", "O", "O", "B-time"],
        "emotion": "neutral",
        "accent": "en-gb",
        "translation": {"fr": "réveille-moi à sept heures"},
    }
    custom.update(overrides.pop("custom", {}))
    sup = SupervisionSegment(
        id=f"{cut_id}-sup",
        recording_id=recording.id,
        start=0.0,
        duration=recording.duration,
        channel=recording.channel_ids if len(recording.channel_ids) > 1 else 0,
        text="wake me up at seven",
        language="en",
        speaker="spk1",
        gender="f",
        custom=custom,
    )
    cut = recording.to_cut()
    cut.id, cut.supervisions = cut_id, [sup]
    cut.custom = {"exact_segments": False, "split": "train", "corpus": "unit"}
    raw = cut.to_dict()
    raw["supervisions"][0].update(overrides)
    return raw


def write_jsonl_gz(path: Path, lines: list[Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for line in lines:
            handle.write((line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)) + "\n")


def build_clean_corpus(root: Path) -> Path:
    corpus = root / "clean"
    for split, count in (("train", 3), ("valid", 2)):
        recordings = [
            Recording.from_file(write_audio(corpus / "audio" / f"{split}{i}.flac", 1.0 + i / 4)) for i in range(count)
        ]
        cuts = CutSet.from_dicts(
            {**labelled_cut(r, f"{split}-{i}"), "custom": {"exact_segments": False, "split": split, "corpus": "unit"}}
            for i, r in enumerate(recordings)
        )
        sups = SupervisionSet.from_segments(s for c in cuts for s in c.supervisions)
        save_split(corpus, split, RecordingSet.from_recordings(recordings), sups, cuts)
    write_info(corpus, {"name": "unit", "labels": {"intent": ["alarm_set"], "language": ["en"]}})
    return corpus


# (cut id, problem kind, severity, where: "cuts" line or "recordings" line of the cut's recording)
EXPECTED = [
    ("missing-audio", "missing_audio", "error", "recordings"),
    ("unreadable-audio", "unreadable_audio", "error", "recordings"),
    ("rate-mismatch", "sampling_rate", "error", "recordings"),
    ("rate-8k", "sampling_rate", "warning", "recordings"),
    ("stereo", "channels", "warning", "recordings"),
    ("channel-mismatch", "channels", "error", "recordings"),
    ("too-short-file", "audio_length", "error", "recordings"),
    ("empty-text", "empty_transcript", "error", "cuts"),
    ("past-end", "segment_past_end", "error", "cuts"),
    ("slot-outside", "slot_span", "error", "cuts"),
    ("bio-length", "bio_length", "error", "cuts"),
    ("bad-language", "unknown_label", "error", "cuts"),
    ("bad-emotion", "unknown_label", "error", "cuts"),
    ("bad-accent", "unknown_label", "error", "cuts"),
    ("bad-intent", "unknown_label", "error", "cuts"),
]


def build_bad_corpus(root: Path) -> tuple[Path, dict[str, int], dict[str, int]]:
    """One cut per kind of bad input (plus a clean first cut, a duplicate id, a malformed entry and a garbled
    line at the end). Returns the corpus and the cuts/recordings manifest line of each cut id."""
    corpus, audio = root / "bad", root / "bad" / "audio"
    rec = {name: Recording.from_file(write_audio(audio / f"{name}.wav", 1.0), recording_id=name) for name in
           ("ok", "missing-audio", "unreadable-audio", "empty-text", "past-end", "slot-outside", "bio-length",
            "bad-language", "bad-emotion", "bad-accent", "bad-intent", "rate-mismatch")}  # fmt: skip
    rec["rate-8k"] = Recording.from_file(write_audio(audio / "rate-8k.wav", 1.0, rate=8000))
    rec["stereo"] = Recording.from_file(write_audio(audio / "stereo.wav", 1.0, channels=2))
    rec["channel-mismatch"] = Recording.from_file(write_audio(audio / "channel-mismatch.wav", 1.0, channels=2))
    rec["too-short-file"] = Recording.from_file(write_audio(audio / "too-short-file.wav", 3.0))
    # now break the files behind the manifests' backs
    (audio / "missing-audio.wav").unlink()
    (audio / "unreadable-audio.wav").write_bytes(b"this is not audio at all" * 10)
    write_audio(audio / "rate-mismatch.wav", 1.0, rate=8000)
    write_audio(audio / "channel-mismatch.wav", 1.0, channels=1)
    write_audio(audio / "too-short-file.wav", 1.0)

    cuts = [labelled_cut(rec["ok"], "ok")]
    cuts += [labelled_cut(rec[name], name) for name in ("missing-audio", "unreadable-audio", "rate-mismatch")]
    cuts += [labelled_cut(rec[name], name) for name in ("rate-8k", "stereo", "channel-mismatch", "too-short-file")]
    cuts += [
        labelled_cut(rec["empty-text"], "empty-text", text="  ", custom={"slots": None, "bio": None}),
        labelled_cut(rec["past-end"], "past-end", start=0.5, duration=1.0),
        labelled_cut(rec["slot-outside"], "slot-outside", custom={"slots": [{"type": "time", "start": 3, "end": 9}]}),
        labelled_cut(rec["bio-length"], "bio-length", custom={"slots": None, "bio": ["O", "B-time"]}),
        labelled_cut(rec["bad-language"], "bad-language", language="english"),
        labelled_cut(rec["bad-emotion"], "bad-emotion", custom={"emotion": "furious"}),
        labelled_cut(rec["bad-accent"], "bad-accent", custom={"accent": "en-mars"}),
        labelled_cut(rec["bad-intent"], "bad-intent", custom={"intent": "Set Alarm"}),
        labelled_cut(rec["ok"], "ok"),  # duplicate cut id
        {**labelled_cut(rec["ok"], "malformed"), "duration": "long"},
        '{"id": "garbled", "start": 0.0, "dura',
    ]
    cut_lines = {c["id"]: i for i, c in reversed(list(enumerate(cuts, start=1))) if isinstance(c, dict)}
    cut_lines["duplicate"], cut_lines["malformed"], cut_lines["garbled"] = len(cuts) - 2, len(cuts) - 1, len(cuts)
    write_jsonl_gz(manifest_path(corpus, "cuts", "train"), cuts)
    write_jsonl_gz(manifest_path(corpus, "recordings", "train"), [r.to_dict() for r in rec.values()])
    rec_lines = {name: i for i, name in enumerate(rec, start=1)}
    # a supervisions manifest cut short in the middle of its gzip stream
    sups = gzip.compress(b"".join(json.dumps(c["supervisions"][0]).encode() + b"\n" for c in cuts[:14]))
    manifest_path(corpus, "supervisions", "train").write_bytes(sups[: len(sups) // 2])
    write_info(corpus, {"name": "bad", "labels": {"language": ["en"]}})
    return corpus, cut_lines, rec_lines


@pytest.fixture(scope="module")
def bad_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int], dict[str, int]]:
    return build_bad_corpus(tmp_path_factory.mktemp("validate"))


def test_every_problem_reported_with_file_and_line(bad_corpus: tuple[Path, dict[str, int], dict[str, int]]) -> None:
    corpus, cut_lines, rec_lines = bad_corpus
    report = validate_corpus(corpus)
    cuts_file = str(manifest_path(corpus, "cuts", "train"))
    recordings_file = str(manifest_path(corpus, "recordings", "train"))
    found = {(p.file, p.line, p.kind, p.severity) for p in report.problems}
    for cut_id, kind, severity, where in EXPECTED:
        place = (cuts_file, cut_lines[cut_id]) if where == "cuts" else (recordings_file, rec_lines[cut_id])
        assert (*place, kind, severity) in found, (cut_id, kind, sorted(found))
    assert (cuts_file, cut_lines["duplicate"], "duplicate_id", "error") in found
    assert (cuts_file, cut_lines["malformed"], "invalid_entry", "error") in found
    assert (cuts_file, cut_lines["garbled"], "unreadable_line", "error") in found
    sup_file = str(manifest_path(corpus, "supervisions", "train"))
    assert any(p.file == sup_file and p.kind == "unreadable_line" for p in report.errors)

    # nothing is reported about the clean first cut, and every error is one we planted
    assert not [p for p in report.problems if p.file == cuts_file and p.line == 1]
    planted = {cut_lines[c] for c, *_, where in EXPECTED if where == "cuts"}
    planted |= {cut_lines[k] for k in ("duplicate", "malformed", "garbled")}
    assert {p.line for p in report.errors if p.file == cuts_file} == planted
    planted_errors = sum(severity == "error" for _, _, severity, _ in EXPECTED) + 3 + 1  # + the supervisions file
    assert not report.ok and len(report.errors) == planted_errors, [str(p) for p in report.errors]

    by_line = {p.line: p for p in report.problems if p.file == cuts_file}
    assert by_line[cut_lines["duplicate"]].message.endswith("(first at line 1)")
    assert by_line[cut_lines["malformed"]].field == "duration"
    assert by_line[cut_lines["bad-emotion"]].field == "supervisions[0].custom.emotion"
    rate_error = next(p for p in report.errors if p.kind == "sampling_rate")
    assert "resampling cannot fix" in rate_error.message
    rate_warning = next(p for p in report.warnings if p.kind == "sampling_rate")
    assert "on load (fixed" in rate_warning.message

    as_json = json.loads(report.to_json())
    assert as_json["ok"] is False and as_json["errors"] == len(report.errors)
    assert {"file", "line", "field", "message", "severity", "kind"} <= set(as_json["problems"][0])


def test_cli_prints_all_problems_and_exits_1(bad_corpus: tuple[Path, dict[str, int], dict[str, int]]) -> None:
    corpus, cut_lines, _ = bad_corpus
    env = {**os.environ, "COLUMNS": "250"}
    proc = subprocess.run(
        [sys.executable, "-m", "mtspeech", "data", "validate", str(corpus)], capture_output=True, text=True, env=env
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "Traceback" not in output
    for cut_id in [c for c, *_ in EXPECTED if c in cut_lines] + ["duplicate", "malformed", "garbled"]:
        if next((where for c, *_, where in EXPECTED if c == cut_id), "cuts") == "cuts":
            assert f"cuts_train.jsonl.gz:{cut_lines[cut_id]} " in output, (cut_id, output)
    assert "FAILED" in output

    result = CliRunner().invoke(app, ["data", "validate", str(corpus), "--json", "--audio", "none"])
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["audio_check"] == "none" and payload["errors"] > 0
    assert "missing_audio" not in payload["problem_kinds"]  # audio not checked at this depth


def test_clean_corpus_has_no_problems(tmp_path: Path) -> None:
    corpus = build_clean_corpus(tmp_path)
    report = validate_corpus(corpus, audio="full")
    assert report.problems == [] and report.ok
    assert report.splits["train"].cuts == 3 and report.splits["valid"].supervisions == 2
    result = CliRunner().invoke(app, ["data", "validate", str(corpus)])
    assert result.exit_code == 0, result.output
    assert "0 errors, 0 warnings" in result.output


def test_corpus_level_problems(tmp_path: Path) -> None:
    corpus = build_clean_corpus(tmp_path)
    (corpus / "corpus.json").write_text('{"name": "x",\n "labels": {"emotion": ["happy", "bored"],}}')
    manifest_path(corpus, "recordings", "valid").unlink()
    # the same recording in train and valid: a leak between splits
    train_cut = next(iter(CutSet.from_file(manifest_path(corpus, "cuts", "train"))))
    leak = {**train_cut.to_dict(), "id": "leak", "custom": {"split": "valid"}}
    with gzip.open(manifest_path(corpus, "cuts", "valid"), "at") as handle:
        handle.write(json.dumps(leak) + "\n")
    report = validate_corpus(corpus, ["train", "valid", "nope"])
    kinds = {(p.kind, p.severity) for p in report.problems}
    assert ("corpus_info", "error") in kinds  # trailing comma: not JSON
    info_problem = next(p for p in report.problems if p.kind == "corpus_info")
    assert info_problem.line == 2
    assert ("missing_manifest", "warning") in kinds  # recordings_valid
    assert ("missing_manifest", "error") in kinds  # split "nope"
    leak_warning = next(p for p in report.problems if p.kind == "split_leak")
    assert "'train' and 'valid'" in leak_warning.message and leak_warning.line == 3


def test_declared_labels_replace_builtin_sets(tmp_path: Path) -> None:
    corpus = build_clean_corpus(tmp_path)
    write_info(corpus, {"labels": {"emotion": ["neutral", "bored"], "accent": ["en-gb"]}})
    report = validate_corpus(corpus, audio="none")
    assert report.ok
    assert [p.field for p in report.warnings] == ["labels.emotion"]  # "bored" is accepted, flagged once
    write_info(corpus, {"labels": {"emotion": ["bored"]}})
    report = validate_corpus(corpus, audio="none")
    assert not report.ok and {p.field for p in report.errors} == {"supervisions[0].custom.emotion"}


def test_text_only_rows_are_read_and_checked_for_leaks(tmp_path: Path) -> None:
    from mtspeech.data.corpus import TextRow, save_texts, texts_path

    corpus = build_clean_corpus(tmp_path)
    save_texts(corpus, "train", [TextRow("t1", "en", "set an alarm"), TextRow("t2", "en", "wake  me up at seven")])
    report = validate_corpus(corpus)
    leak = next(p for p in report.problems if p.kind == "split_leak")  # the valid cuts speak that sentence
    assert "1 text-only rows of 'train' are spoken in 'valid'" in leak.message and leak.severity == "warning"
    assert leak.file == str(texts_path(corpus, "train"))
    write_jsonl_gz(texts_path(corpus, "train"), [{"id": "t1", "language": "en", "text": "fine"}, "{broken"])
    problem = next(p for p in validate_corpus(corpus).problems if p.kind == "invalid_entry")
    assert problem.line == 2 and problem.message.startswith("not valid JSON") and problem.severity == "error"
