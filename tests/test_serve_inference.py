"""The inference path shared by the service and ``mtspeech analyze``: answers from one encoder pass."""

from __future__ import annotations

import pytest
import torch
from serve_fixtures import (
    assert_same_answer,
    build_model_file,
    cached_model_file,
    comparable,
    fast_analyzer,
    model_file,  # noqa: F401  (session fixture)
    voice_like,
)

from mtspeech.data.features import encoder_frame_times
from mtspeech.decode.options import VadOptions
from mtspeech.decode.result import DecodingResult
from mtspeech.errors import UserError
from mtspeech.serve import answers
from mtspeech.serve.quantize import Int8Linear, available_engines, count_quantized_linears, quantize_model


@pytest.fixture(scope="module")
def analyzer(model_file):  # noqa: F811
    return fast_analyzer(model_file)


# --- pure answer builders ------------------------------------------------------------------------------
def test_bio_word_tags_become_spans() -> None:
    words = ["wake", "me", "up", "at", "eight", "tomorrow", "in", "paris"]
    tags = ["O", "O", "O", "O", "B-time", "I-time", "O", "B-place_name"]
    assert answers.spans_from_word_tags(words, tags) == [
        {"type": "time", "start_word": 4, "end_word": 6, "value": "eight tomorrow"},
        {"type": "place_name", "start_word": 7, "end_word": 8, "value": "paris"},
    ]
    # an I- tag after O or after another type opens a span; B- after B- of the same type starts a new one
    lenient = answers.spans_from_word_tags(["a", "b", "c", "d"], ["I-x", "I-y", "B-y", "B-y"])
    assert [(s["type"], s["start_word"], s["end_word"]) for s in lenient] == [
        ("x", 0, 1),
        ("y", 1, 2),
        ("y", 2, 3),
        ("y", 3, 4),
    ]


def test_piece_tags_take_the_first_piece_of_each_word() -> None:
    # pieces: ▁wake | ▁at | ▁eig ht | ▁par is  -> 4 words; the tag of "ht" (O) must not split "eight"
    starts = [True, True, True, False, True, False]
    tags = ["O", "B-time", "I-time", "B-place_name", "I-place_name"]
    piece_tags = [0, 0, 1, 0, 3, 4]
    probs = [0.9, 0.8, 0.6, 0.1, 0.7, 0.2]
    result = answers.slots_from_piece_tags(["wake", "at", "eight", "paris"], starts, piece_tags, probs, tags)
    assert result["spans"] == [
        {"type": "time", "start_word": 2, "end_word": 3, "value": "eight"},
        {"type": "place_name", "start_word": 3, "end_word": 4, "value": "paris"},
    ]
    assert result["confidence"] == pytest.approx((0.9 + 0.8 + 0.6 + 0.7) / 4, abs=1e-4)
    assert answers.word_groups([False, True, False, True]) == [0, 1, 1, 2]
    out_of_vocab = answers.slots_from_piece_tags(["x"], [True], [9], [0.5], tags)
    assert out_of_vocab["spans"] == [] and answers.slots_from_piece_tags([], [], [], [], tags)["confidence"] == 1.0


def test_classifier_answer_drops_unlabelled_outputs_and_renormalises() -> None:
    answer = answers.classifier_answer(torch.tensor([0.2, 0.6, 0.2]), ["only", "other"][:1] + ["second"])
    assert answer["label"] == "second" and answer["confidence"] == pytest.approx(0.75)
    assert list(answer["probabilities"]) == ["second", "only"]
    top = answers.classifier_answer(torch.tensor([0.1, 0.2, 0.3, 0.4]), list("abcd"), top=2)
    assert top["probabilities"] == {"d": 0.4, "c": 0.3}


