"""``mtspeech evaluate`` and the predictor behind it: a tiny random model (every task) on the tiny synthetic corpus."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from serve_fixtures import build_model_file
from typer.testing import CliRunner

from mtspeech.cli import app
from mtspeech.data.corpus import load_cuts
from mtspeech.errors import UserError
from mtspeech.evaluate.predict import (
    EVAL_TASKS,
    PredictOptions,
    Predictor,
    make_batches,
    predict_cuts,
    prediction_sources,
    resolve_decoding,
)
from mtspeech.evaluate.records import read_results_jsonl
from mtspeech.evaluate.report import load_report
from mtspeech.evaluate.scoring import HEADLINE
from mtspeech.evaluate.slurp import read_slurp_predictions
from mtspeech.model.package import load_model, save_model

FAST = ["--beam-size", "2", "--max-tokens", "6", "--device", "cpu", "--no-progress", "--min-group-size", "1"]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model_file(tmp_path_factory.mktemp("eval-model") / "model.pt", max_new_tokens=6)


@pytest.fixture(scope="module")
def evaluated(model_file: Path, tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("eval-out")
    slurp = out / "slurp" / "predictions.jsonl"
    result = CliRunner().invoke(
        app,
        ["evaluate", "-m", str(model_file), "-d", str(tiny_corpus), "-o", str(out), "--slurp-predictions", str(slurp)]
        + FAST,
    )
    assert result.exit_code == 0, result.output
    return out, result.output


def test_evaluate_writes_reports_predictions_and_slurp_file(evaluated, tiny_corpus: Path) -> None:
    out, output = evaluated
    for name in ("report.md", "report.html", "report.json", "predictions.jsonl"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert list((out / "plots").glob("*.png")), "no plots"
    assert (out / "report.html").read_text().count("data:image/png;base64,") >= 1
    records = read_results_jsonl(out / "predictions.jsonl")
    assert [r.id for r in records] == [c.id for c in load_cuts(tiny_corpus, "test")]
    slurp = read_slurp_predictions(out / "slurp" / "predictions.jsonl")
    assert len(slurp) == len(records)  # the intent head answers every utterance
    assert "score" in output and "asr/wer" in output


def test_every_task_of_the_model_is_scored_within_0_100(evaluated, model_file: Path) -> None:
    out, _ = evaluated
    report = load_report(out)
    sources = prediction_sources(load_model(model_file))
    assert set(sources) == set(EVAL_TASKS)  # the fixture model has every head and a decoder for all prompts
    assert set(report.headline) == set(sources)
    for task in sources:
        assert HEADLINE[task] in report.metrics, task
    assert all(0.0 <= v <= 100.0 for v in report.normalised.values())
    assert 0.0 < report.score <= 100.0
    assert report.metadata["decoding"] == "attention_rescoring" and report.metadata["split"] == "test"
    assert {"language", "accent", "gender", "noise"} <= set(report.groups)


def test_bad_model_and_corpus_paths_are_user_errors(model_file: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", "-m", str(tmp_path / "none.pt"), "-d", str(tiny_corpus)] + FAST)
    assert result.exit_code == 2 and "model file not found" in result.output and "none.pt" in result.output
    result = runner.invoke(app, ["evaluate", "-m", str(model_file), "-d", str(tmp_path / "nowhere")] + FAST)
    assert result.exit_code == 2 and "corpus directory not found" in result.output
    result = runner.invoke(app, ["evaluate", "-m", str(model_file), "-d", str(tiny_corpus), "--split", "dev"] + FAST)
    assert result.exit_code == 2 and "splits present" in result.output
    result = runner.invoke(app, ["evaluate", "-m", str(model_file), "-d", str(tiny_corpus), "--decoding", "greedy"])
    assert result.exit_code == 2 and "ctc_prefix_beam" in result.output
    result = runner.invoke(app, ["evaluate", "-m", str(model_file), "-d", str(tiny_corpus), "--tasks", "asr,nlu"])
    assert result.exit_code == 2 and "nlu" in result.output


def test_tasks_option_and_max_utterances_restrict_the_evaluation(
    model_file: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    args = ["evaluate", "-m", str(model_file), "-d", str(tiny_corpus), "-o", str(tmp_path), "--tasks", "lid,intent"]
    result = CliRunner().invoke(app, args + ["--max-utterances", "5"] + FAST)
    assert result.exit_code == 0, result.output
    report = load_report(tmp_path)
    assert set(report.headline) == {"lid", "intent"} and report.num_utterances == 5
    records = read_results_jsonl(tmp_path / "predictions.jsonl")
    assert all(r.prediction.text is None and r.prediction.language is not None for r in records)


def test_make_batches_packs_by_padded_duration() -> None:
    class Cut:
        def __init__(self, id: str, duration: float) -> None:
            self.id, self.duration = id, duration

    cuts = [Cut(f"c{i}", d) for i, d in enumerate([1.0, 5.0, 2.0, 2.5, 9.0, 1.5, 0.5])]
    batches = make_batches(cuts, batch_duration=6.0)
    assert sorted(c.id for b in batches for c in b) == sorted(c.id for c in cuts)
    assert [c.id for c in batches[0]] == ["c4"]  # longest first, alone when over the budget
    for batch in batches:
        assert batch == sorted(batch, key=lambda c: -c.duration)
        assert len(batch) == 1 or len(batch) * batch[0].duration <= 6.0


def test_predictions_do_not_depend_on_batching(model_file: Path, tiny_corpus: Path) -> None:
    loaded = load_model(model_file)
    cuts = list(load_cuts(tiny_corpus, "test"))[:6]
    options = {"decoding": "ctc_greedy", "tasks": ("asr", "lid", "emotion", "gender", "vad")}
    one_by_one = predict_cuts(loaded, cuts, PredictOptions(batch_duration=0.1, **options))
    together = predict_cuts(loaded, cuts, PredictOptions(batch_duration=1000.0, **options))
    assert [r.id for r in one_by_one] == [c.id for c in cuts] == [r.id for r in together]
    for a, b in zip(one_by_one, together, strict=True):
        assert (a.prediction.text, a.prediction.language, a.prediction.emotion, a.prediction.gender) == (
            b.prediction.text,
            b.prediction.language,
            b.prediction.emotion,
            b.prediction.gender,
        )
        assert len(a.prediction.speech_segments) == len(b.prediction.speech_segments)
        for start, end in a.prediction.speech_segments:
            assert 0.0 <= start < end <= a.duration + 1e-6


def test_untrained_decoder_prompts_are_not_evaluated(model_file: Path, tmp_path: Path) -> None:
    """A decoder trained only to transcribe must not be scored on translation or SLU."""
    loaded = load_model(model_file)
    train_config = {"data": {"decoder_tasks": ["transcribe", "slu"], "decoder_task_weights": {"slu": 0.0}}}
    path = save_model(tmp_path / "m.pt", loaded.model, loaded.tokenizer, {}, {"train_config": train_config})
    restricted = load_model(path)
    sources = prediction_sources(restricted)
    assert sources == {"asr": "asr_ctc + decoder", "vad": "vad head"}  # no vocabularies: no classifier heads
    assert resolve_decoding(restricted, PredictOptions()).mode == "attention_rescoring"
    with pytest.raises(UserError, match="predicts none of the requested tasks"):
        Predictor(restricted, PredictOptions(tasks=("st",)))


def test_timings_cover_every_stage(model_file: Path, tiny_corpus: Path) -> None:
    predictor = Predictor(load_model(model_file), PredictOptions(beam_size=2, max_tokens=6))
    records = predictor.predict(list(load_cuts(tiny_corpus, "test"))[:3])
    timings = predictor.timings.to_dict()
    assert timings["utterances"] == 3 and math.isclose(timings["audio_seconds"], sum(r.duration for r in records))
    assert {"features", "encoder", *predictor.sources} <= set(timings["stages"])
    assert timings["model_seconds"] > 0 and json.dumps(timings)


def test_intents_are_scored_from_the_transcript_head_when_the_model_has_one(tiny_corpus: Path, tmp_path: Path) -> None:
    path = build_model_file(tmp_path / "m.pt", tasks=("asr_ctc", "intent", "intent_text"), max_new_tokens=6)
    loaded = load_model(path)
    assert prediction_sources(loaded)["intent"] == "intent_text head"
    chosen = loaded.vocabs["intent"].labels[0]
    with torch.no_grad():  # only the always-on bucket speaks: the transcript head says `chosen` every time
        loaded.model.tasks["intent_text"].head["bag"].weight[0, 0] = 1.0
    cuts = list(load_cuts(tiny_corpus, "test"))[:4]
    records = Predictor(loaded, PredictOptions(beam_size=2, max_tokens=6)).predict(cuts)
    assert [r.prediction.intent for r in records] == [chosen] * 4
    pooled = Predictor(load_model(build_model_file(tmp_path / "p.pt", tasks=("asr_ctc", "intent"))), PredictOptions())
    assert [r.prediction.intent for r in pooled.predict(cuts)] != [chosen] * 4  # the pooled head would differ
