"""Gradient telemetry: records from a Gramian, the JSONL log, plots and the command line."""

from __future__ import annotations

import json

import pytest
import torch

from mtspeech.errors import UserError
from mtspeech.train.telemetry import main, mean_cosine, plot_telemetry, read_telemetry, telemetry_record, write_record


def test_record_from_a_gramian():
    J = torch.tensor([[1.0, 0.0], [-1.0, 1.0], [0.0, 2.0]], dtype=torch.float64)
    record = telemetry_record(7, ["a", "b", "c"], J @ J.T, [0.5, 1.0, 2.0], weights={"a": 1.0})
    assert record["step"] == 7
    assert record["cosine"][0][1] == pytest.approx(-1 / 2**0.5, abs=1e-6)
    assert record["cosine"][0][2] == pytest.approx(0.0)
    assert record["conflict_share"] == pytest.approx(1 / 3)  # only (a, b) conflicts
    assert record["grad_norm"] == pytest.approx({"a": 2.0, "b": 2**0.5, "c": 1.0})  # divided by the factors
    assert json.loads(json.dumps(record)) == record


def write_log(path, records):
    for record in records:
        write_record(path, record)


def test_mean_cosine_over_records_with_different_tasks(tmp_path):
    log = tmp_path / "telemetry.jsonl"
    eye = torch.eye(2, dtype=torch.float64)
    first = telemetry_record(0, ["a", "b"], torch.tensor([[1.0, -0.5], [-0.5, 1.0]], dtype=torch.float64), [1, 1])
    second = telemetry_record(1, ["a", "c"], eye, [1, 1])
    write_log(log, [first, second])
    tasks, means = mean_cosine(read_telemetry(log))
    assert tasks == ["a", "b", "c"]
    assert means[0][1] == pytest.approx(-0.5)
    assert means[0][2] == pytest.approx(0.0)
    assert means[1][2] != means[1][2]  # b and c never measured together: NaN


def test_plots_and_command_line(tmp_path, capsys):
    log = tmp_path / "telemetry.jsonl"
    gen = torch.Generator().manual_seed(0)
    for step in range(0, 500, 100):
        J = torch.randn(3, 10, generator=gen, dtype=torch.float64)
        weights = {"asr_ctc": 1.0, "intent": 0.5 + step / 1000}
        write_record(log, telemetry_record(step, ["asr_ctc", "intent", "lid"], J @ J.T, [1, 1, 1], weights=weights))
    written = plot_telemetry(log, tmp_path / "plots")
    assert [p.name for p in written] == ["cosine_latest.png", "cosine_mean.png", "weights.png", "conflicts.png"]
    assert all(p.stat().st_size > 1000 for p in written)
    assert main([str(log), str(tmp_path / "again")]) == 0
    assert "conflicts.png" in capsys.readouterr().out
    assert main([str(log)]) == 2


def test_bad_logs_are_user_errors(tmp_path):
    log = tmp_path / "telemetry.jsonl"
    log.write_text('{"step": 0, "tasks": ["a"], "cosine": [[1.0]]}\nnot json\n')
    with pytest.raises(UserError, match=r"telemetry.jsonl:2: not valid JSON"):
        read_telemetry(log)
    log.write_text('{"step": 0}\n')
    with pytest.raises(UserError, match="needs step, tasks, cosine"):
        read_telemetry(log)
    with pytest.raises(UserError, match="not found"):
        read_telemetry(tmp_path / "missing.jsonl")
    assert main([str(tmp_path / "missing.jsonl"), str(tmp_path)]) == 2
