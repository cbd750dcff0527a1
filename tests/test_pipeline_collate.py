"""Multi-task collation: every label kind, every kind of missing label, decoder prompts/targets, alignment."""

from __future__ import annotations

import pytest
import torch
from lhotse import CutSet
from lhotse.utils import fastcopy
from pipeline_fixtures import make_fixture_cuts

from mtspeech.data.batch import IGNORE, Batch
from mtspeech.data.collate import MultiTaskCollator
from mtspeech.data.features import LogMelFrontend, subsampled_length
from mtspeech.data.labels import CLASS_TASKS, build_label_vocabs
from mtspeech.data.tokenizer import Tokenizer, train_tokenizer_from_cuts

ORDER = ["en-alarm", "en-weather", "fr-plain", "fr-two-segments", "noise-only", "no-text", "mixed-languages"]
ORDER += ["en-stereo-22k"]
TRANSCRIPTS = {
    "en-alarm": "wake me up at eight o'clock",
    "en-weather": "what's the weather like in paris",
    "fr-plain": "bonjour à tous les élèves",
    "fr-two-segments": "il fait beau aujourd'hui à paris",
    "en-stereo-22k": "turn the lights off",
}
N = None  # missing label
EXPECTED_CLASSES = {
    "intent": ["alarm_set", "weather_query", N, N, N, N, N, N],
    "lid": ["en", "en", "fr", "fr", N, N, N, "en"],  # mixed-languages: two languages disagree
    "emotion": ["neutral", "happy", "sad", N, N, N, N, N],
    "speaker": ["f3", "m1", "m1", "f3", N, N, "m1", "f2"],  # mixed-languages: one speaker throughout
    "accent": ["en-gb", N, N, N, N, N, N, "en-gb-scotland"],
    "gender": ["f", "m", N, "f", N, N, N, "f"],
}


@pytest.fixture(scope="module")
def cuts(tmp_path_factory: pytest.TempPathFactory) -> CutSet:
    return make_fixture_cuts(tmp_path_factory.mktemp("collate") / "audio")


@pytest.fixture(scope="module")
def tok(cuts) -> Tokenizer:
    return train_tokenizer_from_cuts(cuts, vocab_size=300)


@pytest.fixture(scope="module")
def vocabs(cuts):
    return build_label_vocabs(cuts)


@pytest.fixture(scope="module")
def stored_cuts(cuts, tmp_path_factory: pytest.TempPathFactory) -> CutSet:
    """The 16 kHz mono cuts with precomputed features (fast to collate: no audio, no front end)."""
    from lhotse import Fbank, FbankConfig, NumpyFilesWriter

    mono = [c for c in cuts if c.sampling_rate == 16000]
    with NumpyFilesWriter(tmp_path_factory.mktemp("feats")) as storage:
        return CutSet.from_cuts(c.compute_and_store_features(Fbank(FbankConfig()), storage) for c in mono)


def _collator(tok, vocabs, **kwargs) -> MultiTaskCollator:
    return MultiTaskCollator(tok, vocabs, LogMelFrontend(), **kwargs)


@pytest.fixture(scope="module")
def batch(cuts, tok, vocabs) -> Batch:
    return _collator(tok, vocabs)(cuts)


def test_audio_shapes(batch: Batch, cuts) -> None:
    assert batch.ids == ORDER and batch.size == 8
    assert batch.feature_lens.tolist() == [round(c.duration * 100) for c in cuts]
    assert batch.features.shape == (8, int(batch.feature_lens.max()), 80)
    assert batch.features.dtype == torch.float32


def test_ctc_targets_and_mask(batch: Batch, tok: Tokenizer) -> None:
    assert batch.ctc_mask.tolist() == [cut_id in TRANSCRIPTS for cut_id in ORDER]
    assert batch.ctc_targets.shape == (8, int(batch.ctc_target_lens.max()))
    for row, cut_id in enumerate(ORDER):
        n = int(batch.ctc_target_lens[row])
        expected = tok.encode(TRANSCRIPTS[cut_id]) if cut_id in TRANSCRIPTS else []
        assert batch.ctc_targets[row, :n].tolist() == expected
        assert torch.all(batch.ctc_targets[row, n:] == tok.blank_id)


