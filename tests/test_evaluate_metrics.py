"""Corpus metrics against values worked out by hand: WER/CER, BLEU/chrF, accuracy, UAR, confusion, VAD, scores."""

from __future__ import annotations

import math

import pytest

from mtspeech.evaluate import metrics as m
from mtspeech.evaluate.records import frames_to_segments
from mtspeech.evaluate.scoring import geometric_mean, headline_scores, normalise_all, normalise_metric
from mtspeech.evaluate.text import normalise_filler, normalise_text
from mtspeech.evaluate.vad import match_segments, segments_to_frames, vad_metrics


def test_text_normalisation_lowercases_and_strips_punctuation():
    assert normalise_text("  Wake me UP at eight o'clock, please!  ") == "wake me up at eight oclock please"
    assert normalise_text("twenty-one a.m.") == "twenty one a m"
    assert normalise_text("Straße") == "strasse"
    assert normalise_text("l’été") == "lété"  # accents kept, typographic apostrophe joins
    assert normalise_text(None) == ""
    assert normalise_filler("  Five  A.M. ") == "five a.m."


def test_wer_counts_insertions_and_deletions_over_the_corpus():
    # 1 insertion ("down") + 1 deletion ("world") over 5 reference words = 40 %
    refs, hyps = ["the cat sat", "hello world"], ["the cat sat down", "hello"]
    assert m.wer(refs, hyps) == pytest.approx(40.0)
    counts = m.word_errors(refs, hyps)
    assert (counts.substitutions, counts.deletions, counts.insertions, counts.hits) == (0, 1, 1, 4)


def test_wer_normalises_case_and_punctuation_unless_told_not_to():
    assert m.wer(["The Cat, sat!"], ["the cat sat"]) == 0.0
    assert m.wer(["The cat sat!"], ["the cat sat"], normalise=False) == pytest.approx(200 / 3)  # "The", "sat!"


def test_wer_on_empty_reference_counts_insertions_and_can_exceed_100():
    assert m.wer(["", "a b"], ["x", "a b"]) == pytest.approx(50.0)  # 1 insertion / 2 words
    assert m.wer(["a"], ["x y z"]) == pytest.approx(300.0)
    assert math.isnan(m.wer([""], [""]))


def test_cer_counts_spaces_as_characters():
    assert m.cer(["abc"], ["abd"]) == pytest.approx(100 / 3)
    assert m.cer(["ab cd"], ["ab ce"]) == pytest.approx(20.0)


def test_bleu_matches_hand_computed_ngram_precisions():
    # precisions 5/6, 3/5, 2/4, 1/3; equal lengths so no brevity penalty: (1/12) ** (1/4)
    score = m.bleu(["the cat sat on a mat"], ["the cat sat on the mat"])
    assert score == pytest.approx(100 * (1 / 12) ** 0.25, abs=1e-6)
    assert m.bleu(["a b c d"], ["a b c d"]) == pytest.approx(100.0)


def test_chrf_matches_hand_computed_character_ngrams():
    # orders 1..6 of "abcdefg" vs "abcdefx": P = R = 6/7, 5/6, 4/5, 3/4, 2/3, 1/2
    expected = 100 * (6 / 7 + 5 / 6 + 4 / 5 + 3 / 4 + 2 / 3 + 1 / 2) / 6
    assert m.chrf(["abcdefg"], ["abcdefx"]) == pytest.approx(expected, abs=1e-6)


def test_accuracy_and_unweighted_average_recall():
    refs, preds = ["a", "a", "a", "b"], ["a", "a", "b", "b"]
    assert m.accuracy(refs, preds) == pytest.approx(75.0)
    assert m.recall_per_class(refs, preds) == pytest.approx({"a": 200 / 3, "b": 100.0})
    assert m.unweighted_average_recall(refs, preds) == pytest.approx((200 / 3 + 100) / 2)
    # always answering the majority class: accuracy 75 %, UAR only 50 %
    assert m.unweighted_average_recall(refs, ["a"] * 4) == pytest.approx(50.0)
    assert m.accuracy(["a"], [None]) == 0.0


def test_confusion_matrix_orders_labels_and_counts_missing_predictions():
    matrix = m.confusion_matrix(["en", "en", "fr", "de"], ["en", "fr", None, "de"], ["en", "fr", "de"])
    assert matrix.labels == ["en", "fr", "de", m.MISSING]
    assert matrix.counts == [[1, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0]]
    top = m.confusion_matrix(["x", "x", "y", "z"], ["x", "y", "y", "z"]).top(2)
    assert top.labels == ["x", "y"] and top.counts == [[1, 1], [0, 1]]


def test_frames_to_segments_and_segments_to_frames():
    assert frames_to_segments([0, 1, 1, 0, 1], 0.04) == [(0.04, 0.12), (0.16, 0.2)]
    mask = segments_to_frames([(0.2, 0.5)], 1.0)
    assert len(mask) == 100 and mask.sum() == 30 and mask[20] and not mask[19] and mask[49] and not mask[50]


def test_vad_frame_scores_and_boundary_errors():
    result = vad_metrics([[(0.2, 0.5)]], [[(0.3, 0.6)]], [1.0])
    # 30 reference frames, 30 predicted, 20 shared
    assert result["frame_precision"] == pytest.approx(200 / 3)
    assert result["frame_recall"] == pytest.approx(200 / 3)
    assert result["frame_f1"] == pytest.approx(200 / 3)
    assert result["onset_error_ms"] == pytest.approx(100.0)
    assert result["offset_error_ms"] == pytest.approx(100.0)
    assert result["missed_segments"] == 0 and result["false_alarm_segments"] == 0


def test_vad_matching_pairs_by_overlap_and_counts_leftovers():
    reference = [(0.0, 0.3), (0.5, 0.8)]
    predicted = [(0.1, 0.9), (1.5, 1.7)]
    assert match_segments(reference, predicted) == [(1, 0)]  # 0.3 s overlap beats 0.2 s
    result = vad_metrics([reference], [predicted], [2.0])
    assert result["onset_error_ms"] == pytest.approx(400.0)
    assert result["offset_error_ms"] == pytest.approx(100.0)
    assert result["missed_segments"] == 1 and result["false_alarm_segments"] == 1


def test_normalisation_to_higher_is_better_0_100():
    assert normalise_metric("asr/wer", 20.0) == 80.0
    assert normalise_metric("asr/wer", 150.0) == 0.0
    assert normalise_metric("asr/cer", 5.0) == 95.0
    assert normalise_metric("vad/onset_error_ms", 50.0) == pytest.approx(90.0)
    assert normalise_metric("vad/onset_error_ms", 900.0) == 0.0
    assert normalise_metric("st/bleu", 31.5) == 31.5
    assert normalise_metric("vad/missed_segments", 3.0) is None
    assert normalise_metric("lid/accuracy", math.nan) is None
    normalised = normalise_all({"asr/wer": 10.0, "lid/accuracy": 90.0, "vad/matched_segments": 2.0})
    assert normalised == {"asr/wer": 90.0, "lid/accuracy": 90.0}
    assert headline_scores(normalised) == {"asr": 90.0, "lid": 90.0}


def test_geometric_mean_is_zero_safe():
    assert geometric_mean({"a": 100.0, "b": 25.0}) == pytest.approx(50.0)
    assert geometric_mean([100.0, 0.0], epsilon=0.1) == pytest.approx(math.sqrt(10.0))
    assert geometric_mean([100.0, 0.0], epsilon=1.0) == pytest.approx(10.0)
    assert math.isnan(geometric_mean([]))
    with pytest.raises(ValueError):
        geometric_mean([1.0], epsilon=0.0)
