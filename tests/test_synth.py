"""``mtspeech corpus synth`` end to end on the tiny corpus (spoken once per session, conftest.tiny_corpus)."""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from mtspeech.cli import app
from mtspeech.data.corpus import INFO_FILE, load_cuts, load_texts, manifest_path, save_texts, texts_path
from mtspeech.data.schema import (
    ACCENTS,
    EMOTIONS,
    LANGUAGES,
    NOISE_TYPES,
    SAMPLE_RATE,
    SPLITS,
    TRANSLATION_TARGETS,
    SlotSpan,
    spans_to_bio,
)
from mtspeech.data.synth.build import _mix_job, _render_job, synthesize
from mtspeech.data.synth.plan import plan_corpus
from mtspeech.data.synth.pool import build_sentence_pool
from mtspeech.data.synth.sentence import Sentence
from mtspeech.data.synth.voices import (
    EMOTION_PROSODY,
    HELD_OUT_SPEAKERS,
    SPEAKERS_BY_LABEL,
    find_espeak,
    render,
)
from mtspeech.errors import UserError

TINY_SEED = 0  # the seed conftest.tiny_corpus synthesises with (checked against corpus.json below)


@pytest.fixture(scope="module")
def pool() -> dict[str, Sentence]:
    return {s.sentence_id: s for s in build_sentence_pool(TINY_SEED)}


@pytest.fixture(scope="module")
def cuts(tiny_corpus: Path) -> dict[str, list]:
    return {split: list(load_cuts(tiny_corpus, split)) for split in SPLITS}


def _supervisions(cuts: dict[str, list], split: str) -> list:
    return [sup for cut in cuts[split] for sup in cut.supervisions]


def test_layout_manifests_summary_and_plots(tiny_corpus: Path, cuts: dict[str, list]) -> None:
    for split in SPLITS:
        for kind in ("recordings", "supervisions", "cuts"):
            assert manifest_path(tiny_corpus, kind, split).is_file()
        assert cuts[split], split
    info = json.loads((tiny_corpus / INFO_FILE).read_text())
    assert info["size"] == "tiny" and info["seed"] == TINY_SEED and info["exact_segments"] is True
    assert info["splits"]["train"]["utterances"] == 32 and info["splits"]["test"]["utterances"] == 20
    summary = (tiny_corpus / "SUMMARY.md").read_text()
    assert "## Utterances with a label, per task" in summary and "SLURP" in summary
    assert "## Text without audio" in summary and "| with an intent |" in summary
    for plot in ("durations", "language", "emotion", "accent", "speaker", "intent", "noise"):
        assert (tiny_corpus / "plots" / f"{plot}.png").stat().st_size > 1000, plot
    assert not (tiny_corpus / ".synth-cache").exists()


def test_audio_is_16khz_mono_flac_that_matches_the_manifest(cuts: dict[str, list]) -> None:
    for split in SPLITS:
        for cut in cuts[split]:
            path = Path(cut.recording.sources[0].source)
            info = sf.info(path)
            assert (info.format, info.samplerate, info.channels) == ("FLAC", SAMPLE_RATE, 1)
            assert info.frames == cut.recording.num_samples == round(cut.duration * SAMPLE_RATE)
            assert path.parent.name == split


def test_segments_lie_inside_the_recording_in_order(cuts: dict[str, list]) -> None:
    for split in SPLITS:
        for cut in cuts[split]:
            previous_end = 0.0
            for sup in cut.supervisions:
                assert sup.recording_id == cut.recording_id and sup.channel == 0
                assert previous_end <= sup.start < sup.end <= cut.duration + 1e-6, (cut.id, sup.id)
                assert 0.5 < sup.duration < 12.0, sup.text  # speech, not a click or a minute of silence
                previous_end = sup.end
            assert cut.custom["exact_segments"] is True and cut.custom["split"] == split


