"""SLURP span F1 and SLU-F1 against hand-computed counts; the SLURP prediction JSONL round trip."""

from __future__ import annotations

import json

import pytest

from mtspeech.data.schema import SlotSpan
from mtspeech.errors import UserError
from mtspeech.evaluate.records import Prediction, Reference, UtteranceResult
from mtspeech.evaluate.slurp import (
    F1Counts,
    distance_counts,
    entities_of,
    filler_distance,
    join_intent,
    read_slurp_predictions,
    slot_metrics,
    slurp_predictions,
    span_counts,
    split_intent,
    write_slurp_predictions,
)

REFERENCES = [[("time", "eight am"), ("date", "monday")], [("person", "anna")]]
PREDICTIONS = [[("time", "eight pm"), ("place", "paris")], [("person", "anna")]]


def test_filler_distance_word_and_char():
    assert filler_distance("eight am", "eight pm", "word") == 0.5
    assert filler_distance("eight am", "eight pm", "char") == pytest.approx(1 / 7)  # spaces removed: 7 characters
    assert filler_distance("eigh teen", "eighteen", "char") == 0.0
    assert filler_distance("a", "x y z", "word") == 1.0  # clipped
    assert filler_distance("", "", "word") == 0.0


def test_span_counts_need_type_and_filler_to_match():
    counts = span_counts(REFERENCES[0], PREDICTIONS[0])
    assert (counts.tp, counts.fp, counts.fn) == (0, 2, 2)
    repeated = span_counts([("x", "a"), ("x", "a")], [("x", "a")])
    assert (repeated.tp, repeated.fp, repeated.fn) == (1, 0, 1)


def test_distance_counts_give_partial_credit_for_the_right_type():
    word = distance_counts(REFERENCES[0], PREDICTIONS[0], "word")
    # time pair: TP 1, FP/FN 0.5 each; date missed: FN 1; place spurious: FP 1
    assert (word.tp, word.fp, word.fn) == pytest.approx((1.0, 1.5, 1.5))
    char = distance_counts(REFERENCES[0], PREDICTIONS[0], "char")
    assert (char.tp, char.fp, char.fn) == pytest.approx((1.0, 1 + 1 / 7, 1 + 1 / 7))


def test_distance_counts_pair_same_type_entities_by_smallest_distance():
    counts = distance_counts([("time", "five"), ("time", "six pm")], [("time", "six pm"), ("time", "fiv")], "char")
    # pairs five/fiv (1 deletion of 4 chars) and six pm/six pm (exact), not the crossed pairing
    assert (counts.tp, counts.fp, counts.fn) == pytest.approx((2.0, 0.25, 0.25))


def test_slot_metrics_hand_computed_corpus():
    result = slot_metrics(REFERENCES, PREDICTIONS)
    assert result["span_f1"] == pytest.approx(100 * 2 / 6)  # TP 1, FP 2, FN 2
    assert result["slu_f1_word"] == pytest.approx(100 * 4 / 7)  # TP 2, FP 1.5, FN 1.5
    assert result["slu_f1_char"] == pytest.approx(100 * 28 / 44)  # TP 2, FP 8/7, FN 8/7
    # summed: TP 4, FP = FN = 1.5 + 8/7
    pooled = 1.5 + 8 / 7
    assert result["slu_f1"] == pytest.approx(100 * 8 / (8 + 2 * pooled))
    assert result["slu_precision"] == pytest.approx(100 * 4 / (4 + pooled))


def test_f1_counts_edge_cases():
    assert F1Counts().f1 == 100.0  # nothing to find, nothing found
    assert F1Counts(0, 1, 0).f1 == 0.0
    assert slot_metrics([[]], [[("x", "y")]])["span_f1"] == 0.0


def test_entities_fall_back_to_the_words_of_the_text():
    slots = [SlotSpan("time", 4, 5, ""), SlotSpan("date", 0, 1, "Monday")]
    assert entities_of(slots, "monday wake me at eight") == [("time", "eight"), ("date", "monday")]


def test_intent_split_and_join():
    assert split_intent("alarm_set") == ("alarm", "set")
    assert split_intent("iot_hue_lightoff") == ("iot", "hue_lightoff")
    assert join_intent(*split_intent("iot_hue_lightoff")) == "iot_hue_lightoff"
    assert split_intent(None) == ("", "") and join_intent("", "") is None


def _record(uid: str, intent: str | None, slots: list[SlotSpan] | None, text: str) -> UtteranceResult:
    return UtteranceResult(uid, Reference(text=text), Prediction(text=text, intent=intent, slots=slots))


def test_slurp_export_round_trip(tmp_path):
    records = [
        _record("u1", "alarm_set", [SlotSpan("time", 4, 5, "eight")], "wake me up at eight"),
        _record("u2", "iot_hue_lightoff", [], "lights off"),
        _record("u3", None, None, "no slu here"),  # not exported
        _record("u4", "weather_query", [SlotSpan("place_name", 3, 4, "")], "weather in sunny paris"),
    ]
    lines = slurp_predictions(records, file_names={"u1": "audio-1490105541.flac"})
    path = write_slurp_predictions(lines, tmp_path / "predictions.jsonl")
    raw = [json.loads(line) for line in path.read_text().splitlines()]
    assert raw[0] == {
        "file": "audio-1490105541.flac",
        "scenario": "alarm",
        "action": "set",
        "entities": [{"type": "time", "filler": "eight"}],
    }
    assert raw[1]["scenario"] == "iot" and raw[1]["action"] == "hue_lightoff" and raw[1]["entities"] == []
    assert raw[2]["entities"] == [{"type": "place_name", "filler": "paris"}]  # value filled from the words
    back = read_slurp_predictions(path)
    assert back == lines
    assert [p.intent for p in back] == ["alarm_set", "iot_hue_lightoff", "weather_query"]


def test_reading_a_bad_slurp_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"file": "a", "scenario": "x", "action": "y", "entities": []}\n{"file": "b", "scenario": 3}\n')
    with pytest.raises(UserError, match=r"bad.jsonl:2: field 'scenario' must be a string"):
        read_slurp_predictions(path)
    path.write_text('{"file": "a", "scenario": "x", "action": "y", "entities": [{"type": "t"}]}\n')
    with pytest.raises(UserError, match="entities"):
        read_slurp_predictions(path)
    with pytest.raises(UserError, match="no such"):
        read_slurp_predictions(tmp_path / "missing.jsonl")
