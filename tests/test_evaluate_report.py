"""evaluate_predictions end to end: task gating, grouping, the report files, the JSON round trip and plots."""

from __future__ import annotations

import json
import math

import pytest
from lhotse import MonoCut, Recording, SupervisionSegment
from lhotse.audio import AudioSource

from mtspeech.data.schema import SlotSpan
from mtspeech.errors import UserError
from mtspeech.evaluate import evaluate_predictions, load_report, pareto_plot, write_report
from mtspeech.evaluate.compute import compute_metrics
from mtspeech.evaluate.groups import breakdown, group_records, noise_level
from mtspeech.evaluate.plots import pareto_front
from mtspeech.evaluate.records import (
    Prediction,
    Reference,
    UtteranceResult,
    read_results_jsonl,
    reference_from_cut,
    write_results_jsonl,
)
from mtspeech.evaluate.report import EvaluationOptions
from mtspeech.evaluate.scoring import geometric_mean


def _records() -> list[UtteranceResult]:
    """Four English (two accents, both genders, clean and noisy) and two French utterances, every task labelled."""
    slots = [SlotSpan("time", 4, 5, "eight")]
    english = [
        # (id, accent, gender, noise, snr, hypothesis, intent, emotion, language prediction)
        ("en1", "en-gb", "f", "none", None, "wake me up at eight", "alarm_set", "happy", "en"),
        ("en2", "en-gb", "m", "pink", 5.0, "wake me up at nine", "alarm_set", "sad", "en"),
        ("en3", "en-us", "f", "white", 25.0, "wake me up at eight", "alarm_query", "neutral", "fr"),
        ("en4", "en-us", "m", "none", None, "wake me up at eight", "alarm_set", "neutral", "en"),
    ]
    records = []
    for uid, accent, gender, noise, snr, hyp, intent, emotion, lang in english:
        reference = Reference(
            text="Wake me up at eight.",
            language="en",
            intent="alarm_set",
            slots=slots,
            translation={"fr": "réveille-moi à huit heures"},
            emotion="neutral" if uid != "en1" else "happy",
            accent=accent,
            gender=gender,
            speaker=uid,
            noise_type=noise,
            snr_db=snr,
            speech_segments=[(0.2, 0.5)],
        )
        prediction = Prediction(
            text=hyp,
            language=lang,
            intent=intent,
            slots=[SlotSpan("time", 4, 5, hyp.split()[-1])],
            translation={"fr": "réveille-moi à huit heures"},
            emotion=emotion,
            accent=accent,
            speech_segments=[(0.3, 0.6)],
        )
        records.append(UtteranceResult(uid, reference, prediction, duration=1.0))
    for uid, hyp in (("fr1", "bonjour le monde"), ("fr2", "bonsoir")):
        reference = Reference(text="bonjour le monde", language="fr", gender="f", noise_type="none")
        records.append(UtteranceResult(uid, reference, Prediction(text=hyp, language="fr"), duration=1.0))
    return records


def test_compute_metrics_over_every_task():
    metrics = compute_metrics(_records()).metrics
    # ASR: en2 substitutes one word (1 of 20 English words), fr2 loses 2 of 3 words and substitutes 1: 4 / 26
    assert metrics["asr/wer"] == pytest.approx(100 * 4 / 26)
    assert metrics["intent/accuracy"] == pytest.approx(75.0)
    assert metrics["intent/scenario_accuracy"] == 100.0 and metrics["intent/action_accuracy"] == pytest.approx(75.0)
    assert metrics["lid/accuracy"] == pytest.approx(100 * 5 / 6)
    assert metrics["emotion/accuracy"] == pytest.approx(75.0)  # only en2 (neutral said sad) is wrong
    assert metrics["emotion/uar"] == pytest.approx((100.0 + 200 / 3) / 2)  # happy 1/1, neutral 2/3
    assert metrics["accent/accuracy"] == 100.0
    assert metrics["slots/span_f1"] == pytest.approx(75.0)  # 3 of 4 fillers exact
    assert metrics["st/bleu"] == pytest.approx(100.0) and metrics["st/bleu_fr"] == pytest.approx(100.0)
    assert metrics["vad/frame_f1"] == pytest.approx(200 / 3)
    assert "speaker/accuracy" not in metrics  # references have speakers but nothing predicted them
    assert "gender/accuracy" not in metrics