def test_class_targets_with_missing_labels_ignored(batch: Batch, vocabs) -> None:
    assert set(batch.class_targets) == set(CLASS_TASKS)
    for task, expected in EXPECTED_CLASSES.items():
        got = batch.class_targets[task]
        assert got.dtype == torch.long and got.shape == (8,)
        decoded = [None if i == IGNORE else vocabs[task].decode(i) for i in got.tolist()]
        assert decoded == expected, task


def test_only_requested_vocabularies_produce_targets(cuts, tok, vocabs) -> None:
    batch = _collator(tok, {"emotion": vocabs["emotion"]})(cuts)
    assert set(batch.class_targets) == {"emotion"} and batch.slot_targets is None


def _check_decoder_row(batch: Batch, tok: Tokenizer, row: int, prompt: list[int], answer: list[int]) -> None:
    width = batch.decoder_input.size(1)
    dec_in = prompt + answer
    dec_tgt = [IGNORE] * (len(prompt) - 1) + answer + [tok.eot_id]
    assert batch.decoder_input[row].tolist() == dec_in + [tok.pad_id] * (width - len(dec_in))
    assert batch.decoder_target[row].tolist() == dec_tgt + [IGNORE] * (width - len(dec_tgt))
    # Teacher forcing: every scored target is the input's next token (eot after the last); the answer and
    # eot are scored, the prompt is not.
    following = [*dec_in[1:], tok.eot_id]
    scored = [i for i, t in enumerate(batch.decoder_target[row].tolist()) if t != IGNORE]
    assert scored == list(range(len(prompt) - 1, len(dec_in)))
    assert all(int(batch.decoder_target[row, i]) == following[i] for i in scored)


def test_decoder_transcribe_rows(cuts, tok, vocabs) -> None:
    batch = _collator(tok, vocabs, decoder_tasks=("transcribe",))(cuts)
    assert batch.decoder_task == ["transcribe" if c in TRANSCRIPTS else "" for c in ORDER]
    for row, cut_id in enumerate(ORDER):
        if cut_id in TRANSCRIPTS:
            language = "fr" if cut_id.startswith("fr") else "en"
            _check_decoder_row(batch, tok, row, tok.prompt("transcribe", language), tok.encode(TRANSCRIPTS[cut_id]))
        else:
            assert torch.all(batch.decoder_input[row] == tok.pad_id)
            assert torch.all(batch.decoder_target[row] == IGNORE)


def test_decoder_translate_rows(cuts, tok, vocabs) -> None:
    batch = _collator(tok, vocabs, decoder_tasks=("translate",))(cuts)
    assert batch.decoder_task == ["translate", "", "", "", "", "", "", "translate"]
    translations = {"fr": "réveille-moi à huit heures", "de": "weck mich um acht uhr"}
    target = tok.id_to_token(int(batch.decoder_input[0, 3]))[2:-2]
    assert target in translations
    _check_decoder_row(batch, tok, 0, tok.prompt("translate", "en", target), tok.encode(translations[target]))
    _check_decoder_row(batch, tok, 7, tok.prompt("translate", "en", "es"), tok.encode("apaga las luces"))


def test_decoder_slu_rows_end_with_the_intent_token(cuts, tok, vocabs) -> None:
    batch = _collator(tok, vocabs, decoder_tasks=("slu",))(cuts)
    assert batch.decoder_task == ["slu", "slu", "", "", "", "", "", ""]
    alarm = [*tok.encode("wake me up at [time : eight] o'clock"), tok.intent_id("alarm_set")]
    _check_decoder_row(batch, tok, 0, tok.prompt("slu", "en"), alarm)
    # en-weather has BIO tags but no annotation: the SLURP-style annotation is built from the tags.
    weather = [*tok.encode("what's the weather like in [place_name : paris]"), tok.intent_id("weather_query")]
    _check_decoder_row(batch, tok, 1, tok.prompt("slu", "en"), weather)


def test_decoder_timestamps_follow_the_segments(cuts, tok, vocabs) -> None:
    batch = _collator(tok, vocabs, decoder_tasks=("transcribe",), timestamp_prob=1.0)(cuts)
    ts = tok.timestamp_id
    row = ORDER.index("fr-two-segments")
    answer = [ts(0.2), *tok.encode("il fait beau"), ts(0.8), ts(1.2), *tok.encode("aujourd'hui à paris"), ts(2.0)]
    _check_decoder_row(batch, tok, row, tok.prompt("transcribe", "fr", timestamps=True), answer)
    # Segments of fr-plain are not exact: never timestamps there.
    row = ORDER.index("fr-plain")
    _check_decoder_row(batch, tok, row, tok.prompt("transcribe", "fr"), tok.encode(TRANSCRIPTS["fr-plain"]))


