"""ModelDecoder on a tiny random MultiTaskModel with a real tokenizer: every mode, batching, VAD gating, long
audio, language ID, errors, and the parsing of answers (SLU, decoder timestamps, CTC word times)."""

from __future__ import annotations

import math

import pytest
import torch
from decode_fakes import one_thread  # noqa: F401  (autouse fixture)

from mtspeech.data.labels import LabelVocab
from mtspeech.data.tokenizer import Tokenizer, train_tokenizer
from mtspeech.decode import MODES, DecodingOptions, ModelDecoder, VadOptions
from mtspeech.decode.answers import AnswerBuilder, PieceContext
from mtspeech.decode.result import Hypothesis
from mtspeech.errors import UserError
from mtspeech.model.config import ModelConfig
from mtspeech.model.model import MultiTaskModel

TEXTS = [
    "wake me up at eight o'clock",
    "wake me up at [time : eight] o'clock",
    "what's the weather like in paris",
    "set an alarm for seven thirty tomorrow morning",
]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return train_tokenizer(TEXTS, vocab_size=300, languages=["en", "fr"], intents=["alarm_set", "weather_query"])


def _model(tok: Tokenizer, tasks: tuple[str, ...] = ("asr_ctc", "decoder", "vad", "lid"), seed: int = 0):
    options = {
        "asr_ctc": {"vocab_size": tok.vocab_size, "dropout": 0.0},
        "decoder": {"vocab_size": tok.vocab_size, "sot_id": tok.sot_id, "eot_id": tok.eot_id, "dropout": 0.0},
        "vad": {"dropout": 0.0},
        "lid": {"num_classes": 2, "dropout": 0.0},
    }
    config = ModelConfig.from_dict(
        {"encoder": {"preset": "tiny", "dropout": 0.0}, "tasks": {t: options[t] for t in tasks}}
    )
    torch.manual_seed(seed)
    return MultiTaskModel(config).eval()


@pytest.fixture(scope="module")
def decoder(tok: Tokenizer) -> ModelDecoder:
    return ModelDecoder(_model(tok), tok, {"lid": LabelVocab("lid", ["en", "fr"])})