def test_missing_prediction_counts_as_wrong_once_a_task_is_predicted():
    records = _records()
    records[0].prediction.intent = None
    assert compute_metrics(records).metrics["intent/accuracy"] == pytest.approx(50.0)
    for record in records:
        record.prediction.intent = None
    assert "intent/accuracy" not in compute_metrics(records).metrics


def test_report_score_is_the_geometric_mean_of_headline_scores():
    report = evaluate_predictions(_records(), {"min_group_size": 1})
    assert set(report.headline) == {"asr", "st", "intent", "slots", "lid", "vad", "emotion", "accent"}
    assert report.headline["asr"] == pytest.approx(100 - 100 * 4 / 26)
    assert report.headline["emotion"] == pytest.approx(report.metrics["emotion/uar"])
    assert report.score == pytest.approx(geometric_mean(report.headline, epsilon=0.1))
    assert report.counts["asr"] == 6 and report.counts["slots"] == 4
    assert report.confusions["lid"].labels == ["en", "fr"]
    assert report.confusions["lid"].counts == [[3, 1], [0, 2]]


def test_noise_levels():
    assert noise_level("none", None) == "clean"
    assert noise_level("pink", 25.0) == "snr 20+ dB"
    assert noise_level("pink", 10.0) == "snr 10-20 dB"
    assert noise_level("babble", 0.0) == "snr 0-10 dB"
    assert noise_level("white", -5.0) == "snr <0 dB"
    assert noise_level("white", None) == "noisy, snr unknown"
    assert noise_level(None, None) is None


def test_grouping_by_language_accent_gender_and_noise():
    records = _records()
    assert list(group_records(records, "noise")) == ["clean", "snr 20+ dB", "snr 0-10 dB"]
    assert {k: len(v) for k, v in group_records(records, "accent").items()} == {"en-gb": 2, "en-us": 2}
    groups = breakdown(records, ["language", "accent", "gender", "noise"], min_group_size=1)
    english, french = groups["language"].groups["en"], groups["language"].groups["fr"]
    assert english.size == 4 and english.metrics["asr/wer"] == pytest.approx(5.0)  # 1 / 20
    assert french.metrics["asr/wer"] == pytest.approx(50.0)  # 3 / 6
    gap = groups["language"].gaps["asr"]
    assert gap == {"best": "en", "worst": "fr", "gap": pytest.approx(45.0)}
    assert groups["accent"].groups["en-us"].metrics["lid/accuracy"] == pytest.approx(50.0)
    assert groups["gender"].groups["f"].size == 4


def test_min_group_size_skips_small_groups():
    groups = breakdown(_records(), ["noise"], min_group_size=2)
    assert list(groups["noise"].groups) == ["clean"]
    assert groups["noise"].skipped == {"snr 20+ dB": 1, "snr 0-10 dB": 1}
    assert groups["noise"].gaps == {}  # one group left: nothing to compare


def test_bad_options_and_inputs_are_user_errors():
    with pytest.raises(UserError, match="group dimension 'colour'"):
        EvaluationOptions.from_dict({"group_by": ["colour"]})
    with pytest.raises(UserError, match="min_grup_size"):
        EvaluationOptions.from_dict({"min_grup_size": 2})
    with pytest.raises(UserError, match="nothing to evaluate"):
        evaluate_predictions([])
    records = _records()
    with pytest.raises(UserError, match="'en1' appears twice"):
        evaluate_predictions([records[0], records[0]])