def test_speech_is_where_the_segments_say(cuts: dict[str, list]) -> None:
    """In recordings without noise, the labelled segments hold the energy and the rest is silence."""
    checked = 0
    for split in SPLITS:
        for cut in cuts[split]:
            if cut.custom["noise"]["type"] != "none":
                continue
            audio = cut.load_audio()[0]
            inside = np.zeros(audio.size, dtype=bool)
            for sup in cut.supervisions:
                inside[int(sup.start * SAMPLE_RATE) : int(sup.end * SAMPLE_RATE)] = True
            speech_db = 10 * np.log10(np.mean(audio[inside] ** 2))
            assert -40 < speech_db < -6, (cut.id, speech_db)  # audible, not clipping
            assert np.abs(audio[~inside]).max() < 1e-3, cut.id
            checked += 1
    assert checked >= 10


def test_every_split_holds_every_task(cuts: dict[str, list]) -> None:
    for split in SPLITS:
        sups = _supervisions(cuts, split)
        custom = [s.custom for s in sups]
        assert {s.language for s in sups} == set(LANGUAGES), split
        assert {c["emotion"] for c in custom} == set(EMOTIONS), split
        assert {t for c in custom for t in c.get("translation", {})} == set(TRANSLATION_TARGETS), split
        assert any(c.get("intent") for c in custom) and any(c.get("slots") for c in custom), split
        assert any(c["prosody_conflict"] for c in custom), split
        assert len({c["accent"] for c in custom if "accent" in c}) >= 5, split
        assert {s.gender for s in sups} == {"m", "f"}, split
        assert {c.custom["noise"]["type"] for c in cuts[split]} == set(NOISE_TYPES), split
        assert any(len(c.supervisions) > 1 for c in cuts[split]), split


def test_labels_agree_with_the_sentences_they_were_spoken_from(
    cuts: dict[str, list], pool: dict[str, Sentence]
) -> None:
    for split in SPLITS:
        for sup in _supervisions(cuts, split):
            c = sup.custom
            sentence = pool[c["sentence_id"]]
            assert (sup.text, sup.language, c["source"]) == (sentence.text, sentence.language, sentence.source)
            assert SPEAKERS_BY_LABEL[sup.speaker].gender == sup.gender
            assert c["emotion"] in EMOTIONS
            assert ("accent" in c) == (sup.language == "en") and c.get("accent", ACCENTS[0]) in ACCENTS
            assert c["prosody_conflict"] == (sentence.polarity == "positive" and c["emotion"] in ("sad", "angry"))
            assert c.get("translation", {}) == sentence.translations
            assert c.get("intent") == sentence.intent
            if sentence.intent is None:
                assert "slots" not in c and "bio" not in c
                continue
            words = sup.text.split()
            slots = [SlotSpan.from_dict(d) for d in c["slots"]]
            assert slots == list(sentence.slots)
            assert c["bio"] == spans_to_bio(len(words), slots) and len(c["bio"]) == len(words)
            assert all(s.value == " ".join(words[s.start : s.end]) for s in slots)
            assert c["slurp_annotation"] == sentence.slurp_annotation


def test_held_out_speakers_and_disjoint_splits(cuts: dict[str, list]) -> None:
    speakers = {split: {s.speaker for s in _supervisions(cuts, split)} for split in SPLITS}
    assert not speakers["train"] & set(HELD_OUT_SPEAKERS)
    assert speakers["valid"] & set(HELD_OUT_SPEAKERS) and speakers["test"] & set(HELD_OUT_SPEAKERS)
    seen: dict[str, str] = {}
    for split in SPLITS:
        for sup in _supervisions(cuts, split):
            texts = [f"{sup.language}:{sup.text}"] + [f"{t}:{x}" for t, x in sup.custom.get("translation", {}).items()]
            for key in [sup.custom["sentence_id"], *texts]:
                assert seen.setdefault(key, split) == split, (key, seen[key], split)


