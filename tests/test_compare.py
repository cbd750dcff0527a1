"""``mtspeech compare``: planning, the 1-vs-N summary, reports and plots, resuming; trained runs in the slow test."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from serve_fixtures import build_model_file
from train_fixtures import tiny_train_config, write_config
from typer.testing import CliRunner

from mtspeech.cli import app
from mtspeech.errors import UserError
from mtspeech.evaluate.compare import (
    CompareOptions,
    RunResult,
    RunSpec,
    _balancer_section,
    plan_runs,
    step_budget,
    training_config,
)
from mtspeech.evaluate.compare_report import default_pareto_pairs, summarise
from mtspeech.evaluate.predict import Predictor
from mtspeech.evaluate.report import EvaluationReport
from mtspeech.model.model import count_parameters
from mtspeech.model.package import load_model

FAST = ["--beam-size", "2", "--device", "cpu", "--no-progress", "--latency-utterances", "3", "--latency-repeats", "1"]


# --- planning -------------------------------------------------------------------------------------------------
def test_plan_runs_roles_balancers_and_unique_names(tmp_path: Path) -> None:
    config = tmp_path / "multi.yaml"
    config.write_text("max_steps: 1\n")
    other = tmp_path / "other" / "multi.yaml"
    other.parent.mkdir()
    other.write_text("max_steps: 1\n")
    run = tmp_path / "asr-run"
    run.mkdir()
    (run / "model.pt").write_bytes(b"")
    specs = plan_runs([config], [run, other], ["static", "pcgrad"])
    assert [(s.name, s.role, s.balancer) for s in specs] == [
        ("multi-static", "multi", "static"),
        ("multi-pcgrad", "multi", "pcgrad"),
        ("asr-run", "single", None),
        ("multi", "single", None),
    ]
    assert [s.name for s in plan_runs([config, other])] == ["multi", "multi-2"]
    with pytest.raises(UserError, match="unknown balancer 'dwb'"):
        plan_runs([config], [], ["dwb"])
    with pytest.raises(UserError, match="without a model.pt"):
        plan_runs([tmp_path / "other"])
    with pytest.raises(UserError, match="nothing to compare"):
        plan_runs([], [])
    with pytest.raises(UserError, match="needs a multi-task training config"):
        plan_runs([run], [], ["dwa"])


def test_balancer_switch_keeps_weights_and_drops_other_methods_options() -> None:
    raw = {"balancer": {"name": "dwa", "temperature": 3.0, "weights": {"asr_ctc": 2.0}, "telemetry_every": 5}}
    assert _balancer_section(raw, "pcgrad") == {"weights": {"asr_ctc": 2.0}, "telemetry_every": 5, "name": "pcgrad"}
    assert _balancer_section(raw, "dwa")["temperature"] == 3.0
    assert _balancer_section({}, "static") == {"name": "static"}


def test_training_config_applies_budget_output_dir_balancer_and_overrides(tmp_path: Path) -> None:
    base = tiny_train_config(tmp_path / "corpus", tmp_path / "elsewhere", max_steps=50)
    base["balancer"] = {"name": "dwa", "temperature": 3.0, "telemetry_every": 2}
    path = write_config(tmp_path / "multi.yaml", base)
    spec = plan_runs([path], [], ["pcgrad"])[0]
    options = CompareOptions(out=tmp_path / "out", train_overrides=["optim.lr=0.01"])
    assert step_budget([spec], options) == 50
    config = training_config(spec, options, 7)
    assert config.max_steps == 7 and config.output_dir == tmp_path / "out" / "runs" / "multi-pcgrad"
    assert config.balancer.name == "pcgrad" and config.balancer.telemetry_every == 2
    assert config.optim.lr == 0.01
    with pytest.raises(UserError, match="--steps must be >= 1"):
        step_budget([spec], CompareOptions(out=tmp_path, steps=0))


# --- summary ----------------------------------------------------------------------------------------------------
def _result(name: str, role: str, scores: dict[str, float], parameters: int, seconds: float) -> RunResult:
    metrics = {"asr": ("asr/wer", lambda s: 100 - s), "intent": ("intent/accuracy", lambda s: s)}
    metrics |= {"lid": ("lid/accuracy", lambda s: s)}
    values = {metrics[t][0]: metrics[t][1](s) for t, s in scores.items()}
    report = EvaluationReport(
        num_utterances=10,
        metrics=values,
        counts=dict.fromkeys(scores, 10),
        normalised={metrics[t][0]: s for t, s in scores.items()},
        headline=dict(scores),
        score=math.exp(sum(math.log(s) for s in scores.values()) / len(scores)),
        options={"epsilon": 0.1},
    )
    latency = {"seconds": seconds, "ms_per_utterance": seconds * 100, "real_time_factor": seconds / 20}
    spec = RunSpec(name, role, Path(f"{name}.yaml"))  # type: ignore[arg-type]
    return RunResult(
        spec, Path(name) / "model.pt", report, dict.fromkeys(scores, "head"), parameters, 100, "trained", latency
    )


def test_summary_puts_one_model_against_the_best_single_run_per_task() -> None:
    results = [
        _result("multi", "multi", {"asr": 80.0, "intent": 60.0, "lid": 90.0}, 1_000_000, 0.5),
        _result("asr", "single", {"asr": 85.0}, 800_000, 0.4),
        _result("slu", "single", {"intent": 70.0, "asr": 50.0}, 900_000, 0.3),
    ]
    for result, seconds in zip(results, (600.0, 240.0, 300.0), strict=True):
        result.train_seconds = seconds
    context = {"steps": 100, "data": "d", "split": "test", "utterances": 10, "latency_utterances": 10}
    summary = summarise(results, {**context, "latency_repeats": 1, "device": "cpu"})
    singles = summary["singles"]
    assert singles["tasks"]["asr"]["run"] == "asr" and singles["tasks"]["intent"]["run"] == "slu"
    assert "lid" not in singles["tasks"]
    assert singles["parameters"] == 1_700_000 and math.isclose(singles["latency"]["seconds"], 0.7)
    assert math.isclose(singles["score"], math.sqrt(85.0 * 70.0))
    assert summary["shared_tasks"] == ["asr", "intent"]
    multi, combined = summary["columns"]
    assert math.isclose(multi["shared_score"], math.sqrt(80.0 * 60.0))
    rows = {row[0].split(" (")[0]: row[1:] for row in summary["table"]["rows"]}
    assert rows["asr: asr/wer"] == ["20.00", "15.00 (asr)"] and rows["lid: lid/accuracy"] == ["90.00", "n/a"]
    assert rows["parameters"] == ["1.00 M", "1.70 M (2 models)"]
    assert rows["training time, minutes"] == ["10.0", "9.0"]
    assert any(label.startswith("geometric mean, shared tasks: asr, intent") for label in rows)
    assert "0.59x the parameters" in summary["findings"][0] and "worse on asr, intent" in summary["findings"][0]
    assert summary["pareto"] == [{"x": "asr/wer", "y": "intent/accuracy"}]
    json.dumps(summary, allow_nan=False)


def test_default_pareto_pairs() -> None:
    both = [{"scores": {"asr": 1, "lid": 1, "vad": 1}}, {"scores": {"lid": 1, "vad": 1, "asr": 1}}]
    assert default_pareto_pairs(both) == [("asr/wer", "lid/accuracy"), ("asr/wer", "vad/frame_f1")]
    assert default_pareto_pairs([{"scores": {"intent": 1, "lid": 1}}]) == [("intent/accuracy", "lid/accuracy")]
    assert default_pareto_pairs([{"scores": {"lid": 1}}]) == []


# --- end to end with existing model files -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compare-models")
    runs = {"multi": ("asr_ctc", "intent", "lid", "vad"), "asr": ("asr_ctc",), "intent": ("intent",)}
    for seed, (name, tasks) in enumerate(runs.items()):
        (root / name).mkdir()
        build_model_file(root / name / "model.pt", tasks=tasks, seed=seed)
    return {name: root / name for name in runs}


def test_compare_existing_runs_writes_table_plots_and_resumes(
    model_runs: dict[str, Path], tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    args = ["compare", "--runs", str(model_runs["multi"]), "--single", str(model_runs["asr"])]
    args += [str(model_runs["intent"] / "model.pt"), "--data", str(tiny_corpus), "-o", str(out), *FAST]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2 single-task models" in result.output and "geometric mean" in result.output
    summary = json.loads((out / "compare.json").read_text())
    assert [c["name"] for c in summary["columns"]] == ["multi", "2 single-task models"]
    sizes = {name: count_parameters(load_model(path / "model.pt").model)["total"] for name, path in model_runs.items()}
    assert summary["runs"]["multi"]["parameters"] == sizes["multi"]
    assert summary["singles"]["parameters"] == sizes["asr"] + sizes["intent"]
    assert set(summary["runs"]["multi"]["scores"]) == {"asr", "intent", "lid", "vad"}
    assert set(summary["singles"]["tasks"]) == {"asr", "intent"}
    assert all(run["latency"]["seconds"] > 0 for run in summary["runs"].values())
    plots = [p["plot"] for p in summary["pareto"]]
    assert plots == ["plots/pareto_asr_wer__intent_accuracy.png"]
    assert all((out / p).read_bytes()[:4] == b"\x89PNG" for p in [*plots, "plots/scores.png"])
    markdown = (out / "compare.md").read_text()
    assert "| asr: asr/wer (lower is better) |" in markdown and "(eval/multi/report.md)" in markdown
    for name in ("multi", "asr", "intent"):
        assert (out / "eval" / name / "report.md").is_file()

    def no_decoding(self, cuts):  # a second run must reuse every saved evaluation
        raise AssertionError("evaluation was not reused")

    monkeypatch.setattr(Predictor, "predict", no_decoding)
    again = CliRunner().invoke(app, args + ["--pareto", "asr/wer:lid/accuracy"])
    assert again.exit_code == 0, again.output
    assert "reused the evaluation" in again.output or "reused the evaluation" in str(again.stderr_bytes)
    summary = json.loads((out / "compare.json").read_text())
    assert summary["pareto"][0]["x"] == "asr/wer" and summary["pareto"][0]["plot"].endswith("lid_accuracy.png")


def test_a_run_stopped_by_its_time_budget_is_reused(model_runs: dict[str, Path], tmp_path: Path) -> None:
    from types import SimpleNamespace

    from mtspeech.evaluate.compare import obtain_model
    from mtspeech.model.package import save_model

    loaded = load_model(model_runs["asr"] / "model.pt")
    spec = RunSpec("asr", "single", tmp_path / "asr.yaml")
    config = SimpleNamespace(output_dir=str(tmp_path / "run"))
    (tmp_path / "run").mkdir()

    def export(**metadata: object) -> None:
        save_model(tmp_path / "run" / "model.pt", loaded.model, loaded.tokenizer, loaded.vocabs, metadata)

    export(trained_steps=7, stopped_by="max_minutes", train_config={"max_steps": 10})
    assert obtain_model(spec, config, 10) == (tmp_path / "run" / "model.pt", "reused")
    with pytest.raises(UserError, match="trained for 7 steps, not 12"):
        obtain_model(spec, config, 12)
    export(trained_steps=7, stopped_by="max_steps", train_config={"max_steps": 10})
    with pytest.raises(UserError, match="trained for 7 steps, not 10"):
        obtain_model(spec, config, 10)


def test_compare_user_errors(model_runs: dict[str, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["compare", "--runs", str(model_runs["multi"]), "-o", str(tmp_path), *FAST])
    assert result.exit_code == 2 and "--data" in result.output
    result = runner.invoke(app, ["compare", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "missing.yaml" in result.output
    result = runner.invoke(app, ["compare", str(model_runs["multi"]), "--pareto", "wer-intent"])
    assert result.exit_code == 2 and "TASK/METRIC" in result.output
    result = runner.invoke(app, ["compare", str(model_runs["multi"]), "--setp", "3"])
    assert result.exit_code == 2 and "unknown option '--setp'" in result.output


# --- end to end with training ------------------------------------------------------------------------------------
@pytest.mark.slow  # two tiny trainings of 2 steps, evaluation and timing: about 30-60 s on 2 busy cores
def test_compare_trains_multi_and_single_with_the_same_budget(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tiny_train_config(tiny_corpus, tmp_path / "ignored", max_steps=50, tensorboard=False, plots=False)
    multi = write_config(tmp_path / "multi.yaml", base)
    single = dict(base, model={"encoder": {"preset": "tiny", "num_blocks": 1}, "tasks": {"lid": {}}})
    single_path = write_config(tmp_path / "lid.yaml", single)
    out = tmp_path / "out"
    args = ["compare", str(multi), "--single", str(single_path), "--steps", "2", "-o", str(out)]
    args += ["--max-utterances", "6", "--beam-size", "2", "--device", "cpu"]
    args += ["--no-progress", "--latency-utterances", "2", "--latency-repeats", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "compare.json").read_text())
    assert summary["steps"] == 2 and summary["utterances"] == 6
    for name in ("multi", "lid"):
        run = summary["runs"][name]
        assert run["steps"] == 2 and run["status"] == "trained"
        assert (out / "runs" / name / "model.pt").is_file()
    assert set(summary["runs"]["lid"]["tasks"]) == {"lid"}
    assert {"asr", "intent", "lid", "vad"} <= set(summary["runs"]["multi"]["tasks"])
    assert summary["pareto"] and all((out / p["plot"]).is_file() for p in summary["pareto"])
    assert "| lid: lid/accuracy (higher is better) |" in (out / "compare.md").read_text()

    from mtspeech.train import trainer

    monkeypatch.setattr(trainer, "train", lambda *a, **k: pytest.fail("finished runs must not train again"))
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert {r["status"] for r in json.loads((out / "compare.json").read_text())["runs"].values()} == {"reused"}
    stale = CliRunner().invoke(app, [*args[:5], "3", *args[6:]])
    assert stale.exit_code == 2 and "trained for 2 steps, not 3" in stale.output
