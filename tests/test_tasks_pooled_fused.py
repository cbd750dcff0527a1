"""Fused pooled heads give every head's own probabilities, whatever mix of sizes, pooling and normalisation."""

from __future__ import annotations

import pytest
import torch
from model_fixtures import single_thread, task_options

from mtspeech.tasks import TASKS
from mtspeech.tasks.pooled import PooledClassifierTask
from mtspeech.tasks.pooled_fused import FusedPooledHeads, fusable, fuse_pooled_heads

__all__ = ["single_thread"]  # autouse fixture
D_MODEL = 32


def build(name: str, **options) -> PooledClassifierTask:
    cls = TASKS[name]
    config = cls.config_class.model_validate({**task_options(name), **options}, context={"encoder_preset": "tiny"})
    task = cls(config, D_MODEL)
    assert isinstance(task, PooledClassifierTask)
    return task


def trained_statistics(task: PooledClassifierTask, seed: int) -> PooledClassifierTask:
    """Running BatchNorm statistics away from (0, 1) and non-trivial affine weights, as after training."""
    g = torch.Generator().manual_seed(seed)
    norm = task.head["norm"]
    if isinstance(norm, torch.nn.BatchNorm1d):
        norm.running_mean.copy_(torch.randn(norm.num_features, generator=g))
        norm.running_var.copy_(torch.rand(norm.num_features, generator=g) * 3 + 0.1)
        norm.weight.data.copy_(torch.randn(norm.num_features, generator=g))
        norm.bias.data.copy_(torch.randn(norm.num_features, generator=g))
    return task.eval()


def mixed_heads() -> dict[str, PooledClassifierTask]:
    torch.manual_seed(0)
    heads = {
        "lid": build("lid", num_classes=5),
        "emotion": build("emotion", num_classes=4, pooling="attention_stats", pool_hidden=24),
        "accent": build("accent", num_classes=7, hidden_dim=40),
        "speaker": build("speaker", num_classes=3, pooling="attention_stats", pool_norm="none"),
        "gender": build("gender", num_classes=2, pool_hidden=8, hidden_dim=16),
    }
    return {name: trained_statistics(task, seed) for seed, (name, task) in enumerate(heads.items())}


@pytest.mark.parametrize("lengths", [[9], [9, 4, 1]])
def test_fused_heads_give_each_heads_own_probabilities(lengths):
    heads = mixed_heads()
    fused = FusedPooledHeads(heads)
    enc = torch.randn(len(lengths), max(lengths), D_MODEL) * 3
    enc_lens = torch.tensor(lengths)
    enc[1:, 5:] = 1e4  # padded frames: must not reach any head
    got = fused.probabilities(enc, enc_lens)
    assert list(got) == list(heads)
    for name, task in heads.items():
        want = task.probabilities(enc, enc_lens)
        assert got[name].shape == want.shape
        torch.testing.assert_close(got[name], want, atol=2e-5, rtol=1e-4)


def test_only_heads_reading_the_encoder_output_with_a_hidden_layer_are_fused():
    assert fusable(build("lid", num_classes=3))
    assert fusable(build("accent", num_classes=3))  # its reversal touches gradients only
    assert not fusable(build("speaker", num_classes=3, encoder_layers="mix"))
    assert not fusable(build("gender", num_classes=2, hidden_dim=0))
    assert not fusable(TASKS["vad"](TASKS["vad"].config_class(), D_MODEL))

    class Shifted(TASKS["emotion"]):  # type: ignore[misc, valid-type]
        features_change_values = True

    assert not fusable(Shifted(Shifted.config_class(**task_options("emotion")), D_MODEL))
    with pytest.raises(ValueError, match="cannot be fused: speaker"):
        FusedPooledHeads({"lid": build("lid", num_classes=3), "speaker": build("speaker", encoder_layers="mix")})


def test_fuse_pooled_heads_picks_the_fusable_ones_and_needs_two():
    heads = {**mixed_heads(), "mixing": build("speaker", num_classes=3, encoder_layers="mix")}
    fused = fuse_pooled_heads(heads, ["gender", "mixing", "lid", "gender", "absent"])
    assert fused is not None and fused.names == ["gender", "lid"]
    assert fuse_pooled_heads(heads, ["lid", "mixing"]) is None