def test_vad_answer_gives_segments_in_seconds_clipped_to_the_audio() -> None:
    probs = torch.tensor([0.1] * 10 + [0.9] * 20 + [0.1] * 20 + [0.95] * 10)
    options = VadOptions(pad=0.0, min_silence=0.2, min_speech=0.1)
    grid = torch.arange(60) * 0.04 + 0.02  # frame j covers [0.04 j, 0.04 (j + 1))
    answer = answers.vad_answer(probs, grid, 0.04, duration=2.3, options=options)
    assert answer["segments"] == [{"start": 0.4, "end": 1.2}, {"start": 2.0, "end": 2.3}]
    # The model's frames: frame j's receptive field is centred 35 ms after 40 j ms (x4 subsampling, 10 ms shift).
    placed = answers.vad_answer(probs, encoder_frame_times(60, 4, 0.01), 0.04, duration=2.3, options=options)
    assert placed["segments"] == [{"start": 0.415, "end": 1.215}, {"start": 2.015, "end": 2.3}]
    assert answer["speech_ratio"] == pytest.approx(0.5)
    assert 0.5 < answer["confidence"] <= 1.0


def test_decoder_slu_answer_keeps_word_spans() -> None:
    result = DecodingResult(
        text="wake me up at eight",
        tokens=[],
        mode="attention_beam",
        task="slu",
        language="en",
        score=-1.0,
        confidence=0.7,
        finish="eot",
        intent="alarm_set",
        slots=[{"type": "time", "start": 4, "end": 5, "value": "eight"}],
    )
    assert answers.slots_from_decoder(result)["spans"] == [
        {"type": "time", "value": "eight", "start_word": 4, "end_word": 5}
    ]


# --- the analyzer on real models -----------------------------------------------------------------------
def test_batched_answers_equal_one_at_a_time_answers(analyzer) -> None:
    waves = [voice_like(0.8, 1), voice_like(1.6, 2), voice_like(0.5, 3)]
    targets = ["fr", None, "de"]
    tasks = ("asr", "language", "intent", "slots", "translation", "emotion", "vad")
    batch = analyzer.analyze(waves, tasks, targets)
    assert "translation" not in batch[1] and batch[0]["translation"]["target"] == "fr"
    assert batch[2]["translation"]["target"] == "de"
    for wave, target, answer in zip(waves, targets, batch, strict=True):
        (alone,) = analyzer.analyze([wave], tasks, [target])
        assert_same_answer(comparable(answer), comparable(alone))
    assert batch[0]["timings_ms"]["encoder"] > 0 and "translation" in batch[0]["timings_ms"]


def test_unknown_tasks_targets_and_short_audio_are_user_errors(analyzer) -> None:
    wave = voice_like(0.5, 4)
    with pytest.raises(UserError, match="telepathy"):
        analyzer.analyze([wave], ["telepathy"])
    with pytest.raises(UserError, match="'xx'"):
        analyzer.analyze([wave], ["translation"], ["xx"])
    with pytest.raises(UserError, match="too short"):
        analyzer.analyze([voice_like(0.03, 5)], ["asr"])
    assert analyzer.analyze([], ["asr"]) == []


def test_tasks_follow_the_model(tmp_path) -> None:
    ctc_only = fast_analyzer(cached_model_file(tmp_path, tasks=("asr_ctc", "vad", "emotion")))
    assert ctc_only.tasks == ("asr", "emotion", "vad") and ctc_only.decoding.mode == "ctc_prefix_beam"
    (answer,) = ctc_only.analyze([voice_like(0.9, 6)], ctc_only.tasks)
    assert set(comparable(answer)) == {"asr", "vad", "emotion"}
    decoder_only = fast_analyzer(cached_model_file(tmp_path, tasks=("decoder",)))
    assert decoder_only.tasks == ("asr", "language", "intent", "slots", "translation")
    (answer,) = decoder_only.analyze([voice_like(0.9, 7)], decoder_only.tasks, ["es"])
    assert answer["language"]["source"] == "decoder"
    assert answer["language"]["label"] in decoder_only.tokenizer.language_ids
    assert answer["intent"]["source"] == "decoder" and answer["slots"]["text"] == answer["slots"]["text"].strip()
    assert answer["asr"]["words"] == []  # no CTC head: no alignment
    assert answer["translation"]["source_language"] == answer["language"]["label"]


