"""Unit tests of the trainer's parts: config loading, schedules, checkpoints, RNG, EMA, data position, logs."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from train_fixtures import make_train_corpus, tiny_train_config, write_config

from mtspeech.errors import UserError
from mtspeech.train.checkpoint import CheckpointManager, atomic_torch_save, load_checkpoint, stamp
from mtspeech.train.config import EmaConfig, OptimConfig, load_train_config
from mtspeech.train.config_file import apply_overrides, load_raw_config
from mtspeech.train.optim import ModelEMA, build_balancer_optimizer, build_optimizer, clip_gradients, lr_factor
from mtspeech.train.rng import capture_rng_state, restore_rng_state
from mtspeech.train.run_log import RunLog, read_log


# --- config ---------------------------------------------------------------------------------------------------
def _yaml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


BASE = """\
output_dir: out
max_steps: 10
data:
  corpora: [{path: corpus}]
  max_duration: 20
model:
  encoder: {preset: tiny}
  tasks: {asr_ctc: {}, intent: {}}
"""


def test_unknown_key_error_names_key_file_and_line(tmp_path: Path) -> None:
    cfg = _yaml(tmp_path / "bad.yaml", BASE.replace("max_duration: 20", "max_duraton: 20"))
    with pytest.raises(UserError) as err:
        load_train_config(cfg)
    message = str(err.value)
    assert f"{cfg}:5: data.max_duraton: unknown key 'max_duraton'" in message
    assert "max_duration" in message  # the known keys are listed


def test_errors_in_a_base_file_point_at_the_base_file(tmp_path: Path) -> None:
    _yaml(tmp_path / "base.yaml", BASE.replace("intent: {}", "intent: {num_clases: 3}"))
    child = _yaml(tmp_path / "child.yaml", "base: base.yaml\noptim: {lr: 0.01, warmup: 3}\n")
    with pytest.raises(UserError) as err:
        load_train_config(child)
    message = str(err.value)
    assert f"{tmp_path / 'base.yaml'}:8: model.tasks.intent.num_clases" in message
    assert f"{child}:2: optim.warmup: unknown key" in message


def test_base_merge_and_set_overrides(tmp_path: Path) -> None:
    _yaml(tmp_path / "base.yaml", BASE + "optim: {lr: 0.01, warmup_steps: 7}\n")
    child = _yaml(tmp_path / "child.yaml", "base: base.yaml\noptim: {lr: 0.002}\nmodel: {tasks: {lid: {}}}\n")
    config = load_train_config(
        child, ["max_steps=99", "data.corpora.0.weight=2.5", "optim.betas=[0.8, 0.9]", "balancer.name=dwa"]
    )
    assert config.optim.lr == 0.002 and config.optim.warmup_steps == 7  # mappings merge key by key
    assert set(config.model.tasks) == {"asr_ctc", "intent", "lid"}
    assert config.max_steps == 99 and config.data.corpora[0].weight == 2.5
    assert config.optim.betas == (0.8, 0.9) and config.balancer.name == "dwa"
    with pytest.raises(UserError, match="--set max_steps=-1: max_steps"):
        load_train_config(child, ["max_steps=-1"])
    with pytest.raises(UserError, match="not an index"):
        load_train_config(child, ["data.corpora.3.weight=1"])


def test_base_cycle_and_bad_yaml_are_user_errors(tmp_path: Path) -> None:
    _yaml(tmp_path / "a.yaml", "base: b.yaml\n")
    _yaml(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(UserError, match="cycle"):
        load_raw_config(tmp_path / "a.yaml")
    broken = _yaml(tmp_path / "broken.yaml", "model:\n  tasks: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML") as err:
        load_raw_config(broken)
    assert str(broken) in str(err.value)
    with pytest.raises(UserError, match="not found"):
        load_raw_config(tmp_path / "missing.yaml")


def test_override_keeps_origins_for_error_messages(tmp_path: Path) -> None:
    raw = apply_overrides(load_raw_config(_yaml(tmp_path / "c.yaml", BASE)), ["optim.lr=-1"])
    assert str(raw.origin(("optim", "lr"))) == "--set optim.lr=-1"
    assert str(raw.origin(("data", "corpora", 0, "path"))) == f"{tmp_path / 'c.yaml'}:4"


def test_best_metric_must_name_an_enabled_task(tmp_path: Path) -> None:
    cfg = _yaml(tmp_path / "c.yaml", BASE + "best_metric: lid.accuracy\n")
    with pytest.raises(UserError, match="best_metric"):
        load_train_config(cfg)
    config = load_train_config(_yaml(tmp_path / "d.yaml", BASE + "best_metric: intent.accuracy\n"))
    assert config.resolved_best_mode() == "max"
    assert load_train_config(_yaml(tmp_path / "e.yaml", BASE)).resolved_best_mode() == "min"


RECIPE_DIR = Path(__file__).resolve().parents[1] / "recipes"
RECIPES = sorted(p for p in RECIPE_DIR.rglob("*.yaml") if p.parent.name != "common")


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: str(p.relative_to(RECIPE_DIR)))
def test_every_recipe_is_a_valid_config(recipe: Path) -> None:
    config = load_train_config(recipe)
    assert config.model.tasks and config.data.corpora
    assert config.best_metric == "loss" or config.best_metric.split(".")[0] in config.model.tasks


def test_recipes_cover_every_task_alone() -> None:
    from mtspeech.tasks import TASKS

    singles = {p.stem for p in RECIPES if p.parent.name == "single"}
    assert singles == set(TASKS)


# --- optimizer, schedule, EMA ---------------------------------------------------------------------------------
def test_cosine_and_noam_schedules() -> None:
    cosine = lr_factor(OptimConfig(schedule="cosine", warmup_steps=10, min_lr_ratio=0.1), max_steps=110)
    assert cosine(0) == pytest.approx(0.1) and cosine(9) == pytest.approx(1.0)
    assert cosine(59) == pytest.approx(0.55)  # half-way through the decay: floor + (1 - floor) / 2
    assert cosine(109) == pytest.approx(0.1) and cosine(500) == pytest.approx(0.1)
    noam = lr_factor(OptimConfig(schedule="noam", warmup_steps=4), max_steps=100)
    assert noam(3) == pytest.approx(1.0) and noam(15) == pytest.approx(0.5)
    constant = lr_factor(OptimConfig(schedule="constant", warmup_steps=0), max_steps=100)
    assert constant(0) == constant(99) == 1.0


def test_optimizer_groups_skip_decay_for_biases_and_norms() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    optimizer = build_optimizer(model, OptimConfig(weight_decay=0.1))
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert [p.shape for p in groups["decay"]["params"]] == [torch.Size([4, 4])]
    assert len(groups["no_decay"]["params"]) == 3 and groups["no_decay"]["weight_decay"] == 0.0
    extra = torch.nn.Parameter(torch.zeros(3))
    balancer_optimizer = build_balancer_optimizer([extra], OptimConfig(weight_decay=0.1))
    assert balancer_optimizer.param_groups[0]["params"] == [extra]
    assert balancer_optimizer.param_groups[0]["weight_decay"] == 0.0
    assert build_balancer_optimizer([], OptimConfig()) is None


def test_clip_gradients_scales_to_the_global_norm() -> None:
    a, b, c = (torch.nn.Parameter(torch.zeros(2)) for _ in range(3))
    a.grad, b.grad = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 4.0])
    assert clip_gradients([a, b, c], max_norm=1.0) == pytest.approx(5.0)
    torch.testing.assert_close(a.grad, torch.tensor([0.6, 0.0]), atol=1e-5, rtol=0)
    assert clip_gradients([a, b], max_norm=None) == pytest.approx(1.0, abs=1e-5) and c.grad is None


def test_ema_tracks_and_swaps_weights() -> None:
    model = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = ModelEMA(model, EmaConfig(enabled=True, decay=0.5, warmup=False))
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)
    torch.testing.assert_close(ema.shadow["weight"], torch.full((1, 2), 0.5))
    with ema.applied(model):
        torch.testing.assert_close(model.weight.detach(), torch.full((1, 2), 0.5))
    torch.testing.assert_close(model.weight.detach(), torch.ones(1, 2))
    restored = ModelEMA(model, EmaConfig(enabled=True))
    restored.load_state_dict(ema.state_dict())
    assert restored.updates == 1 and torch.equal(restored.shadow["weight"], ema.shadow["weight"])


# --- checkpoints and RNG --------------------------------------------------------------------------------------
def test_checkpoint_rotation_and_load_errors(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path / "ckpt", keep_last_k=2)
    for step in (10, 20, 30):
        manager.save({"step": step, "weights": torch.ones(2) * step}, step)
    assert [s for s, _ in manager.step_checkpoints()] == [20, 30]
    assert load_checkpoint(manager.latest())["step"] == 30
    assert not list((tmp_path / "ckpt").glob(".*"))

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"definitely not a zip archive")
    with pytest.raises(UserError, match="cannot read checkpoint") as err:
        load_checkpoint(garbage)
    assert str(garbage) in str(err.value)
    foreign = atomic_torch_save({"format": "mtspeech-model", "state_dict": {}}, tmp_path / "model.pt")
    with pytest.raises(UserError, match="not an mtspeech training checkpoint"):
        load_checkpoint(foreign)
    future = atomic_torch_save({**stamp({"step": 1}), "version": 99}, tmp_path / "future.pt")
    with pytest.raises(UserError, match="version 99"):
        load_checkpoint(future)


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    state = capture_rng_state()
    expected = (random.random(), float(np.random.rand()), float(torch.rand(())))
    path = atomic_torch_save(stamp({"rng": state}), tmp_path / "rng.pt")
    restore_rng_state(load_checkpoint(path)["rng"])
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == expected


# --- logs -----------------------------------------------------------------------------------------------------
def test_run_log_is_cut_back_to_the_resumed_step(tmp_path: Path) -> None:
    log = RunLog(tmp_path, tensorboard=False)
    for step in (1, 2, 3, 4):
        log.write(step, "train", {"loss/total": float(step), "bad": math.nan})
    log.close()
    with (tmp_path / "train.jsonl").open("a") as f:
        f.write('{"step": 5, "kind": "tr')  # torn line of a killed run
    log = RunLog(tmp_path, tensorboard=False, resume_step=2)
    log.write(3, "train", {"loss/total": 30.0})
    log.close()
    records = read_log(tmp_path / "train.jsonl")
    assert [(r["step"], r["loss/total"]) for r in records] == [(1, 1.0), (2, 2.0), (3, 30.0)]
    assert records[0]["bad"] is None


# --- data position --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("num_workers", [0, 1])
def test_batch_stream_resumes_at_the_same_batch(tmp_path: Path, num_workers: int) -> None:
    """Across an epoch boundary, and with a prefetching worker that has read ahead of training."""
    from mtspeech.data.labels import build_label_vocabs
    from mtspeech.data.tokenizer import train_tokenizer_from_cuts
    from mtspeech.train.data_setup import BatchStream, build_collator, build_train_loader, open_corpora

    corpus = make_train_corpus(tmp_path / "corpus")
    config = load_train_config(
        write_config(
            tmp_path / "c.yaml",
            tiny_train_config(corpus, tmp_path / "run", data={"num_workers": num_workers, "max_duration": 5.0}),
        )
    )
    corpora = open_corpora(config.data)
    tokenizer = train_tokenizer_from_cuts(corpora.all_train_cuts(), vocab_size=300)
    collator = build_collator(config, tokenizer, build_label_vocabs(corpora.all_train_cuts(), ["intent", "lid"]), 4)

    def stream() -> BatchStream:
        return BatchStream(build_train_loader(config, corpora, collator, rank=0, world_size=1))

    straight = stream()
    expected = [straight.next() for _ in range(7)]
    assert straight.epoch >= 1, "the test must cross an epoch boundary"
    first = stream()
    for _ in range(3):
        first.next()
    state = first.state_dict()
    first.next()  # the interrupted run got further than its checkpoint
    resumed = stream()
    resumed.load_state_dict(state)
    for want in expected[3:]:
        got = resumed.next()
        assert got.ids == want.ids
        torch.testing.assert_close(got.features, want.features)
    straight.close(), first.close(), resumed.close()


def test_training_doc_mentions_every_config_key() -> None:
    from mtspeech.train import config as cfg

    doc = (RECIPE_DIR.parent / "docs" / "training.md").read_text(encoding="utf-8")
    sections = (cfg.TrainConfig, cfg.DataConfig, cfg.CorpusConfig, cfg.AugmentOptions, cfg.TokenizerConfig)
    sections += (cfg.OptimConfig, cfg.EmaConfig, cfg.DistributedConfig)
    missing = [f"{s.__name__}.{key}" for s in sections for key in s.model_fields if f"`{key}`" not in doc]
    assert not missing, f"docs/training.md does not document {missing}"


def test_compile_without_a_cpp_compiler_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from model_fixtures import tiny_config

    import mtspeech.train.build as build
    from mtspeech.model.model import MultiTaskModel

    model = MultiTaskModel(tiny_config(("asr_ctc",)))
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="compile: true needs a C\\+\\+ compiler"):
        build.compile_encoder_blocks(model)
    assert all(block._compiled_call_impl is None for block in model.encoder.blocks)
