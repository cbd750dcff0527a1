"""MultiTaskModel: one encoder pass for all tasks, loss bookkeeping, parameter groups, presets, joint training."""

from __future__ import annotations

import pytest
import torch
from model_fixtures import ALL_TASKS, SOT, random_batch, single_thread, tiny_config

from mtspeech.data.batch import IGNORE
from mtspeech.errors import UserError
from mtspeech.model.config import ModelConfig
from mtspeech.model.model import MultiTaskModel, count_parameters, resolve_model_config

__all__ = ["single_thread"]  # autouse fixture


@pytest.fixture(scope="module")
def model() -> MultiTaskModel:
    torch.manual_seed(0)
    return MultiTaskModel(tiny_config()).eval()


def count_encoder_calls(model: MultiTaskModel) -> list[int]:
    calls = [0]

    def hook(*_):
        calls[0] += 1

    model.encoder.register_forward_hook(hook)
    return calls


def test_unknown_task_is_a_user_error_listing_known_tasks():
    with pytest.raises(UserError) as err:
        ModelConfig.from_dict({"tasks": {"asr": {}}})
    message = str(err.value)
    assert "unknown task 'asr'" in message
    assert all(name in message for name in ALL_TASKS)


def test_unknown_task_option_names_the_task_and_key():
    with pytest.raises(UserError, match=r"tasks\.intent\.num_clases.*known keys"):
        ModelConfig.from_dict({"tasks": {"intent": {"num_clases": 3}}})


def test_encoder_runs_once_for_all_tasks():
    model = MultiTaskModel(tiny_config())
    calls = count_encoder_calls(model)
    batch = random_batch(batch_size=3)
    output = model(batch)
    assert calls[0] == 1
    assert set(output.losses) == set(ALL_TASKS)
    assert output.enc.shape == (3, int(output.enc_lens.max()), model.config.encoder.d_model)
    model.eval()
    predictions = model.predict(
        batch.features, batch.feature_lens, options={"decoder": {"prompts": [SOT], "max_new_tokens": 3}}
    )
    assert calls[0] == 2
    assert set(predictions) == set(ALL_TASKS) and all(len(p) == 3 for p in predictions.values())


def test_predict_skips_the_decoder_without_a_prompt_unless_asked(model):
    batch = random_batch(batch_size=2)
    assert "decoder" not in model.predict(batch.features, batch.feature_lens)
    with pytest.raises(UserError, match="prompt"):
        model.predict(batch.features, batch.feature_lens, tasks=["decoder"])
    only = model.predict(batch.features, batch.feature_lens, tasks=["intent", "lid"])
    assert set(only) == {"intent", "lid"}


def test_tasks_without_labels_are_absent_from_losses(model):
    batch = random_batch(batch_size=3)
    batch.class_targets["intent"][:] = IGNORE
    batch.vad_targets = None
    del batch.class_targets["speaker"]
    output = model(batch)
    assert {"intent", "vad", "speaker"}.isdisjoint(output.losses)
    assert set(output.losses) == set(output.num_items) == set(ALL_TASKS) - {"intent", "vad", "speaker"}
    assert output.num_items["lid"] == 3


def test_num_items_counts_labelled_rows(model):
    output = model(random_batch(batch_size=4, unlabelled_rows=(0, 2)))
    assert set(output.num_items.values()) == {2}


def test_hybrid_ctc_attention_weights():
    config = tiny_config(("asr_ctc", "decoder", "intent"))
    config.ctc_weight = 0.3
    model = MultiTaskModel(config).eval()
    output = model(random_batch())
    assert output.losses["asr_ctc"].item() == pytest.approx(0.3 * output.raw_losses["asr_ctc"].item())
    assert output.losses["decoder"].item() == pytest.approx(0.7 * output.raw_losses["decoder"].item())
    assert output.losses["intent"] is output.raw_losses["intent"]
    ctc_only = MultiTaskModel(tiny_config(("asr_ctc",))).eval()
    out = ctc_only(random_batch())
    assert out.losses["asr_ctc"] is out.raw_losses["asr_ctc"]  # no decoder: no hybrid scaling


def test_task_subset_and_unknown_task_in_forward(model):
    batch = random_batch()
    assert set(model(batch, tasks=["lid", "vad"]).losses) == {"lid", "vad"}
    with pytest.raises(UserError, match="not enabled in this model; enabled: asr_ctc"):
        model(batch, tasks=["lid", "nope"])