def test_text_only_rows_are_unspoken_train_sentences(
    tiny_corpus: Path, cuts: dict[str, list], pool: dict[str, Sentence]
) -> None:
    rows = load_texts(tiny_corpus, "train")
    assert json.loads((tiny_corpus / INFO_FILE).read_text())["text_only"] == {"train": len(rows)}
    assert len(rows) > 1000 and not load_texts(tiny_corpus, "valid")  # only train text may be trained on
    spoken = {(s.language, s.text): split for split in SPLITS for s in _supervisions(cuts, split)}
    held_out = {(s.language, s.text) for s in pool.values()} - {(r.language, r.text) for r in rows}
    assert len({(r.language, r.text) for r in rows}) == len(rows)
    for row in rows:
        assert (row.language, row.text) not in spoken, row  # spoken ones are in the cuts already
        sentence = pool[row.id]
        assert (row.language, row.text) == (sentence.language, sentence.text)
        assert row.custom.get("intent") == sentence.intent and row.custom["source"] == sentence.source
        if sentence.slots:
            assert row.custom["bio"] == spans_to_bio(len(row.text.split()), list(sentence.slots))
    # Not one valid or test sentence, spoken or not, is among them: the pool's texts split three ways.
    evaluated = {k for k, split in spoken.items() if split != "train"}
    assert evaluated <= held_out
    assert {r.custom.get("intent") for r in rows} > {None}


def test_text_rows_round_trip_and_bad_rows_are_named(tmp_path: Path) -> None:
    from mtspeech.data.corpus import TextRow

    rows = [TextRow("a", "en", "wake me up", {"intent": "alarm_set"}), TextRow("b", "fr", "bonjour")]
    save_texts(tmp_path, "train", rows)
    assert load_texts(tmp_path, "train") == rows and load_texts(tmp_path, "test") == []
    import gzip

    for line, message in (
        ("{not json", "not valid JSON"),
        ('["a"]', "expected a JSON object"),
        ('{"id": "x", "language": "en", "text": "  "}', "field 'text' must be a non-empty"),
    ):
        with gzip.open(texts_path(tmp_path, "bad"), "wt") as f:
            f.write('{"id": "ok", "language": "en", "text": "fine"}\n' + line + "\n")
        with pytest.raises(UserError, match=message) as err:
            load_texts(tmp_path, "bad")
        assert "texts_bad.jsonl.gz:2:" in str(err.value)


def test_emotions_change_pitch_rate_and_loudness() -> None:
    """The mapping in voices.py is audible: happy higher and faster than neutral, sad lower, slower and
    quieter, angry loudest and fast unless emphasised (emphasis lengthens the stressed syllables)."""
    espeak = find_espeak()
    text = "the train to lyon leaves from platform four at seven in the evening"
    plain_angry = dataclasses.replace(EMOTION_PROSODY["angry"], emphasis=False)
    measures = {}
    for emotion, prosody in [*EMOTION_PROSODY.items(), ("angry, no emphasis", plain_angry)]:
        audio = render(espeak, "en-gb", SPEAKERS_BY_LABEL["m1"], text, prosody)
        measures[emotion] = (audio.size / SAMPLE_RATE, float(np.sqrt(np.mean(audio**2))), _median_f0(audio))
    duration = {e: m[0] for e, m in measures.items()}
    loudness = {e: m[1] for e, m in measures.items()}
    pitch = {e: m[2] for e, m in measures.items()}
    assert duration["sad"] > duration["neutral"] > duration["happy"]
    assert duration["neutral"] > duration["angry, no emphasis"] and duration["angry"] > duration["angry, no emphasis"]
    assert loudness["angry"] > loudness["happy"] > loudness["neutral"] > loudness["sad"]
    assert pitch["happy"] > pitch["neutral"] > pitch["sad"]
    assert 1.5 < duration["neutral"] < 6.0


def _median_f0(audio: np.ndarray, frame: int = 640) -> float:
    """Median autocorrelation pitch of the voiced 40 ms frames, in Hz."""
    pitches = []
    for start in range(0, audio.size - frame, frame):
        x = audio[start : start + frame] - audio[start : start + frame].mean()
        if np.sqrt(np.mean(x**2)) < 0.02:
            continue
        ac = np.correlate(x, x, "full")[frame - 1 :]
        low, high = SAMPLE_RATE // 400, SAMPLE_RATE // 60
        lag = low + int(np.argmax(ac[low:high]))
        if ac[lag] > 0.4 * ac[0]:
            pitches.append(SAMPLE_RATE / lag)
    return float(np.median(pitches))


