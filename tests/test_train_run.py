"""End-to-end trainer runs on a tiny corpus: outputs, exact resume, checkpoint errors."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch
from train_fixtures import tiny_train_config, write_config
from typer.testing import CliRunner

import mtspeech
from mtspeech.cli import app
from mtspeech.errors import UserError
from mtspeech.train.config import load_train_config
from mtspeech.train.run_log import read_log
from mtspeech.train.trainer import Trainer, train

pytestmark = pytest.mark.slow  # each test trains a tiny model for a few steps (about 10-30 s on 2 cores)


@pytest.fixture(scope="module")
def corpus(tiny_corpus: Path) -> Path:
    """The synthetic tiny corpus (every task's labels) from tests/conftest.py."""
    return tiny_corpus


@pytest.fixture(scope="module")
def straight_run(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six uninterrupted steps (checkpoints at 3 and 6); shared by several tests."""
    root = tmp_path_factory.mktemp("straight")
    config = load_train_config(write_config(root / "cfg.yaml", tiny_train_config(corpus, root / "run")))
    result = train(config)
    assert result.steps == 6 and result.stopped_by == "max_steps"
    return root / "run"


def _train_losses(run_dir: Path) -> dict[int, dict[str, float]]:
    return {
        r["step"]: {k: v for k, v in r.items() if k.startswith("loss/")}
        for r in read_log(run_dir / "train.jsonl")
        if r["kind"] == "train"
    }


def test_run_writes_logs_plots_checkpoints_and_model(straight_run: Path) -> None:
    records = read_log(straight_run / "train.jsonl")
    train_steps = [r["step"] for r in records if r["kind"] == "train"]
    assert train_steps == [1, 2, 3, 4, 5, 6]
    valid = [r for r in records if r["kind"] == "valid"]
    assert [r["step"] for r in valid] == [3, 6]
    assert {"asr_ctc.cer", "intent.accuracy", "lid.accuracy", "vad.f1", "loss/total"} <= set(valid[-1])
    assert all(math.isfinite(r["loss/total"]) for r in records if r["kind"] == "train")

    plots = {p.name for p in (straight_run / "plots").glob("*.png")}
    assert {"overview.png", "asr_ctc.png", "decoder.png", "intent.png", "lid.png", "vad.png"} <= plots
    assert all((straight_run / "plots" / name).read_bytes()[:4] == b"\x89PNG" for name in plots)
    assert list((straight_run / "tensorboard").glob("events.out.tfevents.*"))
    assert (straight_run / "telemetry.jsonl").read_text().strip()

    checkpoints = sorted(p.name for p in (straight_run / "checkpoints").iterdir())
    assert checkpoints == ["best.pt", "step-00000003.pt", "step-00000006.pt"]
    assert not list(straight_run.rglob(".*.tmp*")), "temporary files left behind"

    loaded = mtspeech.load(straight_run / "model.pt")
    assert set(loaded.model.tasks) == {"asr_ctc", "decoder", "intent", "lid", "vad"}
    assert loaded.tokenizer.vocab_size == loaded.model.config.tasks["decoder"].vocab_size
    assert loaded.vocabs["intent"].labels and loaded.metadata["trained_steps"] == 6
    assert loaded.metadata["stopped_by"] == "max_steps" and loaded.metadata["train_seconds"] > 0
    features = torch.randn(2, 120, 80)
    out = loaded.model.predict(features, torch.tensor([120, 90]), tasks=["intent", "lid", "vad"])
    assert len(out["intent"]) == 2 and len(out["vad"][1]) < len(out["vad"][0])


def test_resume_continues_the_exact_loss_sequence(
    straight_run: Path, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_train_config(write_config(tmp_path / "cfg.yaml", tiny_train_config(corpus, tmp_path / "run")))
    original = Trainer._stop_reason

    def stop_after_three(self, run, progress):  # noqa: ANN001, ANN202 - a SIGTERM arriving during step 3
        return "signal" if progress.step == 3 else original(self, run, progress)

    monkeypatch.setattr(Trainer, "_stop_reason", stop_after_three)
    interrupted = train(config)
    assert interrupted.steps == 3 and interrupted.stopped_by == "signal" and interrupted.model_path is None
    monkeypatch.setattr(Trainer, "_stop_reason", original)

    resumed = train(config, resume=True)
    assert resumed.steps == 6 and resumed.model_path is not None

    expected, got = _train_losses(straight_run), _train_losses(tmp_path / "run")
    assert sorted(got) == [1, 2, 3, 4, 5, 6], "the resumed log must hold each step once"
    for step in range(1, 7):
        assert expected[step].keys() == got[step].keys()
        for key, value in expected[step].items():
            assert got[step][key] == pytest.approx(value, rel=1e-6, abs=1e-6), (step, key)
    final_straight = torch.load(straight_run / "checkpoints" / "step-00000006.pt", weights_only=True)["model"]
    final_resumed = torch.load(tmp_path / "run" / "checkpoints" / "step-00000006.pt", weights_only=True)["model"]
    for key, value in final_straight.items():
        torch.testing.assert_close(final_resumed[key], value, rtol=1e-5, atol=1e-6)


def test_the_saved_run_config_trains_again(straight_run: Path) -> None:
    from mtspeech.train.config import config_to_dict

    saved = load_train_config(straight_run / "config.yaml")  # every default written out, balancer options too
    original = load_train_config(straight_run.parent / "cfg.yaml")
    # The model section is saved resolved (vocabulary and class sizes filled in); everything else is as run.
    assert {**config_to_dict(saved), "model": None} == {**config_to_dict(original), "model": None}
    assert saved.model.tasks.keys() == original.model.tasks.keys()
    assert saved.model.tasks["intent"].num_classes is not None and original.model.tasks["intent"].num_classes is None


def test_corrupted_checkpoint_is_a_user_error_naming_the_file(straight_run: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(straight_run, run_dir)
    cfg = write_config(tmp_path / "cfg.yaml", tiny_train_config(Path(read_corpus(straight_run)), run_dir))
    latest = run_dir / "checkpoints" / "step-00000006.pt"
    latest.write_bytes(latest.read_bytes()[:1000])  # torn write
    result = CliRunner().invoke(app, ["train", str(cfg), "--resume"])
    assert result.exit_code == 2, result.output
    output = result.output.replace("\n", "")  # rich wraps long lines
    assert str(latest) in output and "cannot read checkpoint" in output and "Traceback" not in output

    torch.save({"state_dict": {}}, latest)  # a foreign torch file
    with pytest.raises(UserError, match="not an mtspeech training checkpoint") as err:
        train(load_train_config(cfg), resume=True)
    assert str(latest) in str(err.value)


def test_fresh_run_refuses_a_directory_with_checkpoints(straight_run: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(straight_run, run_dir)
    cfg = write_config(tmp_path / "cfg.yaml", tiny_train_config(Path(read_corpus(straight_run)), run_dir))
    with pytest.raises(UserError, match="--resume"):
        train(load_train_config(cfg))


def test_resume_with_a_different_model_is_refused(straight_run: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(straight_run, run_dir)
    changed = tiny_train_config(Path(read_corpus(straight_run)), run_dir, model={"encoder": {"num_blocks": 2}})
    with pytest.raises(UserError, match="differs from the checkpoint's in model"):
        train(load_train_config(write_config(tmp_path / "cfg.yaml", changed)), resume=True)


def test_resume_without_checkpoint_is_a_user_error(corpus: Path, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "cfg.yaml", tiny_train_config(corpus, tmp_path / "run"))
    with pytest.raises(UserError, match="no step-\\*.pt checkpoint"):
        train(load_train_config(cfg), resume=True)


def read_corpus(run_dir: Path) -> str:
    """The corpus path a finished run was trained on (from its resolved config)."""
    import yaml

    return yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["corpora"][0]["path"]


def test_synth_tiny_recipe_trains_from_the_command_line(corpus: Path, tmp_path: Path) -> None:
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "synth-tiny.yaml"
    overrides = [f"data.corpora.0.path={corpus}", f"output_dir={tmp_path / 'run'}", "max_steps=2", "valid_every=2"]
    overrides += ["progress_bar=false", "data.valid_max_cuts=3", "optim.precision=bf16"]  # CPU autocast
    result = CliRunner().invoke(app, ["train", str(recipe), *[arg for o in overrides for arg in ("--set", o)]])
    assert result.exit_code == 0, result.output
    assert "trained 2 steps" in result.output
    loaded = mtspeech.load(tmp_path / "run" / "model.pt")
    assert {"slots", "intent_text"} <= set(loaded.model.tasks) and loaded.metadata["trained_steps"] == 2
    text_intent = loaded.model.tasks["intent_text"].config  # filled from the run's tokenizer:
    assert text_intent.word_start_ids and text_intent.char_ngrams == [3, 4, 5]
    assert text_intent.piece_texts is not None and len(text_intent.piece_texts) == text_intent.vocab_size


def test_model_carries_the_global_cmvn_fitted_on_the_train_cuts(straight_run: Path, corpus: Path) -> None:
    """The exported front end normalises with statistics of the training audio, so serving matches training."""
    from mtspeech.data.corpus import load_cuts
    from mtspeech.data.features import LogMelFrontend, compute_global_cmvn

    frontend = mtspeech.load(straight_run / "model.pt").model.frontend
    mean, std = compute_global_cmvn(list(load_cuts(corpus, "train")), LogMelFrontend(), apply=False)
    assert torch.allclose(frontend.cmvn_mean, mean.float(), atol=1e-3)
    assert torch.allclose(frontend.cmvn_istd, 1.0 / std.float(), rtol=1e-3)
    assert float(frontend.cmvn_mean.abs().mean()) > 1.0  # raw log-mels are far from zero: CMVN did something


def test_compiled_encoder_blocks_train_like_eager_ones(corpus: Path, tmp_path: Path) -> None:
    # Without dropout in the encoder: compiled blocks draw their dropout masks from inductor's own generator.
    encoder = {"encoder": {"preset": "tiny", "num_blocks": 1, "dropout": 0.0, "attention_dropout": 0.0}}
    losses = {}
    for compiled in (False, True):
        run_dir = tmp_path / f"compile-{compiled}"
        config = tiny_train_config(corpus, run_dir, compile=compiled, max_steps=3, valid_every=3, model=encoder)
        result = train(load_train_config(write_config(tmp_path / f"{compiled}.yaml", config)))
        assert result.steps == 3 and result.model_path is not None
        losses[compiled] = _train_losses(run_dir)
    # Same seed, same batches: only the fused kernels' rounding differs. How much depends on the CPU's vector
    # units (1.06e-4 relative by step 2 on an AVX-512 Xeon, under 1e-4 on an AVX2 EPYC) and Adam's first steps
    # amplify it; a wrong compiled graph (a lost residual, a mask) would move the losses far more.
    for step in (1, 2, 3):
        for key, value in losses[False][step].items():
            assert losses[True][step][key] == pytest.approx(value, rel=1e-3, abs=1e-5), (step, key)
    loaded = mtspeech.load(result.model_path)  # plain parameter names: loads into an uncompiled model
    assert loaded.metadata["trained_steps"] == 3


def test_a_head_that_mixes_encoder_layers_trains_its_weights(corpus: Path, tmp_path: Path) -> None:
    mixing = {"model": {"tasks": {"intent": {"encoder_layers": "mix"}}}}
    balancer = {"name": "pcgrad", "representation": True}
    refused = tiny_train_config(corpus, tmp_path / "refused", balancer=balancer, **mixing)
    with pytest.raises(UserError, match=r"balancer\.representation.*intent"):
        train(load_train_config(write_config(tmp_path / "refused.yaml", refused)))
    # pcgrad without the representation shortcut: per-task gradients reach the encoder through the mix too.
    config = tiny_train_config(corpus, tmp_path / "run", max_steps=3, balancer={"name": "pcgrad"}, **mixing)
    train(load_train_config(write_config(tmp_path / "run.yaml", config)))
    weights = mtspeech.load(tmp_path / "run" / "model.pt").model.tasks["intent"].head["layer_mix"].logits
    assert weights.numel() == 2 and bool((weights != 0).any())  # one block + the subsampling; they start at 0


def test_a_warming_up_head_trains_alone_and_leaves_the_encoder_as_if_it_were_off(corpus: Path, tmp_path: Path) -> None:
    # No dropout anywhere: the warming head would otherwise draw masks from the RNG the encoder's next step uses.
    quiet = {
        "encoder": {"preset": "tiny", "num_blocks": 1, "dropout": 0.0, "attention_dropout": 0.0},
        "tasks": {"asr_ctc": {"dropout": 0.0}, "intent": {"dropout": 0.0}, "lid": {"dropout": 0.0}},
    }
    losses = {}
    for name, intent in (("warm", {"head_start_step": 0, "start_step": 2}), ("off", {"start_step": 2})):
        config = tiny_train_config(
            corpus, tmp_path / name, max_steps=3, valid_every=3, model=quiet, curriculum={"tasks": {"intent": intent}}
        )
        config["model"]["tasks"] = quiet["tasks"]
        train(load_train_config(write_config(tmp_path / f"{name}.yaml", config)))
        losses[name] = _train_losses(tmp_path / name)
    records = [r for r in read_log(tmp_path / "warm" / "train.jsonl") if r["kind"] == "train"]
    assert [r.get("multiplier/intent") for r in records] == [0.0, 0.0, None]  # encoder share off, then joined
    assert "loss/intent" in losses["warm"][2] and "loss/intent" not in losses["off"][2]  # step 1: no intent labels
    # Steps 1-2 update the encoder identically (the warming head's gradient stops at the detached output), so the
    # other tasks' losses after them match exactly; the intent head itself has learned in the warm run.
    for step in (1, 2, 3):
        for key in ("loss/asr_ctc", "loss/lid"):
            assert losses["warm"][step][key] == losses["off"][step][key], (step, key)
    assert losses["warm"][3]["loss/intent"] != losses["off"][3]["loss/intent"]


def test_validation_skips_the_metrics_of_tasks_not_trained_yet(corpus: Path, tmp_path: Path) -> None:
    warm = {"head_start_step": 1, "start_step": 5}
    curriculum = {"tasks": {"decoder": {"start_step": 4}, "lid": {"start_step": 4}, "intent": warm}}
    config = tiny_train_config(corpus, tmp_path / "run", curriculum=curriculum)
    train(load_train_config(write_config(tmp_path / "run.yaml", config)))
    valid = {r["step"]: r for r in read_log(tmp_path / "run" / "train.jsonl") if r["kind"] == "valid"}
    early, late = valid[3], valid[6]
    # Before their first step: losses (which the best checkpoint sums) but no greedy search, no accuracy.
    assert {"loss/decoder", "loss/lid"} <= set(early) and not any(k.startswith(("decoder.", "lid.")) for k in early)
    assert {"intent.accuracy", "asr_ctc.cer", "vad.f1"} <= set(early)  # warming and unscheduled tasks: measured
    assert {"decoder.transcribe_cer", "decoder.token_accuracy", "lid.accuracy", "intent.accuracy"} <= set(late)


def test_valid_decode_false_measures_the_decoder_by_token_accuracy_alone(corpus: Path, tmp_path: Path) -> None:
    config = tiny_train_config(corpus, tmp_path / "run", max_steps=3, valid_every=3, valid_decode=False)
    train(load_train_config(write_config(tmp_path / "run.yaml", config)))
    record = next(r for r in read_log(tmp_path / "run" / "train.jsonl") if r["kind"] == "valid")
    assert 0.0 <= record["decoder.token_accuracy"] <= 1.0 and "loss/decoder" in record
    assert not [k for k in record if k.startswith("decoder.") and k != "decoder.token_accuracy"]
    bad = tiny_train_config(corpus, tmp_path / "bad", valid_decode=False, best_metric="decoder.transcribe_cer")
    with pytest.raises(UserError, match=r"best_metric reads 'decoder\.transcribe_cer'.*valid_decode"):
        load_train_config(write_config(tmp_path / "bad.yaml", bad))


def test_text_only_rows_teach_intent_text_and_resume_exactly(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def config(name: str, rows: int) -> Path:
        settings = tiny_train_config(corpus, tmp_path / name, valid_every=6, checkpoint_every=3)
        settings["model"]["tasks"] = {"asr_ctc": {}, "intent_text": {"text_only_rows": rows}}
        return write_config(tmp_path / f"{name}.yaml", settings)

    straight = train(load_train_config(config("straight", 4)))
    assert straight.steps == 6
    state = torch.load(tmp_path / "straight" / "checkpoints" / "step-00000006.pt", weights_only=False)
    assert state["data"][0]["text"] == {"drawn": 6 * 4}
    spoken_only = train(load_train_config(config("spoken", 0)))
    assert spoken_only.steps == 6
    with_text, without = _train_losses(tmp_path / "straight"), _train_losses(tmp_path / "spoken")
    assert with_text[1]["loss/asr_ctc"] == without[1]["loss/asr_ctc"]  # the encoder's side is untouched
    # Every step trains the head now, also those whose batch holds no spoken intent.
    assert all("loss/intent_text" in with_text[step] for step in range(1, 7))
    assert sum("loss/intent_text" in without[step] for step in range(1, 7)) < 6

    original = Trainer._stop_reason
    monkeypatch.setattr(Trainer, "_stop_reason", lambda self, run, progress: "signal" if progress.step == 4 else None)
    resumed_config = load_train_config(config("resumed", 4))
    assert train(resumed_config).steps == 4
    monkeypatch.setattr(Trainer, "_stop_reason", original)
    assert train(resumed_config, resume=True).steps == 6  # from the step-3 checkpoint
    got = _train_losses(tmp_path / "resumed")
    for step in range(1, 7):
        assert got[step]["loss/intent_text"] == pytest.approx(with_text[step]["loss/intent_text"], rel=1e-6), step


def test_text_only_rows_need_a_corpus_that_has_them(tmp_path: Path) -> None:
    from train_fixtures import make_train_corpus

    settings = tiny_train_config(make_train_corpus(tmp_path / "corpus"), tmp_path / "run")
    settings["model"]["tasks"] = {"asr_ctc": {}, "intent_text": {"text_only_rows": 2}}
    with pytest.raises(UserError, match=r"model.tasks.intent_text.text_only_rows: the training corpora have no text"):
        train(load_train_config(write_config(tmp_path / "cfg.yaml", settings)))
