"""``mtspeech analyze`` (JSON, JSONL, TSV; same answers as the service) and ``mtspeech serve`` option parsing."""

from __future__ import annotations

import csv
import json

import pytest
from fastapi.testclient import TestClient
from serve_fixtures import (
    FAST,
    assert_same_answer,
    comparable,
    fast_analyzer,
    model_file,  # noqa: F401  (session fixture)
    write_wav,
)
from typer.testing import CliRunner

from mtspeech.cli import app
from mtspeech.cli.serve import parse_thresholds
from mtspeech.errors import UserError
from mtspeech.serve.app import create_app

runner = CliRunner()


def _said(result) -> str:
    """The command's output as one line (rich wraps long messages at the terminal width)."""
    return " ".join(result.output.split())


FAST_FLAGS = ["--beam-size", str(FAST["beam_size"]), "--max-tokens", str(FAST["max_tokens"]), "--no-progress"]


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("audio")
    return [write_wav(directory / f"clip{i}.wav", 0.7 + 0.3 * i, seed=60 + i) for i in range(3)]


def test_analyze_json_matches_the_service(model_file, audio_files, tmp_path) -> None:  # noqa: F811
    out = tmp_path / "answers.json"
    result = runner.invoke(
        app, ["analyze", *map(str, audio_files), "--model", str(model_file), "-o", str(out), *FAST_FLAGS]
    )
    assert result.exit_code == 0, result.output
    records = json.loads(out.read_text())
    assert [r["file"] for r in records] == [str(f) for f in audio_files]
    with TestClient(create_app(fast_analyzer(model_file))) as client:
        for record, path in zip(records, audio_files, strict=True):
            served = client.post("/v1/analyze", content=path.read_bytes()).json()
            assert_same_answer(comparable(record), comparable(served))
            assert record["audio"] == served["audio"]


def test_analyze_jsonl_and_tsv_with_chosen_tasks(model_file, audio_files, tmp_path) -> None:  # noqa: F811
    base = [
        "analyze",
        *map(str, audio_files),
        "--model",
        str(model_file),
        "--tasks",
        "asr,intent,slots,vad",
        *FAST_FLAGS,
    ]
    jsonl = tmp_path / "a.jsonl"
    assert runner.invoke(app, [*base, "--format", "jsonl", "-o", str(jsonl), "--batch-size", "2"]).exit_code == 0
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(records) == 3 and all(set(comparable(r)) == {"asr", "intent", "slots", "vad"} for r in records)
    tsv = tmp_path / "a.tsv"
    assert runner.invoke(app, [*base, "--format", "tsv", "-o", str(tsv)]).exit_code == 0
    rows = list(csv.DictReader(tsv.open(encoding="utf-8"), delimiter="\t"))
    assert len(rows) == 3 and rows[0]["file"] == str(audio_files[0])
    for row, record in zip(rows, records, strict=True):
        assert row["intent_label"] == record["intent"]["label"]
        assert row["asr_text"] == " ".join(record["asr"]["text"].split())
        assert float(row["duration"]) == record["audio"]["duration"]
        segments = [f"{s['start']:.2f}-{s['end']:.2f}" for s in record["vad"]["segments"]]
        assert row["vad_segments"] == " ".join(segments)


def test_analyze_reports_bad_files_and_bad_arguments(model_file, audio_files, tmp_path) -> None:  # noqa: F811
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    result = runner.invoke(app, ["analyze", str(audio_files[0]), str(broken), "--model", str(model_file), *FAST_FLAGS])
    assert result.exit_code == 1
    records = json.loads(result.stdout[result.stdout.index("[") :])
    assert "asr" in records[0] and "could not be decoded" in records[1]["error"]
    missing = runner.invoke(app, ["analyze", str(tmp_path / "nope.wav"), "--model", str(model_file)])
    assert missing.exit_code == 2 and "nope.wav" in _said(missing) and "not found" in _said(missing)
    bad_task = runner.invoke(app, ["analyze", str(audio_files[0]), "--model", str(model_file), "--tasks", "asr,mood"])
    assert bad_task.exit_code == 2 and "mood" in _said(bad_task)
    no_target = runner.invoke(
        app, ["analyze", str(audio_files[0]), "--model", str(model_file), "--tasks", "translation"]
    )
    assert no_target.exit_code == 2 and "--translate-to" in _said(no_target)
    not_a_model = runner.invoke(app, ["analyze", str(audio_files[0]), "--model", str(audio_files[1])])
    assert not_a_model.exit_code == 2 and "model file" in _said(not_a_model)


def test_analyze_translates_when_asked(model_file, audio_files, tmp_path) -> None:  # noqa: F811
    out = tmp_path / "t.json"
    args = ["analyze", str(audio_files[0]), "--model", str(model_file), "--tasks", "language", "--translate-to", "de"]
    assert runner.invoke(app, [*args, "-o", str(out), *FAST_FLAGS]).exit_code == 0
    (record,) = json.loads(out.read_text())
    assert record["translation"]["target"] == "de" and set(comparable(record)) == {"language", "translation"}


def test_serve_thresholds_are_parsed_and_checked() -> None:
    tasks = ("asr", "intent")
    assert parse_thresholds(["intent=0.6", "asr = 0.25"], tasks) == {"intent": 0.6, "asr": 0.25}
    for bad, words in [("intent", "TASK=VALUE"), ("mood=0.5", "unknown task"), ("intent=high", "not a number")]:
        with pytest.raises(UserError, match=words):
            parse_thresholds([bad], tasks)
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        parse_thresholds(["intent=1.5"], tasks)


def test_serve_refuses_a_missing_model_and_an_unknown_quantisation(model_file, tmp_path) -> None:  # noqa: F811
    missing = runner.invoke(app, ["serve", "--model", str(tmp_path / "none.pt")])
    assert missing.exit_code == 2 and "not found" in _said(missing)
    int4 = runner.invoke(app, ["serve", "--model", str(model_file), "--quantize", "int4"])
    assert int4.exit_code == 2 and "int4" in _said(int4)
    engine = runner.invoke(app, ["serve", "--model", str(model_file), "--quantize", "int8", "--int8-engine", "tpu"])
    assert engine.exit_code == 2 and "--int8-engine" in _said(engine) and "'tpu'" in _said(engine)
    float_engine = runner.invoke(app, ["serve", "--model", str(model_file), "--int8-engine", "onednn"])
    assert float_engine.exit_code == 2 and "--quantize int8" in _said(float_engine)