def test_no_decoder_tasks_gives_empty_decoder_fields(cuts, tok, vocabs) -> None:
    batch = _collator(tok, vocabs, decoder_tasks=())(cuts)
    assert batch.decoder_task == [""] * 8
    assert batch.decoder_input.shape == (8, 1) and torch.all(batch.decoder_target == IGNORE)


def test_task_choice_is_a_function_of_seed_epoch_and_cut(stored_cuts, tok, vocabs) -> None:
    first = MultiTaskCollator(tok, vocabs, frontend=None, seed=3)
    second = MultiTaskCollator(tok, vocabs, frontend=None, seed=3)
    subset = [stored_cuts["en-alarm"], stored_cuts["en-weather"], stored_cuts["fr-plain"]]
    seen = set()
    for epoch in range(10):
        first.set_epoch(epoch)
        second.set_epoch(epoch)
        a = first(subset)
        b = second(subset[::-1])  # batch composition and order do not matter
        assert a.decoder_task == b.decoder_task[::-1]
        assert torch.equal(a.decoder_target[0], b.decoder_target[2])
        seen.add(a.decoder_task[0])
    assert seen == {"transcribe", "translate", "slu"}  # en-alarm supports all three
    other_seed = MultiTaskCollator(tok, vocabs, frontend=None, seed=4)
    draws = []
    for epoch in range(10):
        other_seed.set_epoch(epoch)
        draws.append(other_seed(subset[:1]).decoder_task[0])
    assert len(set(draws)) > 1


def test_zero_task_weight_is_never_drawn(stored_cuts, tok, vocabs) -> None:
    collator = MultiTaskCollator(tok, vocabs, frontend=None, task_weights={"transcribe": 0.0})
    subset = [stored_cuts["en-alarm"], stored_cuts["en-weather"], stored_cuts["fr-plain"]]
    for epoch in range(4):
        collator.set_epoch(epoch)
        tasks = collator(subset).decoder_task
        assert tasks[0] in ("translate", "slu") and tasks[1] == "slu"
        assert tasks[2] == ""  # fr-plain's only task weighs 0
    with pytest.raises(ValueError, match=">= 0"):
        _collator(tok, vocabs, task_weights={"slu": -1.0})
    with pytest.raises(ValueError, match="decoder_tasks"):
        _collator(tok, vocabs, decoder_tasks=("summarise",))


def _receptive_field_seconds(j: int) -> tuple[float, float]:
    """Time span of the audio that encoder frame j (x4) sees: input frames 4j..4j+6, each 25 ms wide and
    starting 7.5 ms before its 10 ms hop (Kaldi without edge snipping)."""
    return (4 * j * 160 - 120) / 16000, ((4 * j + 6) * 160 + 280) / 16000


def test_vad_targets_are_aligned_to_encoder_frames(batch: Batch, cuts) -> None:
    enc_lens = [int(subsampled_length(int(n), 4)) for n in batch.feature_lens]
    assert batch.vad_targets.shape == (8, max(enc_lens))
    for row, cut in enumerate(cuts):
        vad = batch.vad_targets[row]
        assert torch.all(vad[enc_lens[row] :] == IGNORE)
        if not cut.custom["exact_segments"]:
            assert torch.all(vad == IGNORE), cut.id
            continue
        valid = vad[: enc_lens[row]].tolist()
        segments = [(s.start, s.end) for s in cut.supervisions]
        for j, label in enumerate(valid):
            lo, hi = _receptive_field_seconds(j)
            if any(start <= lo and hi <= end for start, end in segments):
                assert label == 1, (cut.id, j)
            if all(hi <= start or end <= lo for start, end in segments):
                assert label == 0, (cut.id, j)
            # The exact rule: speech when the middle of the frame's receptive field lies in a segment.
            middle = (lo + hi) / 2
            assert label == int(any(start <= middle < end for start, end in segments)), (cut.id, j)
        # One run of speech per segment, about segment duration / 40 ms frames long.
        rising = sum(1 for a, b in zip([0, *valid], valid, strict=False) if (a, b) == (0, 1))
        assert rising == len(segments), cut.id
        expected = sum(round((end - start) / 0.04) for start, end in segments)
        assert abs(sum(valid) - expected) <= len(segments), cut.id
    assert batch.vad_targets[ORDER.index("noise-only"), :24].tolist() == [0] * 24