def test_int8_quantisation_replaces_linears_and_keeps_answers_close(model_file, analyzer) -> None:  # noqa: F811
    quantized = quantize_model(analyzer.model, "int8")
    assert count_quantized_linears(quantized) > 20 and count_quantized_linears(analyzer.model) == 0
    int8 = fast_analyzer(model_file, quantize="int8")
    assert int8.version.endswith(f"(int8, {int8.quantize_engine})") and int8.quantize_engine in available_engines()
    waves = [voice_like(1.0, 8), voice_like(1.2, 9)]
    fp32_answers = analyzer.analyze(waves, ["language", "emotion", "vad"])
    # The tiny test model's products are all too small to pay for int8, so the default answers come from the
    # float weights; with every call in int8 the kernels run and the answers move a little, not much.
    assert int8.analyze(waves, ["language", "emotion"])[0]["language"] == fp32_answers[0]["language"]
    for module in int8.model.modules():
        if isinstance(module, Int8Linear):
            module.min_int8_rows = 0.0
    moved = 0.0
    for fp32, q8 in zip(fp32_answers, int8.analyze(waves, ["language", "emotion", "vad"]), strict=True):
        for task in ("language", "emotion"):
            for label, p in fp32[task]["probabilities"].items():
                assert abs(q8[task]["probabilities"][label] - p) < 0.05
                moved = max(moved, abs(q8[task]["probabilities"][label] - p))
    assert moved > 0  # the int8 kernels did run
    with pytest.raises(UserError, match="int4"):
        quantize_model(analyzer.model, "int4")


def test_attention_rescoring_mode_batches_by_language_and_keeps_word_times(model_file) -> None:  # noqa: F811
    rescoring = fast_analyzer(model_file, mode="attention_rescoring")
    assert rescoring.decoding.mode == "attention_rescoring" and rescoring.decoding.word_timestamps
    waves = [voice_like(0.9, 51), voice_like(1.4, 52)]
    batch = rescoring.analyze(waves, ["asr", "language"])
    for wave, answer in zip(waves, batch, strict=True):
        (alone,) = rescoring.analyze([wave], ["asr", "language"])
        assert_same_answer(comparable(answer), comparable(alone))
        assert answer["asr"]["language"] == answer["language"]["label"]  # the prompt used the detected language
        duration = len(wave) / 16000
        assert all(0.0 <= w["start"] <= w["end"] <= duration for w in answer["asr"]["words"])


def test_a_decoding_mode_the_model_cannot_run_is_refused_up_front(tmp_path) -> None:
    decoder_only = cached_model_file(tmp_path, tasks=("decoder",))
    with pytest.raises(UserError, match="asr_ctc"):
        fast_analyzer(decoder_only, mode="ctc_greedy")
    with pytest.raises(UserError, match="mode"):
        fast_analyzer(decoder_only, mode="fastest")


def test_intents_come_from_the_transcript_head_when_the_model_has_one(tmp_path) -> None:
    with_text = fast_analyzer(cached_model_file(tmp_path, tasks=("asr_ctc", "intent", "intent_text")))
    assert with_text.tasks == ("asr", "intent")
    with torch.no_grad():  # only the always-on bucket speaks: every transcript is "weather_query"
        bag = with_text.model.tasks["intent_text"].head["bag"].weight
        bag.zero_()
        bag[0, with_text.vocabs["intent"].labels.index("weather_query")] = 1.0
    answers_ = with_text.analyze([voice_like(0.9, 8), voice_like(1.3, 9)], ["intent"])
    assert [a["intent"]["label"] for a in answers_] == ["weather_query"] * 2
    assert all(a["intent"]["confidence"] > 0.99 for a in answers_)
    text_only = fast_analyzer(cached_model_file(tmp_path, tasks=("asr_ctc", "intent_text")))
    assert text_only.tasks == ("asr", "intent")


def test_the_transcript_head_reads_the_transcript_the_asr_answer_shows(tmp_path, monkeypatch) -> None:
    from types import SimpleNamespace

    from mtspeech.tasks.intent_text import word_ngram_buckets

    analyzer = fast_analyzer(cached_model_file(tmp_path, tasks=("asr_ctc", "intent", "intent_text")))
    head, labels = analyzer.model.tasks["intent_text"], analyzer.vocabs["intent"].labels
    shown = "play some jazz music in the kitchen"
    with torch.no_grad():  # only the words of `shown` speak, for the last intent
        weight = head.head["bag"].weight
        weight.zero_()
        pieces = analyzer.tokenizer.encode(shown)
        for bucket in word_ngram_buckets(pieces, set(head.config.word_start_ids), 2, head.config.buckets)[1:]:
            weight[bucket, len(labels) - 1] = 1.0
    # The transcript the asr answer would show (a search result, not the greedy path the head defaults to).
    monkeypatch.setattr(analyzer, "_transcripts", lambda batch: [SimpleNamespace(text=shown)] * batch.enc.size(0))
    found = analyzer.analyze([voice_like(1.1, 10), voice_like(1.6, 11)], ["intent"])
    assert [a["intent"]["label"] for a in found] == [labels[-1]] * 2


