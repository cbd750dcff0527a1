"""The packaged model file: a real collated batch through a resolved model, save/load round trip, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from model_fixtures import single_thread
from pipeline_fixtures import make_fixture_cuts

import mtspeech
from mtspeech.data.collate import MultiTaskCollator
from mtspeech.data.features import LogMelFrontend
from mtspeech.data.labels import build_label_vocabs
from mtspeech.data.tokenizer import train_tokenizer_from_cuts
from mtspeech.errors import UserError
from mtspeech.model.config import ModelConfig
from mtspeech.model.model import MultiTaskModel, resolve_model_config
from mtspeech.model.package import MODEL_FORMAT, load_model, save_model

__all__ = ["single_thread"]  # autouse fixture

TASKS = ("asr_ctc", "decoder", "intent", "lid", "emotion", "speaker", "gender", "accent", "slots", "vad")


@pytest.fixture(scope="module")
def packaged(tmp_path_factory):
    """A tiny model with every task, resolved from a real tokenizer and vocabularies, saved once."""
    directory = tmp_path_factory.mktemp("package")
    cuts = make_fixture_cuts(directory / "audio")
    tokenizer = train_tokenizer_from_cuts(cuts, vocab_size=300)
    vocabs = build_label_vocabs(cuts)
    batch = MultiTaskCollator(tokenizer, vocabs, LogMelFrontend())(cuts)
    config = ModelConfig.from_dict({"encoder": {"preset": "tiny"}, "tasks": {name: {} for name in TASKS}})
    torch.manual_seed(0)
    model = MultiTaskModel(resolve_model_config(config, tokenizer, vocabs)).eval()
    model.frontend.set_cmvn(torch.full((80,), 1.5), torch.full((80,), 2.0))  # buffers must travel too
    path = save_model(directory / "model.pt", model, tokenizer, vocabs, {"step": 7, "metrics": {"lid.accuracy": 0.5}})
    return path, model, tokenizer, vocabs, batch


def test_collated_batch_trains_every_task(packaged):
    _, model, _, _, batch = packaged
    output = model(batch)
    assert set(output.losses) == set(TASKS)  # the fixture cuts carry some label of every kind
    assert output.num_items["intent"] == 2 and output.num_items["accent"] == 2


def test_round_trip_gives_identical_outputs(packaged):
    path, model, tokenizer, vocabs, batch = packaged
    loaded = mtspeech.load(path)
    assert loaded.metadata == {"step": 7, "metrics": {"lid.accuracy": 0.5}}
    assert loaded.config == model.config and not loaded.model.training
    assert loaded.tokenizer.to_bytes() == tokenizer.to_bytes()
    assert {k: v.labels for k, v in loaded.vocabs.items()} == {k: v.labels for k, v in vocabs.items()}
    assert torch.equal(loaded.model.frontend.cmvn_mean, model.frontend.cmvn_mean)
    with torch.no_grad():
        expected, got = model(batch), loaded.model(batch)
    assert torch.equal(expected.enc, got.enc)
    assert {k: v.item() for k, v in expected.losses.items()} == {k: v.item() for k, v in got.losses.items()}
    options = {"decoder": {"prompts": tokenizer.prompt("transcribe", "en"), "max_new_tokens": 4}}
    assert model.predict(batch.features, batch.feature_lens, options=options) == loaded.model.predict(
        batch.features, batch.feature_lens, options=options
    )


def test_save_is_atomic_and_overwrites(packaged, tmp_path):
    path, model, tokenizer, vocabs, _ = packaged
    target = tmp_path / "sub" / "m.pt"
    save_model(target, model, tokenizer, vocabs, {"v": 1})
    save_model(target, model, tokenizer, vocabs, {"v": 2})
    assert load_model(target).metadata == {"v": 2}
    assert sorted(p.name for p in target.parent.iterdir()) == ["m.pt"]  # no temp file left behind
    with pytest.raises(ValueError, match="JSON-serialisable"):
        save_model(tmp_path / "x.pt", model, tokenizer, vocabs, {"bad": object()})


def expect_user_error(path: Path, pattern: str) -> None:
    with pytest.raises(UserError, match=pattern) as err:
        load_model(path)
    assert str(path) in str(err.value)


def test_truncated_file_is_a_user_error(packaged, tmp_path):
    data = packaged[0].read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    expect_user_error(truncated, f"cannot read the model file.*expected an '{MODEL_FORMAT}' file")


def test_foreign_files_are_user_errors(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("this is not a model\n")
    expect_user_error(text, "truncated, corrupted or not a torch file")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    expect_user_error(foreign, f"not an mtspeech model file: format is None; expected '{MODEL_FORMAT}'")
    checkpoint = tmp_path / "step-00000010.pt"
    torch.save({"format": "mtspeech-train-checkpoint", "version": 1}, checkpoint)
    expect_user_error(checkpoint, "a training checkpoint; the run.s model file is RUN/model.pt")
    expect_user_error(tmp_path / "missing.pt", "model file not found")
    expect_user_error(tmp_path, "got a directory")


def test_damaged_contents_are_user_errors(packaged, tmp_path):
    payload = torch.load(packaged[0], weights_only=True)
    newer = tmp_path / "newer.pt"
    torch.save({**payload, "version": 99}, newer)
    expect_user_error(newer, "version 99; this mtspeech reads version 1")
    config = {**payload["config"], "tasks": {**payload["config"]["tasks"]}}
    config["tasks"]["intent"] = {**config["tasks"]["intent"], "num_classes": 9}
    mismatched = tmp_path / "mismatched.pt"
    torch.save({**payload, "config": config}, mismatched)
    expect_user_error(mismatched, "weights do not match the model config")
    no_tokenizer = tmp_path / "no_tokenizer.pt"
    torch.save({**payload, "tokenizer": b"garbage"}, no_tokenizer)
    expect_user_error(no_tokenizer, "unreadable tokenizer")
    bad_config = tmp_path / "bad_config.pt"
    torch.save({**payload, "config": {**payload["config"], "tasks": {"nope": {}}}}, bad_config)
    expect_user_error(bad_config, "unknown task 'nope'")