def test_corpus_follows_the_plan_and_the_plan_the_seed(cuts: dict[str, list]) -> None:
    pool = build_sentence_pool(TINY_SEED)
    plans = plan_corpus(pool, "tiny", TINY_SEED)
    planned = {u.utt_id: (u.sentence.sentence_id, u.speaker, u.emotion) for p in plans for u in p.utterances}
    written = {
        s.id: (s.custom["sentence_id"], s.speaker, s.custom["emotion"])
        for split in SPLITS
        for s in _supervisions(cuts, split)
    }
    assert written == planned
    assert plan_corpus(pool, "tiny", TINY_SEED) == plans
    assert plan_corpus(pool, "tiny", TINY_SEED + 1) != plans


def test_rendering_and_mixing_repeat_exactly(tmp_path: Path) -> None:
    pool = build_sentence_pool(TINY_SEED)
    plan = next(p for p in plan_corpus(pool, "tiny", TINY_SEED) if len(p.utterances) > 1 and not p.babble_ids)
    espeak = find_espeak()
    outputs = []
    for attempt in ("a", "b"):
        cache = tmp_path / attempt / "cache"
        cache.mkdir(parents=True)
        for u in plan.utterances:
            _render_job((espeak, u.utt_id, u.language_voice, u.speaker, u.sentence.text, u.prosody, cache))
        _, (num_samples, segments) = _mix_job((plan, tmp_path / attempt, cache))
        audio, _ = sf.read(tmp_path / attempt / "audio" / plan.split / f"{plan.recording_id}.flac", dtype="int16")
        outputs.append((num_samples, segments, audio))
    assert outputs[0][:2] == outputs[1][:2]
    assert np.array_equal(outputs[0][2], outputs[1][2])


def test_bad_arguments_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--size"):
        synthesize(tmp_path / "a", size="huge")
    with pytest.raises(UserError, match="--jobs"):
        synthesize(tmp_path / "a", size="tiny", num_jobs=0)
    not_a_corpus = tmp_path / "notes"
    not_a_corpus.mkdir()
    (not_a_corpus / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="--overwrite"):
        synthesize(not_a_corpus, size="tiny")
    with pytest.raises(UserError, match="refusing to delete"):
        synthesize(not_a_corpus, size="tiny", overwrite=True)
    assert (not_a_corpus / "keep.txt").read_text() == "mine"
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(UserError, match="not a directory"):
        synthesize(a_file, size="tiny")


def test_cli_reports_errors_without_traceback(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["corpus", "synth", "--out", str(tmp_path / "c"), "--size", "tiny", "--jobs", "0"])
    assert result.exit_code == 2 and "--jobs must be at least 1" in result.output
    result = runner.invoke(app, ["corpus", "synth", "--out", str(tmp_path / "c"), "--size", "huge"])
    assert result.exit_code == 2 and "huge" in result.output
    assert not (tmp_path / "c").exists()


def test_summary_command_rewrites_the_summary(tiny_corpus: Path, tmp_path: Path) -> None:
    copy = tmp_path / "corpus"
    copy.mkdir()
    for name in ("manifests", INFO_FILE):
        source = tiny_corpus / name
        if source.is_dir():
            (copy / name).mkdir()
            for f in source.iterdir():
                (copy / name / f.name).write_bytes(f.read_bytes())
        else:
            (copy / name).write_bytes(source.read_bytes())
    result = CliRunner().invoke(app, ["corpus", "summary", str(copy)])
    assert result.exit_code == 0, result.output
    assert (copy / "SUMMARY.md").read_text() == (tiny_corpus / "SUMMARY.md").read_text()
    counts = defaultdict(int)
    for line in (copy / "SUMMARY.md").read_text().splitlines():
        if line.startswith("| utterances |"):
            counts["row"] += 1
            assert line.split("|")[2:6] == [" 32 ", " 20 ", " 20 ", " 72 "]
    assert counts["row"] == 1