def test_a_head_that_mixes_encoder_layers_answers_from_its_own_mix(tmp_path) -> None:
    path = build_model_file(
        tmp_path / "mix.pt", tasks=("asr_ctc", "lid", "emotion"), task_options={"emotion": {"encoder_layers": "mix"}}
    )
    analyzer = fast_analyzer(path)
    model = analyzer.model
    with torch.no_grad():  # the whole weight on the subsampling output: the blocks cannot move the answer
        model.tasks["emotion"].head["layer_mix"].logits.copy_(torch.tensor([40.0] + [0.0] * len(model.encoder.blocks)))
    waves = [voice_like(0.9, 11), voice_like(1.4, 12)]
    before = analyzer.analyze(waves, ["emotion", "language"])
    with torch.no_grad():
        for p in model.encoder.blocks.parameters():
            p.add_(0.5 * torch.randn_like(p))
    after = analyzer.analyze(waves, ["emotion", "language"])
    for old, new in zip(before, after, strict=True):
        assert old["emotion"]["probabilities"] == pytest.approx(new["emotion"]["probabilities"], abs=1e-4)
    assert any(
        old["language"]["probabilities"] != pytest.approx(new["language"]["probabilities"], abs=1e-4)
        for old, new in zip(before, after, strict=True)
    )


def test_pooled_heads_asked_together_run_fused_and_answer_as_each_head_alone(analyzer) -> None:
    waves = [voice_like(0.9, 13), voice_like(1.5, 14)]
    heads = ("language", "emotion", "accent", "speaker", "gender")
    together = analyzer.analyze(waves, heads)
    assert "pooled_heads" in together[0]["timings_ms"]
    for task in heads:
        alone = analyzer.analyze(waves, [task])
        assert "pooled_heads" not in alone[0]["timings_ms"]  # one head: nothing to fuse
        for fused, own in zip(together, alone, strict=True):
            assert fused[task]["label"] == own[task]["label"]
            assert fused[task]["probabilities"] == pytest.approx(own[task]["probabilities"], abs=2e-4)


def test_the_serving_copy_encodes_and_answers_as_the_model_does(model_file, analyzer) -> None:  # noqa: F811
    from mtspeech.data.features import pad_waveforms
    from mtspeech.model.package import load_model

    model = load_model(model_file).model.eval()
    assert type(analyzer.model.encoder.subsampling).__name__ == "ChannelsLastSubsampling"
    waves, lengths = pad_waveforms([voice_like(seconds, 20 + i) for i, seconds in enumerate((1.3, 0.8))])
    with torch.inference_mode():
        features, feature_lens = model.features_from_audio(waves, lengths)
        expected, expected_lens, expected_layers = model.encode_layers(features, feature_lens)
        got, got_lens, got_layers = analyzer.model.encode_layers(features, feature_lens)
        assert got_lens.tolist() == expected_lens.tolist()
        for row, n in enumerate(expected_lens.tolist()):
            torch.testing.assert_close(got[row, :n], expected[row, :n], atol=1e-4, rtol=1e-4)
            for mine, theirs in zip(got_layers, expected_layers, strict=True):
                torch.testing.assert_close(mine[row, :n], theirs[row, :n], atol=1e-4, rtol=1e-4)
        tokens = torch.tensor([[analyzer.tokenizer.sot_id, 5, 6]] * 2)  # the decoder's fused attention too
        served = analyzer.model.tasks["decoder"].logits(tokens, got, got_lens)
        torch.testing.assert_close(
            served, model.tasks["decoder"].logits(tokens, expected, expected_lens), atol=1e-4, rtol=1e-4
        )