@pytest.mark.parametrize(
    "tasks",
    [("asr_ctc", "intent", "lid", "emotion", "vad"), ("decoder",), ("asr_ctc", "slots", "accent", "gender")],
    ids=["shared-encoder-heads", "encoder-decoder-only", "mix"],
)
def test_architectures_by_config(tasks):
    model = MultiTaskModel(tiny_config(tasks))
    output = model(random_batch())
    assert set(output.losses) == set(tasks)
    sum(output.losses.values()).backward()
    assert all(p.grad is not None for p in model.shared_parameters())


def test_parameter_groups_partition_the_model(model):
    shared = model.shared_parameters()
    per_task = model.task_parameters()
    ids = [id(p) for p in shared] + [id(p) for params in per_task.values() for p in params]
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(ids) == len(set(ids)) == len(trainable)
    assert {id(p) for p in shared} == {id(p) for p in model.encoder.parameters()}
    assert set(per_task) == set(ALL_TASKS)
    assert model.last_shared_layer() is model.encoder.blocks[-1]


def test_required_peer_task_must_be_enabled():
    with pytest.raises(UserError, match="'slots' needs task\\(s\\) asr_ctc"):
        MultiTaskModel(tiny_config(("slots", "intent")))


def test_set_progress_drives_the_accent_reversal(model):
    model.set_progress(0.0)
    assert model.tasks["accent"].reversal_lambda == 0.0
    model.set_progress(2.0)  # clamped to 1
    assert model.tasks["accent"].reversal_lambda == pytest.approx(0.99991, abs=1e-5)


class FakeTokenizer:
    sp_size, vocab_size, blank_id, sot_id, eot_id, pad_id = 30, 40, 0, 35, 36, 0


def test_resolve_model_config_fills_sizes_from_the_data():
    config = ModelConfig.from_dict({"encoder": {"preset": "tiny"}, "tasks": {"asr_ctc": {}, "decoder": {}, "lid": {}}})
    resolved = resolve_model_config(config, FakeTokenizer(), {"lid": ["en", "fr", "de"]})
    assert resolved.tasks["asr_ctc"].vocab_size == 30  # CTC: text pieces only
    assert resolved.tasks["decoder"].vocab_size == 40
    assert (resolved.tasks["decoder"].sot_id, resolved.tasks["decoder"].eot_id) == (35, 36)
    assert resolved.tasks["lid"].num_classes == 3
    assert resolved.tasks["decoder"].num_layers == 2  # the tiny preset survives the round trip
    MultiTaskModel(resolved)
    with pytest.raises(UserError, match="'lid' label vocabulary"):
        resolve_model_config(config, FakeTokenizer(), {})
    explicit = ModelConfig.from_dict({"tasks": {"asr_ctc": {"vocab_size": 99}}})
    with pytest.raises(UserError, match="asr_ctc.vocab_size is 99 but the data gives 30"):
        resolve_model_config(explicit, FakeTokenizer(), {})


def preset_counts(preset: str, pieces: int = 1000, vocab: int = 1910) -> dict[str, int]:
    """Every task enabled with realistic sizes (1000 text pieces + ~910 special tokens, 60 intents, 111 tags)."""
    tasks = {
        "asr_ctc": {"vocab_size": pieces},
        "decoder": {"vocab_size": vocab, "sot_id": 1000, "eot_id": 1001},
        "slots": {"vocab_size": pieces, "num_tags": 111},
        "vad": {},
        **{name: {"num_classes": n} for name, n in [("intent", 60), ("lid", 5), ("emotion", 4), ("speaker", 40)]},
        **{name: {"num_classes": n} for name, n in [("gender", 2), ("accent", 7)]},
    }
    return count_parameters(MultiTaskModel(ModelConfig.from_dict({"encoder": {"preset": preset}, "tasks": tasks})))


def test_preset_parameter_budgets():
    tiny, small, base = (preset_counts(p) for p in ("tiny", "small", "base"))
    assert tiny["total"] < 1_000_000
    assert 5_000_000 <= small["total"] <= 10_000_000
    assert 30_000_000 <= base["total"] <= 100_000_000
    for counts in (tiny, small, base):
        assert counts["total"] == sum(v for k, v in counts.items() if k != "total")