def _features(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(len(lengths), max(lengths), 80, generator=g), torch.tensor(lengths)


def _options(mode: str, **changes) -> DecodingOptions:
    return DecodingOptions(**{"mode": mode, "language": "en", "beam_size": 3, "max_tokens": 8, "nbest": 4, **changes})


def _set_vad_bias(decoder: ModelDecoder, value: float) -> None:
    last = decoder.model.tasks["vad"].head[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(value)


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_decodes_a_batch_like_each_utterance_alone(decoder: ModelDecoder, mode: str) -> None:
    features, lens = _features([100, 70])
    with torch.no_grad():
        enc, enc_lens = decoder.model.encode(features, lens)
    options = _options(mode)
    batched = decoder.decode_encoded(enc, enc_lens, options)
    assert len(batched) == 2
    for row, result in enumerate(batched):
        n = int(enc_lens[row])
        alone = decoder.decode_encoded(enc[row : row + 1, :n], enc_lens[row : row + 1], options)[0]
        assert alone.tokens == result.tokens
        assert alone.score == pytest.approx(result.score, abs=1e-3)
        assert result.mode == mode and result.language == "en" and 0.0 <= result.confidence <= 1.0
        if mode in ("attention_beam", "joint_ctc_attention"):
            assert len(result.tokens) <= 8  # max_tokens
        assert all(0 < t < decoder.tokenizer.sp_size for t in result.tokens)  # grammar: text pieces only
        for segment in result.segments:
            assert 0.0 <= segment.start <= segment.end <= n * decoder.frame_shift + 1e-6


@pytest.mark.parametrize("mode", MODES)
def test_vad_gating_emits_nothing_where_there_is_no_speech(decoder: ModelDecoder, mode: str) -> None:
    features, lens = _features([80, 60], seed=1)
    _set_vad_bias(decoder, -20.0)  # every frame: speech probability ~ 2e-9
    silent = decoder.decode(features, lens, _options(mode, vad=VadOptions()))
    _set_vad_bias(decoder, 20.0)  # every frame speech: one segment per utterance, the whole of it
    spoken = decoder.decode(features, lens, _options(mode, vad=VadOptions()))
    assert all(r.text == "" and r.tokens == [] and r.no_speech and not r.segments for r in silent)
    plain = decoder.decode(features, lens, _options(mode))
    assert [r.tokens for r in spoken] == [r.tokens for r in plain]


def test_long_audio_is_decoded_segment_by_segment_with_times_kept(decoder: ModelDecoder) -> None:
    features = torch.randn(1000, 80, generator=torch.Generator().manual_seed(3))  # 10 s
    options = _options("ctc_greedy", vad=VadOptions(max_segment=4.0), word_timestamps=True)
    _set_vad_bias(decoder, 20.0)
    result = decoder.decode_long(features, options, window=3.0)
    assert result.segments, "random CTC output is never empty over 10 s"
    starts = [s.start for s in result.segments]
    assert starts == sorted(starts) and all(0.0 <= s.start <= s.end <= 10.0 for s in result.segments)
    assert max(s.end for s in result.segments) > 6.0  # pieces after the first 4 s segment kept their offsets
    _set_vad_bias(decoder, -20.0)
    assert decoder.decode_long(features, options, window=3.0).no_speech


def test_language_comes_from_the_lid_head_when_not_given(decoder: ModelDecoder) -> None:
    features, lens = _features([100])
    with torch.no_grad():
        enc, enc_lens = decoder.model.encode(features, lens)
        expected = ["en", "fr"][int(decoder.model.tasks["lid"].logits(enc, enc_lens).argmax())]
    result = decoder.decode(features, lens, _options("attention_beam", language=None))[0]
    assert result.language == expected


def test_missing_tasks_and_languages_are_user_errors(tok: Tokenizer) -> None:
    features, lens = _features([100])
    ctc_only = ModelDecoder(_model(tok, ("asr_ctc",)), tok)
    with pytest.raises(UserError, match="'decoder'"):
        ctc_only.decode(features, lens, _options("attention_beam"))
    with pytest.raises(UserError, match="'vad'"):
        ctc_only.decode(features, lens, _options("ctc_greedy", vad=VadOptions()))
    assert ctc_only.decode(features, lens, _options("ctc_greedy", language=None))[0].language is None
    decoder_only = ModelDecoder(_model(tok, ("decoder",)), tok)
    with pytest.raises(UserError, match="language"):
        decoder_only.decode(features, lens, _options("attention_beam", language=None))
    with pytest.raises(UserError, match="'asr_ctc'"):
        decoder_only.decode(features, lens, _options("joint_ctc_attention"))
    with pytest.raises(UserError, match="'xx'"):
        decoder_only.decode(features, lens, _options("attention_beam", language="xx"))


def test_decoding_keeps_the_callers_training_mode(decoder: ModelDecoder) -> None:
    features, lens = _features([100])
    decoder.model.train()
    try:
        decoder.decode(features, lens, _options("ctc_greedy"))
        assert decoder.model.training
    finally:
        decoder.model.eval()


def test_waveforms_go_through_the_models_front_end(decoder: ModelDecoder) -> None:
    waves = torch.randn(2, 16000, generator=torch.Generator().manual_seed(0)) * 0.1
    results = decoder.decode_waveforms(waves, torch.tensor([16000, 12000]), _options("ctc_greedy"))
    assert len(results) == 2 and all(r.segments[0].end <= 1.0 for r in results if r.segments)


# --- answers ----------------------------------------------------------------------------------------
def _builder(tok: Tokenizer, **changes) -> AnswerBuilder:
    return AnswerBuilder(tok, DecodingOptions(**{"mode": "attention_beam", **changes}), frame_shift=0.04)


def test_slu_answers_become_transcript_intent_and_slots(tok: Tokenizer) -> None:
    tokens = [*tok.encode("wake me up at [time : eight] o'clock"), tok.intent_id("alarm_set")]
    piece = PieceContext(language="en", offset=2.0, duration=3.0)
    result = _builder(tok, task="slu").build(Hypothesis(tokens, score=-2.0), piece)
    assert result.text == "wake me up at eight o'clock"
    assert result.annotation == "wake me up at [time : eight] o'clock"
    assert result.intent == "alarm_set"
    assert result.slots == [{"type": "time", "start": 4, "end": 5, "value": "eight"}]
    assert result.segments[0].start == 2.0 and result.segments[0].end == 5.0
    assert result.confidence == pytest.approx(math.exp(-2.0 / (len(tokens) + 1)), abs=1e-4)


def test_decoder_timestamps_become_segments_on_the_input_clock(tok: Tokenizer) -> None:
    ts = tok.timestamp_id
    tokens = [ts(0.2), *tok.encode("wake me up"), ts(0.6), ts(0.6), *tok.encode("at eight"), ts(1.0)]
    piece = PieceContext(language="en", offset=5.0, duration=1.2)
    result = _builder(tok, timestamps=True).build(Hypothesis(tokens, score=-1.0), piece)
    assert [(s.start, s.end, s.text) for s in result.segments] == [
        (5.2, 5.6, "wake me up"),
        (5.6, 6.0, "at eight"),
    ]
    assert result.text == "wake me up at eight"


def test_word_timestamps_follow_the_ctc_spikes(tok: Tokenizer) -> None:
    ids = tok.encode("wake me up")
    frames = 3 * len(ids) + 2
    log_probs = torch.full((frames, tok.sp_size), -12.0)
    log_probs[:, 0] = -1e-4  # blank everywhere ...
    spikes = [3 * i + 1 for i in range(len(ids))]
    for frame, token in zip(spikes, ids, strict=True):  # ... except one spike per piece
        log_probs[frame, 0], log_probs[frame, token] = -12.0, -1e-4
    piece = PieceContext(language="en", offset=1.0, duration=frames * 0.04, ctc_log_probs=log_probs)
    result = _builder(tok, mode="ctc_greedy", word_timestamps=True).build(Hypothesis(ids, score=-0.1), piece)
    assert [w.word for w in result.words] == ["wake", "me", "up"]
    first_piece_of = [i for i, start in enumerate(tok.word_starts(ids)) if start]
    for word, index in zip(result.words, first_piece_of, strict=True):
        assert word.start == pytest.approx(1.0 + spikes[index] * 0.04)
        assert word.confidence > 0.99
    assert result.confidence > 0.99
    assert all(a.end <= b.start for a, b in zip(result.words, result.words[1:], strict=False))


def test_decoding_an_eval_model_does_not_walk_its_modules(decoder: ModelDecoder, monkeypatch) -> None:
    """The service keeps its model in eval mode: switching modes per request walked ~600 modules twice."""
    features, lens = _features([100])
    calls = []
    monkeypatch.setattr(torch.nn.Module, "train", lambda self, mode=True: calls.append(mode) or self)
    decoder.decode(features, lens, _options("ctc_greedy"))
    assert calls == []


def test_word_times_and_confidence_share_one_alignment(tok: Tokenizer, monkeypatch) -> None:
    import mtspeech.decode.answers as answers_module

    ids = tok.encode("wake me up")
    log_probs = torch.randn(3 * len(ids) + 2, tok.sp_size).log_softmax(-1)
    piece = PieceContext(language="en", offset=0.0, duration=log_probs.size(0) * 0.04, ctc_log_probs=log_probs)
    aligned = []
    real = answers_module.ctc_forced_align
    monkeypatch.setattr(answers_module, "ctc_forced_align", lambda *a, **k: aligned.append(a[1]) or real(*a, **k))
    builder = _builder(tok, mode="ctc_greedy", word_timestamps=True)
    result = builder.build(Hypothesis(ids, score=-0.1), piece)
    assert [w.word for w in result.words] == ["wake", "me", "up"] and len(aligned) == 1
    # another piece (a new tensor) with the same ids is aligned again, not served from the last one
    builder.build(Hypothesis(ids, score=-0.1), PieceContext("en", 0.0, piece.duration, log_probs.clone()))
    assert len(aligned) == 2