def test_write_report_files_and_json_round_trip(tmp_path):
    report = evaluate_predictions(_records(), {"min_group_size": 2, "vad_examples": 2}, metadata={"model": "m.pt"})
    paths = write_report(report, tmp_path / "eval")
    for key in ("json", "markdown", "html", "plot:confusion_lid", "plot:groups_language", "plot:vad_timelines"):
        assert paths[key].is_file() and paths[key].stat().st_size > 0, key
    html = paths["html"].read_text()
    assert html.count("<table>") >= 4 and "asr/wer" in html and "<td>en-gb</td>" in html
    assert "data:image/png;base64," in html and "plots/" not in html  # self-contained
    markdown = paths["markdown"].read_text()
    assert "| asr | asr/wer |" in markdown and "![lid](plots/confusion_lid.png)" in markdown
    assert "Skipped (too few utterances)" in markdown
    assert paths["plot:vad_timelines"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    json.loads(paths["json"].read_text())  # strict JSON: no NaN
    back = load_report(tmp_path / "eval")
    assert back.metrics == pytest.approx(report.metrics) and back.score == pytest.approx(report.score)
    assert back.confusions == report.confusions and back.metadata == {"model": "m.pt"}
    assert back.groups["language"].groups["en"].metrics == pytest.approx(report.groups["language"].groups["en"].metrics)
    assert [e["id"] for e in back.worst_transcripts] == ["fr2", "en2"]


def test_load_report_rejects_other_files(tmp_path):
    (tmp_path / "report.json").write_text('{"hello": 1}')
    with pytest.raises(UserError, match="not an mtspeech evaluation report"):
        load_report(tmp_path)


def test_results_jsonl_round_trip_and_errors(tmp_path):
    records = _records()
    records[0].prediction.speech_segments = None
    records[0].prediction.vad_frames = [0, 1, 1, 0]
    path = write_results_jsonl(records, tmp_path / "results.jsonl")
    back = read_results_jsonl(path)
    assert back == records
    assert back[0].prediction.vad_segments() == [(0.04, 0.12)]
    path.write_text('{"id": "x", "reference": {"txt": "a"}}\n')
    with pytest.raises(UserError, match=r"results.jsonl:1: .*unknown reference key 'txt'"):
        read_results_jsonl(path)


def test_reference_from_a_lhotse_cut_joins_supervisions():
    recording = Recording(
        "rec", [AudioSource("file", [0], "missing.wav")], sampling_rate=16000, num_samples=48000, duration=3.0
    )
    custom_first = {"intent": "alarm_set", "slots": [{"type": "time", "start": 1, "end": 2, "value": "eight"}]}
    custom_second = {"slots": [{"type": "date", "start": 0, "end": 1, "value": "monday"}], "emotion": "sad"}
    supervisions = [
        SupervisionSegment("s2", "rec", 1.5, 1.0, text="monday please", language="en", custom=custom_second),
        SupervisionSegment("s1", "rec", 0.2, 1.0, text="at eight", language="en", gender="f", custom=custom_first),
    ]
    cut = MonoCut(
        "cut",
        start=0.0,
        duration=2.4,
        channel=0,
        recording=recording,
        supervisions=supervisions,
        custom={"exact_segments": True, "noise": {"type": "pink", "snr_db": 7.5}},
    )
    ref = reference_from_cut(cut)
    assert ref.text == "at eight monday please"
    assert ref.slots == [SlotSpan("time", 1, 2, "eight"), SlotSpan("date", 2, 3, "monday")]
    assert (ref.intent, ref.emotion, ref.gender, ref.language) == ("alarm_set", "sad", "f", "en")
    assert ref.speech_segments == [(0.2, 1.2), (1.5, 2.4)]  # clipped to the cut
    assert (ref.noise_type, ref.snr_db) == ("pink", 7.5)
    cut.custom["exact_segments"] = False
    assert reference_from_cut(cut).speech_segments is None
    noise_only = MonoCut("noise", 0.0, 2.0, 0, recording=recording, custom={"exact_segments": True})
    assert (reference_from_cut(noise_only).text, reference_from_cut(noise_only).speech_segments) == ("", [])
    noise_only.custom = None
    assert reference_from_cut(noise_only).text is None


def test_pareto_front_and_plot(tmp_path):
    runs = [
        {"name": "a", "asr/wer": 10.0, "score": 50.0},
        {"name": "b", "asr/wer": 20.0, "score": 70.0},
        {"name": "c", "asr/wer": 25.0, "score": 60.0},  # dominated by b
        {"name": "d", "metrics": {"asr/wer": 5.0}, "score": 40.0},
        {"name": "e", "score": 99.0},  # no WER: not plotted, not on the front
    ]
    assert pareto_front(runs, "asr/wer", "score", x_higher=False, y_higher=True) == [0, 1, 3]
    assert pareto_front(runs, "asr/wer", "score", x_higher=True, y_higher=True) == [1, 2]
    path = pareto_plot(runs, "asr/wer", "score", tmp_path / "pareto.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(UserError, match="no run has both"):
        pareto_plot(runs, "asr/wer", "st/bleu", tmp_path / "none.png")


def test_report_without_any_headline_task_has_nan_score(tmp_path):
    records = [UtteranceResult("x", Reference(speaker="s1"), Prediction())]
    report = evaluate_predictions(records)
    assert report.headline == {} and math.isnan(report.score)
    paths = write_report(report, tmp_path)
    assert "n/a" in paths["markdown"].read_text()