def test_joint_training_overfits_eight_utterances():
    torch.manual_seed(0)
    model = MultiTaskModel(tiny_config())
    batch = random_batch(batch_size=8, max_frames=64, unlabelled_rows=(5,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    first = None
    for _ in range(30):
        output = model(batch)
        if first is None:
            first = {name: loss.item() for name, loss in output.raw_losses.items()}
        optimizer.zero_grad()
        sum(output.losses.values()).backward()
        optimizer.step()
    last = {name: loss.item() for name, loss in model(batch).raw_losses.items()}
    assert set(first) == set(last) == set(ALL_TASKS)
    for name in ALL_TASKS:
        assert last[name] < 0.7 * first[name], (name, first[name], last[name])


# --- heads that mix encoder layers ------------------------------------------------------------------------------
def mixing_model(seed: int = 0) -> MultiTaskModel:
    torch.manual_seed(seed)
    return MultiTaskModel(tiny_config(emotion={"encoder_layers": "mix"})).eval()


def head_probabilities(model: MultiTaskModel, batch, name: str) -> torch.Tensor:
    with torch.no_grad():
        enc, lens, layers = model.encode_layers(batch.features, batch.feature_lens)
        return model.tasks[name].probabilities(model.task_input(name, enc, layers), lens)


def test_layer_mixing_heads_read_every_layer_of_one_encoder_pass():
    model = mixing_model()
    calls = count_encoder_calls(model)
    out = model(random_batch(batch_size=3))
    assert calls[0] == 1
    assert len(out.layers) == model.config.encoder.num_blocks + 1
    assert all(layer.shape == out.enc.shape for layer in out.layers)
    assert model.reads_layers and model.tasks["emotion"].reads_layers and not model.tasks["speaker"].reads_layers
    assert MultiTaskModel(tiny_config()).encode_layers(out.enc.new_zeros(2, 40, 80), torch.tensor([40, 30]))[2] == []
    mix = model.tasks["emotion"].head["layer_mix"].logits
    assert any(p is mix for p in model.task_parameters()["emotion"])
    assert all(p is not mix for p in model.shared_parameters())
    # Equal weights at the start: the mix is the mean of the normalised layers.
    batch = random_batch()
    enc, _, layers = model.encode_layers(batch.features, batch.feature_lens)
    mean = torch.stack([torch.nn.functional.layer_norm(x, x.shape[-1:]) for x in layers]).mean(0)
    torch.testing.assert_close(model.task_input("emotion", enc, layers), mean)
    with pytest.raises(UserError, match="encode_layers"):
        model.task_input("emotion", enc, [])


def test_a_mix_of_the_subsampling_output_alone_does_not_depend_on_the_blocks():
    model = mixing_model()
    batch = random_batch()
    with torch.no_grad():
        model.tasks["emotion"].head["layer_mix"].logits.copy_(torch.tensor([40.0] + [0.0] * len(model.encoder.blocks)))
    emotion, speaker = head_probabilities(model, batch, "emotion"), head_probabilities(model, batch, "speaker")
    with torch.no_grad():
        for p in model.encoder.blocks.parameters():
            p.add_(0.5 * torch.randn_like(p))
    torch.testing.assert_close(head_probabilities(model, batch, "emotion"), emotion)
    assert not torch.allclose(head_probabilities(model, batch, "speaker"), speaker, atol=1e-4)
    assert set(model.predict(batch.features, batch.feature_lens)) == set(ALL_TASKS) - {"decoder"}


def test_encoder_grad_scales_only_what_a_task_sends_into_the_encoder():
    torch.manual_seed(0)
    model = MultiTaskModel(tiny_config(("asr_ctc", "emotion")))
    batch = random_batch()

    def grads(factor: float) -> tuple[list[torch.Tensor | None], list[torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        model(batch, tasks=["emotion"], encoder_grad={"emotion": factor}).losses["emotion"].backward()
        encoder = [p.grad for p in model.encoder.parameters()]
        return encoder, [p.grad.clone() for p in model.tasks["emotion"].parameters()]

    full_encoder, full_head = grads(1.0)
    half_encoder, half_head = grads(0.5)
    alone_encoder, alone_head = grads(0.0)
    assert all(g is None for g in alone_encoder)  # detached: nothing reaches the encoder
    assert all(g is not None and bool(g.abs().sum() > 0) for g in full_encoder[-4:])
    for full, half in zip(full_encoder, half_encoder, strict=True):
        if full is not None:
            torch.testing.assert_close(half, 0.5 * full)
    for heads in (half_head, alone_head):  # the head itself always learns at full weight
        for full, other in zip(full_head, heads, strict=True):
            torch.testing.assert_close(other, full)


def test_the_language_head_keeps_the_encoder_output():
    with pytest.raises(UserError, match=r"tasks\.lid\.encoder_layers"):
        tiny_config(lid={"encoder_layers": "mix"})
