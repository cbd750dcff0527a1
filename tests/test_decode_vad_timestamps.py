"""VAD segments from speech probabilities, CTC forced alignment, word/segment times, options and results."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from decode_fakes import (
    collapse,
    one_thread,  # noqa: F401  (autouse fixture)
    random_log_probs,
)

from mtspeech.decode.options import DecodingOptions, VadOptions
from mtspeech.decode.repetition import loop_bans, ngram_bans
from mtspeech.decode.result import DecodingResult, Segment, Word, merge_results
from mtspeech.decode.timestamps import TokenSpan, ctc_forced_align, group_segments, group_words
from mtspeech.decode.vad_gating import speech_segments
from mtspeech.errors import UserError

VAD = VadOptions(threshold=0.5, min_speech=0.12, min_silence=0.2, pad=0.08, max_segment=30.0)  # 3, 5, 2 frames


@pytest.mark.parametrize("seed", range(10))
def test_pure_noise_probabilities_give_no_segment(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(500, generator=g) * 0.49  # never reaches the 0.5 threshold
    assert speech_segments(noise, VAD) == []


def _probs(speech: list[tuple[int, int]], frames: int) -> torch.Tensor:
    probs = torch.full((frames,), 0.1)
    for start, end in speech:
        probs[start:end] = 0.9
    return probs


def test_smoothing_merges_short_pauses_drops_blips_and_pads() -> None:
    # speech 10-20 and 23-30 (3-frame pause < 5: merged), a 2-frame blip at 50 (< 3: dropped), 70-80
    probs = _probs([(10, 20), (23, 30), (50, 52), (70, 80)], frames=81)
    assert speech_segments(probs, VAD) == [(8, 32), (68, 81)]  # padded by 2 frames, clipped to the input


def test_padding_that_makes_segments_touch_merges_them() -> None:
    probs = _probs([(10, 20), (26, 30)], frames=40)  # a 6-frame pause: longer than min_silence, kept apart
    assert speech_segments(probs, VAD) == [(8, 22), (24, 32)]
    touching = VadOptions(**{**VAD.__dict__, "pad": 0.12})  # 3 frames each side: (7, 23) and (23, 33) touch
    assert speech_segments(probs, touching) == [(7, 33)]


def test_long_speech_is_split_at_its_least_speechlike_frame() -> None:
    probs = torch.full((300,), 0.9)
    probs[130] = 0.6  # the best cut in the second half of the first 200-frame window
    options = VadOptions(threshold=0.5, pad=0.0, max_segment=8.0)  # 200 frames
    segments = speech_segments(probs, options)
    assert segments[0] == (0, 130)
    assert all(end - start <= 200 for start, end in segments)
    assert [s for s, _ in segments[1:]] == [e for _, e in segments[:-1]] and segments[-1][1] == 300


def _brute_force_alignment(log_probs: torch.Tensor, tokens: list[int]) -> float:
    best = -math.inf
    for path in itertools.product(range(log_probs.size(1)), repeat=log_probs.size(0)):
        if list(collapse(path)) == tokens:
            best = max(best, sum(float(log_probs[t, s]) for t, s in enumerate(path)))
    return best


@pytest.mark.parametrize("tokens", [[1], [1, 2], [2, 2], [1, 2, 1]])
def test_forced_alignment_is_the_best_path_of_the_tokens(tokens: list[int]) -> None:
    log_probs = random_log_probs(6, 3, seed=len(tokens) + tokens[-1])
    spans = ctc_forced_align(log_probs, tokens)
    assert spans is not None and [s.token for s in spans] == tokens
    # rebuild the path: the tokens' frames, blank elsewhere, and check its score is the brute-force optimum
    path = [0] * 6
    for span in spans:
        path[span.start : span.end] = [span.token] * (span.end - span.start)
    assert list(collapse(tuple(path))) == tokens
    score = sum(float(log_probs[t, s]) for t, s in enumerate(path))
    assert score == pytest.approx(_brute_force_alignment(log_probs, tokens))
    starts = [s.start for s in spans]
    assert starts == sorted(starts) and all(a.end <= b.start for a, b in itertools.pairwise(spans))
    for span in spans:
        assert 0 < span.posterior <= 1


def test_forced_alignment_refuses_tokens_that_cannot_fit() -> None:
    log_probs = random_log_probs(3, 3, seed=0)
    assert ctc_forced_align(log_probs, [1, 1]) is not None  # 1 blank 1
    assert ctc_forced_align(log_probs, [1, 1, 1]) is None  # needs 5 frames
    assert ctc_forced_align(log_probs, []) == []


def test_word_and_segment_times_are_monotonic_and_inside_the_audio() -> None:
    # pieces: "▁wake" "▁me" "▁u" "p" "▁now" with a long pause before "now"
    spans = [TokenSpan(11, 2, 4, 0.9), TokenSpan(12, 5, 6, 0.8), TokenSpan(13, 7, 8, 0.7), TokenSpan(14, 8, 10, 0.5),
             TokenSpan(15, 40, 42, 0.6)]  # fmt: skip
    pieces = {11: "▁wake", 12: "▁me", 13: "▁u", 14: "p", 15: "▁now"}

    def detokenize(ids: list[int]) -> str:
        return "".join(pieces[i] for i in ids).replace("▁", " ").strip()

    words = group_words(spans, [True, True, True, False, True], detokenize, 0.04, offset=10.0, duration=1.64)
    assert [w.word for w in words] == ["wake", "me", "up", "now"]
    assert words[2].start == pytest.approx(10.28) and words[2].end == pytest.approx(10.40)
    assert words[2].confidence == pytest.approx(0.6)  # mean of its two pieces
    assert all(10.0 <= w.start <= w.end <= 11.64 for w in words)
    assert all(a.end <= b.start for a, b in itertools.pairwise(words))
    assert words[-1].end == pytest.approx(11.64)  # clipped to the end of the audio (frame 42 -> 11.68 s)
    segments = group_segments(words, segment_gap=0.6)
    assert [s.text for s in segments] == ["wake me up", "now"]
    assert segments[0].start == words[0].start and segments[0].end == words[2].end


def test_word_times_place_frames_as_vad_does() -> None:
    """A word aligned to encoder frames [a, b) spans the seconds a VAD segment over the same frames spans."""
    from mtspeech.data.features import encoder_frame_times
    from mtspeech.decode.vad_gating import segment_times

    shift = 0.04
    centres = encoder_frame_times(60, 4, 0.01)
    lead = float(centres[0]) - shift / 2
    assert lead == pytest.approx(0.015)
    words = group_words([TokenSpan(5, 12, 20, 1.0)], [True], lambda ids: "hello", shift, duration=2.4, lead=lead)
    ((vad_start, vad_end),) = segment_times([(12, 20)], centres, shift, duration=2.4)
    assert (words[0].start, words[0].end) == (pytest.approx(vad_start), pytest.approx(vad_end))


# --- repetition guards ----------------------------------------------------------------------------
def test_loop_ban_catches_units_of_any_period_up_to_the_limit() -> None:
    assert loop_bans([5, 5, 5], max_repeats=3, max_period=4) == {5}
    assert loop_bans([5, 5], max_repeats=3, max_period=4) == set()
    assert loop_bans([1, 2, 1, 2, 1, 2, 1], max_repeats=3, max_period=4) == {2}
    assert loop_bans([1, 2, 1, 2, 1, 2, 1], max_repeats=3, max_period=1) == set()
    assert loop_bans([7, 7, 7, 7], max_repeats=0, max_period=4) == set()  # off


def test_ngram_ban() -> None:
    assert ngram_bans([1, 2, 3, 1], ngram_size=2) == {2}
    assert ngram_bans([1, 2, 3, 1, 2], ngram_size=3) == {3}
    assert ngram_bans([1, 2], ngram_size=0) == set()


# --- options and results --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"beam_size": 0}, "beam_size"),
        ({"mode": "greedy"}, "mode"),
        ({"ctc_weight": 1.5}, "ctc_weight"),
        ({"task": "translate"}, "target_language"),
        ({"mode": "ctc_greedy", "task": "slu"}, "ctc_greedy"),
        ({"mode": "joint_ctc_attention", "task": "slu"}, "transcribe"),
        ({"beam_sise": 3}, "beam_sise"),
        ({"vad": {"threshold": 2}}, "vad.threshold"),
        ({"vad": {"treshold": 0.4}}, "treshold"),
        ({"timestamps": True, "task": "slu"}, "timestamps"),
    ],
)
def test_bad_options_are_user_errors_naming_the_option(values: dict, named: str) -> None:
    with pytest.raises(UserError, match=named):
        DecodingOptions.from_dict(values)


def test_options_from_dict_builds_nested_vad() -> None:
    options = DecodingOptions.from_dict({"mode": "ctc_prefix_beam", "vad": {"threshold": 0.3}}, beam_size=8)
    assert options.vad == VadOptions(threshold=0.3) and options.beam_size == 8
    assert options.candidates_per_hypothesis == 12


def _result(text: str, start: float, end: float, **extra) -> DecodingResult:
    words = [Word(text.split()[0], start, end, 0.5)]
    return DecodingResult(
        text=text,
        tokens=[1] * len(text.split()),
        mode="attention_beam",
        task="slu",
        language="en",
        score=-1.0,
        confidence=0.5,
        finish="eot",
        segments=[Segment(start, end, text, words)],
        **extra,
    )


def test_merging_pieces_keeps_times_and_shifts_slot_spans() -> None:
    first = _result("wake me up", 1.0, 2.0, intent="alarm_set", slots=[])
    slot = {"type": "time", "start": 1, "end": 2, "value": "eight"}
    second = _result("at eight", 5.0, 6.0, intent="alarm_set", slots=[slot])
    silent = DecodingResult("", [], "attention_beam", "slu", "en", 0.0, 1.0, "empty", no_speech=True)
    merged = merge_results([first, silent, second], template=silent)
    assert merged.text == "wake me up at eight" and not merged.no_speech
    assert [s.start for s in merged.segments] == [1.0, 5.0]
    assert merged.slots == [{"type": "time", "start": 4, "end": 5, "value": "eight"}]
    assert merged.intent == "alarm_set" and merged.words[1].start == 5.0
    assert merge_results([], template=silent) is silent
    assert merged.to_dict()["segments"][0]["words"][0]["word"] == "wake"