def test_slot_tags_follow_the_word_pieces(batch: Batch, tok: Tokenizer, vocabs) -> None:
    slot_vocab = vocabs["slot"]
    assert slot_vocab.labels == ["O", "B-place_name", "I-place_name", "B-time", "I-time"]
    assert batch.slot_targets.shape == batch.ctc_targets.shape
    spans = {"en-alarm": ("time", "eight", 4), "en-weather": ("place_name", "paris", 5)}
    for row, cut_id in enumerate(ORDER):
        tags = batch.slot_targets[row]
        n = int(batch.ctc_target_lens[row])
        assert torch.all(tags[n:] == IGNORE)
        if cut_id not in spans:
            assert torch.all(tags == IGNORE), cut_id
            continue
        kind, value, word_index = spans[cut_id]
        ids = batch.ctc_targets[row, :n].tolist()
        labels = [slot_vocab.decode(t) for t in tags[:n].tolist()]
        inside = [i for i, label in enumerate(labels) if label != "O"]
        assert labels[inside[0]] == f"B-{kind}" and all(labels[i] == f"I-{kind}" for i in inside[1:])
        assert inside == list(range(inside[0], inside[-1] + 1))
        assert tok.decode([ids[i] for i in inside]) == value
        # The slot starts on the first piece of word `word_index`.
        assert sum(tok.word_starts(ids[: inside[0] + 1])) == word_index + 1 and tok.word_starts(ids)[inside[0]]


def test_ctc_infeasible_transcripts_are_masked(cuts, tok, vocabs) -> None:
    short = cuts["en-alarm"].truncate(duration=0.3)  # 30 frames -> 6 encoder frames
    sups = [fastcopy(s, start=0.0, duration=0.3) for s in cuts["en-alarm"].supervisions]
    short = fastcopy(short, supervisions=sups)
    assert short.supervisions[0].text == TRANSCRIPTS["en-alarm"]
    collator = _collator(tok, vocabs)
    batch = collator([short, cuts["fr-plain"]])
    assert batch.ctc_mask.tolist() == [False, True]
    assert batch.ctc_target_lens[0] == 0 and torch.all(batch.slot_targets[0] == IGNORE)
    assert sum(collator.skipped.values()) == 1


def test_unknown_language_keeps_ctc_but_drops_the_decoder(cuts, tok, vocabs) -> None:
    cut = cuts["fr-plain"]
    odd = fastcopy(cut, id="zz-cut", supervisions=[fastcopy(s, language="zz") for s in cut.supervisions])
    collator = _collator(tok, vocabs)
    batch = collator([odd])
    assert batch.ctc_mask.tolist() == [True] and batch.decoder_task == [""]
    assert batch.class_targets["lid"].tolist() == [IGNORE]  # not in the vocabulary: ignored, counted
    assert vocabs["lid"].unknown_counts["zz"] >= 1
    assert any("zz" in reason for reason in collator.skipped)


def test_too_short_cut_and_empty_batch_are_errors(cuts, tok, vocabs) -> None:
    tiny = cuts["noise-only"].truncate(duration=0.05)
    with pytest.raises(ValueError, match="too short"):
        _collator(tok, vocabs)([tiny])
    with pytest.raises(ValueError, match="empty"):
        _collator(tok, vocabs)([])


def test_precomputed_features_give_the_same_batch(cuts, stored_cuts, tok, vocabs) -> None:
    mono = CutSet.from_cuts(c for c in cuts if c.sampling_rate == 16000)
    from_audio = _collator(tok, vocabs)(mono)
    from_disk = MultiTaskCollator(tok, vocabs, frontend=None)(stored_cuts)
    assert from_audio.ids == from_disk.ids
    assert torch.equal(from_audio.feature_lens, from_disk.feature_lens)
    torch.testing.assert_close(from_audio.features, from_disk.features, atol=1e-4, rtol=1e-4)
    assert torch.equal(from_audio.vad_targets, from_disk.vad_targets)
    with pytest.raises(ValueError, match="no precomputed features"):
        MultiTaskCollator(tok, vocabs, frontend=None)(mono)


def test_batch_moves_to_a_device(batch: Batch) -> None:
    moved = batch.to("cpu")
    assert moved.ids == batch.ids and torch.equal(moved.class_targets["lid"], batch.class_targets["lid"])
