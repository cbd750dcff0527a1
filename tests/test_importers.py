"""Importers (Kaldi, SLURP, generic JSONL, Lhotse manifests) on small corpora written here: ids, texts,
labels, durations and splits of the manifests they write, and every input problem reported at once."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet
from typer.testing import CliRunner

from mtspeech.cli import app
from mtspeech.data.corpus import available_splits, manifest_path, read_info
from mtspeech.data.importers.jsonl import import_jsonl
from mtspeech.data.importers.kaldi import import_kaldi
from mtspeech.data.importers.lhotse_dir import find_manifests, import_lhotse
from mtspeech.data.importers.slurp import import_slurp
from mtspeech.data.validate import validate_corpus
from mtspeech.errors import UserError


def write_tone(path: Path, seconds: float, rate: int = 16000, channels: int = 1, seed: int = 0) -> Path:
    """A sine + a little noise; the format follows the suffix (.wav / .flac)."""
    t = np.arange(int(round(seconds * rate))) / rate
    wave = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * np.random.default_rng(seed).standard_normal(t.size)
    data = np.stack([wave] * channels, axis=1) if channels > 1 else wave
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data.astype(np.float32), rate)
    return path


def cuts_of(corpus: Path, split: str) -> dict[str, Any]:
    return {cut.id: cut for cut in CutSet.from_file(manifest_path(corpus, "cuts", split))}


def write_lines(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


# --- Kaldi -------------------------------------------------------------------------------------------------------


def make_kaldi_dir(root: Path, *, with_pipe: bool) -> Path:
    audio, data = root / "audio", root / "data" / "train"
    data.mkdir(parents=True)
    write_tone(audio / "rec1.wav", 3.0)
    write_tone(audio / "rec2.flac", 2.0, seed=1)
    wav_scp = [f"rec1 {audio / 'rec1.wav'}", "rec2 audio/rec2.flac"]  # the second is relative (--audio-root)
    segments = ["utt1 rec1 0.0 1.2", "utt2 rec1 1.5 3.0", "utt3 rec2 0.25 -1"]
    if with_pipe:
        write_tone(audio / "rec3.wav", 1.5, rate=8000, seed=2)
        wav_scp.append(f"rec3 sox {audio / 'rec3.wav'} -t wav - |")
        segments.append("utt4 rec3 0.5 1.5")
    (data / "wav.scp").write_text("\n".join(wav_scp) + "\n")
    (data / "segments").write_text("\n".join(segments) + "\n")
    texts = ["utt1 hello  world", "utt2 good bye", "utt3 bonjour tout le monde", "utt4 hallo welt"]
    (data / "text").write_text("\n".join(texts[: len(segments)]) + "\n")
    (data / "utt2spk").write_text("\n".join(f"utt{i} spk{1 + (i > 2)}" for i in range(1, len(segments) + 1)) + "\n")
    (data / "spk2gender").write_text("spk1 m\nspk2 f\n")
    (data / "utt2gender").write_text("utt3 male\n")  # per-utterance gender overrides spk2gender
    langs = ["utt1 en", "utt2 English", "utt3 fr-FR", "utt4 de"]
    (data / "utt2lang").write_text("\n".join(langs[: len(segments)]) + "\n")
    return data


@pytest.mark.filterwarnings("ignore:You requested a subset of a recording")
def test_kaldi_segments_labels_and_pipe(tmp_path: Path) -> None:
    has_sox = shutil.which("sox") is not None
    data = make_kaldi_dir(tmp_path, with_pipe=has_sox)
    summary = import_kaldi(data, tmp_path / "corpus", split="valid", audio_root=tmp_path)
    cuts = cuts_of(tmp_path / "corpus", "valid")
    assert sorted(cuts) == ["utt1", "utt2", "utt3"] + (["utt4"] if has_sox else [])
    assert summary.cuts == len(cuts) and summary.recordings == 2 + has_sox

    utt1, utt2, utt3 = cuts["utt1"], cuts["utt2"], cuts["utt3"]
    assert (utt2.start, utt2.duration) == (1.5, 1.5)
    assert utt3.duration == pytest.approx(1.75)  # "-1" = to the end of the 2.0 s recording
    sup = utt1.supervisions[0]
    assert (sup.text, sup.language, sup.speaker, sup.gender) == ("hello world", "en", "spk1", "m")
    assert sup.start == 0.0 and sup.duration == 1.2
    assert utt2.supervisions[0].language == "en"  # "English" normalised
    assert utt3.supervisions[0].language == "fr" and utt3.supervisions[0].gender == "m"  # utt2gender wins
    assert utt1.custom == {"exact_segments": False, "corpus": "corpus", "split": "valid"}
    assert utt3.recording.sources[0].source == str(tmp_path / "audio" / "rec2.flac")
    if has_sox:
        piped = cuts["utt4"]
        assert piped.recording.sources[0].type == "command"
        assert piped.recording.sampling_rate == 8000 and piped.recording.duration == pytest.approx(1.5)
        assert piped.load_audio().shape == (1, 8000)  # 0.5 .. 1.5 s at 8 kHz

    info = read_info(tmp_path / "corpus")
    assert info["origin"] == "kaldi" and info["splits"]["valid"]["cuts"] == len(cuts)
    assert set(info["labels"]["language"]) == {"en", "fr"} | ({"de"} if has_sox else set())
    report = validate_corpus(tmp_path / "corpus")
    assert report.ok, [str(p) for p in report.problems]


def test_kaldi_without_segments_uses_whole_files(tmp_path: Path) -> None:
    data = tmp_path / "kaldi"
    data.mkdir()
    write_tone(tmp_path / "a.wav", 1.25)
    write_tone(tmp_path / "b.wav", 0.5)
    (data / "wav.scp").write_text(f"a {tmp_path / 'a.wav'}\nb {tmp_path / 'b.wav'}\n")
    (data / "text").write_text("a one two\nb three\n")
    import_kaldi(data, tmp_path / "corpus")
    cuts = cuts_of(tmp_path / "corpus", "train")
    assert {cid: c.duration for cid, c in cuts.items()} == {"a": 1.25, "b": 0.5}
    assert cuts["b"].supervisions[0].text == "three" and cuts["b"].supervisions[0].speaker is None


def test_kaldi_reports_every_problem_and_writes_nothing(tmp_path: Path) -> None:
    data = make_kaldi_dir(tmp_path, with_pipe=False)
    (data / "segments").write_text("utt1 rec1 0.0 1.2\nutt2 rec1 1.5 9.0\nutt3 recX 0 1\n")
    (data / "text").write_text("utt1 hello\nutt2 \nutt9 stray\n")
    (data / "utt2lang").write_text("utt1 klingon\n")
    with pytest.raises(UserError) as err:
        import_kaldi(data, tmp_path / "corpus", audio_root=tmp_path)
    message = str(err.value)
    assert f"{data / 'segments'}:3:" in message and "recX" in message  # unknown recording
    assert f"{data / 'text'}:2:" in message and "empty transcript" in message
    assert f"{data / 'text'}:3:" in message and "utt9" in message
    assert f"{data / 'utt2lang'}:1:" in message and "klingon" in message
    assert f"{data / 'segments'}:2:" in message and "after the end" in message  # 9.0 s > 3.0 s
    assert not (tmp_path / "corpus").exists()


# --- SLURP -------------------------------------------------------------------------------------------------------

SLURP_TOKENS_RECORD = {
    "slurp_id": 7,
    "sentence": "what's the weather in grass market",
    "sentence_annotation": "what's the weather in [place_name : grassmarket]",
    "intent": "weather_query",
    "scenario": "weather",
    "action": "query",
    "tokens": [
        {"surface": s, "id": i, "lemma": s, "pos": "X"}
        for i, s in enumerate(["what", "'s", "the", "weather", "in", "grassmarket"])
    ],
    "entities": [{"span": [5], "type": "place_name"}],
    "recordings": [{"file": "audio-1-headset.flac", "wer": 0.0}, {"file": "audio-1.flac", "wer": 0.1}],
}
SLURP_ANNOTATION_RECORD = {  # no tokens/entities: slots come from the bracketed annotation
    "slurp_id": 8,
    "sentence": "wake me up at eight am please",
    "sentence_annotation": "wake me up at [time : eight am] please",
    "scenario": "alarm",
    "action": "set",
    "recordings": [{"file": "audio-2.flac"}],
}


def make_slurp(root: Path) -> tuple[Path, Path]:
    text_dir, audio_dir = root / "dataset" / "slurp", root / "audio"
    text_dir.mkdir(parents=True)
    write_lines(text_dir / "train.jsonl", [SLURP_TOKENS_RECORD])
    write_lines(text_dir / "devel.jsonl", [SLURP_ANNOTATION_RECORD])
    write_tone(audio_dir / "slurp_real" / "audio-1-headset.flac", 1.0)
    write_tone(audio_dir / "slurp_real" / "audio-1.flac", 1.5, seed=3)
    write_tone(audio_dir / "slurp_real" / "audio-2.flac", 2.0, seed=4)
    return text_dir, audio_dir


def test_slurp_layout(tmp_path: Path) -> None:
    text_dir, audio_dir = make_slurp(tmp_path)
    summaries = import_slurp(text_dir, audio_dir, tmp_path / "corpus")
    assert [(s.split, s.cuts) for s in summaries] == [("train", 2), ("valid", 1)]
    train, valid = cuts_of(tmp_path / "corpus", "train"), cuts_of(tmp_path / "corpus", "valid")
    assert sorted(train) == ["audio-1", "audio-1-headset"]
    assert train["audio-1"].duration == 1.5
    sup = train["audio-1-headset"].supervisions[0]
    assert sup.text == "what's the weather in grass market" and sup.language == "en"
    assert sup.custom["intent"] == "weather_query"
    # the token "grassmarket" covers the two words "grass market" of the corrected sentence
    assert sup.custom["slots"] == [{"type": "place_name", "start": 4, "end": 6, "value": "grass market"}]
    assert sup.custom["bio"] == ["O", "O", "O", "O", "B-place_name", "I-place_name"]
    assert sup.custom["sentence_id"] == "slurp-7" and sup.custom["slurp_annotation"].endswith("grassmarket]")
    alarm = valid["audio-2"].supervisions[0].custom
    assert alarm["intent"] == "alarm_set"
    assert alarm["slots"] == [{"type": "time", "start": 4, "end": 6, "value": "eight am"}]
    assert valid["audio-2"].custom["split"] == "valid"
    assert validate_corpus(tmp_path / "corpus").ok


def test_slurp_missing_audio_is_an_error_or_a_warning(tmp_path: Path) -> None:
    text_dir, audio_dir = make_slurp(tmp_path)
    (audio_dir / "slurp_real" / "audio-1.flac").unlink()
    with pytest.raises(UserError, match=r"train\.jsonl:1: audio file audio-1\.flac not found"):
        import_slurp(text_dir, audio_dir, tmp_path / "corpus")
    summaries = import_slurp(text_dir, audio_dir, tmp_path / "corpus", skip_missing_audio=True)
    assert summaries[0].cuts == 1 and "audio-1.flac" in str(summaries[0].warnings[0])


def test_slurp_bad_lines_all_reported(tmp_path: Path) -> None:
    text_dir, audio_dir = make_slurp(tmp_path)
    bad_intent = {**SLURP_ANNOTATION_RECORD, "scenario": "Alarm Clock", "recordings": [{"file": "audio-2.flac"}]}
    write_lines(text_dir / "devel.jsonl", ["{not json", {"sentence": "hi"}, bad_intent])
    with pytest.raises(UserError) as err:
        import_slurp(text_dir, audio_dir, tmp_path / "corpus")
    message = str(err.value)
    assert "3 problems" in message
    for line in (1, 2, 3):
        assert f"devel.jsonl:{line}:" in message


# --- generic JSONL -----------------------------------------------------------------------------------------------


def test_jsonl_labels_segments_and_ids(tmp_path: Path) -> None:
    write_tone(tmp_path / "wav" / "a.wav", 2.0)
    write_tone(tmp_path / "wav" / "b.flac", 3.0, rate=22050, channels=2, seed=5)
    lines = [
        {
            "audio": "wav/a.wav",
            "text": "set an alarm for seven",
            "language": "English",
            "intent": "alarm_set",
            "slots": [{"type": "time", "start": 4, "end": 5, "value": "seven"}],
            "translation": {"fr": "mets une alarme pour sept heures"},
            "emotion": "happy",
            "speaker": "s1",
            "gender": "female",
        },
        {"audio": "wav/b.flac", "id": "b-part", "start": 0.5, "end": 2.0, "text": "hola amigos", "language": "es"},
        {"audio": "wav/b.flac", "segments": [[0.2, 0.9], {"start": 1.5, "end": 2.5, "text": "ciao"}], "language": "it"},
    ]
    source = write_lines(tmp_path / "data.jsonl", lines)
    summary = import_jsonl(source, tmp_path / "corpus", split="test")
    assert (summary.recordings, summary.supervisions, summary.cuts) == (2, 4, 3)
    cuts = cuts_of(tmp_path / "corpus", "test")
    assert sorted(cuts) == ["b-part", "wav_a", "wav_b"]
    first = cuts["wav_a"].supervisions[0]
    assert (first.language, first.gender, first.speaker) == ("en", "f", "s1")
    assert first.custom["bio"] == ["O", "O", "O", "O", "B-time"]
    assert first.custom["translation"] == {"fr": "mets une alarme pour sept heures"}
    part = cuts["b-part"]
    assert (part.start, part.duration, part.recording.sampling_rate) == (0.5, 1.5, 22050)
    whole = cuts["wav_b"]
    assert whole.custom["exact_segments"] is True and not cuts["wav_a"].custom["exact_segments"]
    assert [(s.start, s.duration, s.text) for s in whole.supervisions] == [(0.2, 0.7, None), (1.5, 1.0, "ciao")]
    report = validate_corpus(tmp_path / "corpus")
    assert report.ok and {p.kind for p in report.warnings} == {"sampling_rate", "channels"}


def test_jsonl_problems_name_line_and_key(tmp_path: Path) -> None:
    write_tone(tmp_path / "a.wav", 1.0)
    lines = [
        {"audio": "a.wav", "text": "hello", "langauge": "en"},  # typo: unknown key
        {"audio": "missing.wav", "text": "x"},
        {"audio": "a.wav", "text": "one two", "slots": [{"type": "t", "start": 1, "end": 3}]},
        {"audio": "a.wav", "text": "late", "start": 0.5, "end": 4.0},
        {"audio": "a.wav", "text": "x", "intent": "SetAlarm"},
    ]
    with pytest.raises(UserError) as err:
        import_jsonl(write_lines(tmp_path / "m.jsonl", lines), tmp_path / "corpus")
    message = str(err.value)
    assert "5 problems" in message and "'langauge'" in message
    for line, needle in ((1, "unknown key"), (2, "not found"), (3, "outside"), (4, "after the end"), (5, "SetAlarm")):
        assert any(f"m.jsonl:{line}:" in row and needle in row for row in message.splitlines()), (line, message)


# --- Lhotse manifests --------------------------------------------------------------------------------------------


def make_lhotse_recipe_dir(root: Path) -> Path:
    """A Lhotse-recipe-like directory: prefix_kind_split.jsonl.gz, audio paths relative to the manifests."""
    manifests = root / "manifests"
    write_tone(manifests / "audio" / "r1.wav", 2.0)
    write_tone(manifests / "audio" / "r2.wav", 1.0, seed=1)
    recordings = []
    for name in ("r1", "r2"):
        rec = Recording.from_file(manifests / "audio" / f"{name}.wav", recording_id=name)
        rec.sources[0].source = f"audio/{name}.wav"
        recordings.append(rec)
    RecordingSet.from_recordings(recordings).to_file(manifests / "mini_recordings_dev.jsonl.gz")
    supervisions = [
        SupervisionSegment("r1-a", "r1", 0.0, 0.8, text="first part", language="English", speaker="x"),
        SupervisionSegment("r1-b", "r1", 1.0, 0.9, text="second", language="en", custom={"emotion": "sad"}),
        SupervisionSegment("r2-a", "r2", 0.1, 0.8, text="other", language="fr", gender="Female"),
    ]
    SupervisionSet.from_segments(supervisions).to_file(manifests / "mini_supervisions_dev.jsonl.gz")
    return manifests


def test_find_manifests_names_and_split_aliases(tmp_path: Path) -> None:
    manifests = make_lhotse_recipe_dir(tmp_path)
    groups = find_manifests([manifests])
    assert list(groups) == ["valid"]  # "dev" -> valid
    assert groups["valid"].recordings.name == "mini_recordings_dev.jsonl.gz"
    assert list(find_manifests([manifests], split_map={"dev": "heldout"})) == ["heldout"]


def test_lhotse_recordings_and_supervisions(tmp_path: Path) -> None:
    manifests = make_lhotse_recipe_dir(tmp_path)
    [summary] = import_lhotse(tmp_path, tmp_path / "corpus")  # finds manifests/ under the directory
    assert summary.split == "valid" and summary.cuts == 3
    cuts = cuts_of(tmp_path / "corpus", "valid")
    assert (cuts["r1-b"].start, cuts["r1-b"].duration) == (1.0, 0.9)
    assert cuts["r1-a"].supervisions[0].language == "en" and cuts["r2-a"].supervisions[0].gender == "f"
    assert cuts["r1-a"].recording.sources[0].source == str(manifests / "audio" / "r1.wav")  # made absolute
    assert validate_corpus(tmp_path / "corpus").ok

    # one cut per recording, flagged as exact speech segments
    [per_rec] = import_lhotse(manifests, tmp_path / "per-rec", cuts="recording", exact_segments=True)
    cuts = cuts_of(tmp_path / "per-rec", "valid")
    assert sorted(cuts) == ["r1", "r2"] and [s.id for s in cuts["r1"].supervisions] == ["r1-a", "r1-b"]
    assert cuts["r1"].custom["exact_segments"] is True and cuts["r1"].duration == 2.0


def test_lhotse_cuts_file_round_trip(tmp_path: Path) -> None:
    make_lhotse_recipe_dir(tmp_path)
    import_lhotse(tmp_path, tmp_path / "first")
    # re-import the written cuts file alone into another split
    [summary] = import_lhotse(manifest_path(tmp_path / "first", "cuts", "valid"), tmp_path / "second", split="test")
    assert summary.split == "test" and available_splits(tmp_path / "second") == ["test"]
    first, second = cuts_of(tmp_path / "first", "valid"), cuts_of(tmp_path / "second", "test")
    assert sorted(first) == sorted(second)
    assert second["r1-b"].supervisions[0].custom == {"emotion": "sad"}
    assert second["r1-b"].custom["split"] == "test" and second["r1-b"].custom["corpus"] == "second"


def test_lhotse_bad_manifest_lines(tmp_path: Path) -> None:
    manifests = make_lhotse_recipe_dir(tmp_path)
    path = manifests / "mini_supervisions_dev.jsonl.gz"
    with gzip.open(path, "rt") as handle:
        rows = [json.loads(line) for line in handle]
    rows[0]["language"] = "elvish"
    rows[1]["custom"] = {"slots": [{"type": "x", "start": 0, "end": 5}]}
    rows[2]["recording_id"] = "nope"
    with gzip.open(path, "wt") as handle:
        handle.write("".join(json.dumps(r) + "\n" for r in rows) + "garbage\n")
    with pytest.raises(UserError) as err:
        import_lhotse(manifests, tmp_path / "corpus")
    message = str(err.value)
    assert "4 problems" in message
    for line, needle in ((1, "elvish"), (2, "outside"), (3, "'nope'"), (4, "not valid JSON")):
        assert any(f"{path.name}:{line}:" in row and needle in row for row in message.splitlines()), (line, message)


# --- CLI ---------------------------------------------------------------------------------------------------------


def test_cli_import_and_clean_error(tmp_path: Path) -> None:
    runner = CliRunner()
    write_tone(tmp_path / "a.wav", 1.0)
    source = write_lines(tmp_path / "m.jsonl", [{"audio": "a.wav", "text": "hi", "language": "en"}])
    result = runner.invoke(app, ["data", "import", "jsonl", str(source), "--out", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert manifest_path(tmp_path / "c", "cuts", "train").is_file()
    again = runner.invoke(app, ["data", "import", "jsonl", str(source), "--out", str(tmp_path / "c")])
    assert again.exit_code == 2 and "--overwrite" in again.output and again.exception is not None
    assert not isinstance(again.exception, UserError)  # turned into a message + exit status, not raised
