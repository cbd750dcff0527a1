"""The encoder's subsampling factor: lengths, short inputs, and a whole model trained from a collated batch at x2."""

from __future__ import annotations

import pytest
import torch
from model_fixtures import single_thread
from pipeline_fixtures import make_fixture_cuts

from mtspeech.data.collate import MultiTaskCollator
from mtspeech.data.features import LogMelFrontend, subsampled_length
from mtspeech.data.labels import build_label_vocabs
from mtspeech.data.tokenizer import train_tokenizer_from_cuts
from mtspeech.errors import UserError
from mtspeech.model.config import EncoderConfig, ModelConfig
from mtspeech.model.encoder import ConformerEncoder, min_input_frames
from mtspeech.model.model import MultiTaskModel, resolve_model_config

__all__ = ["single_thread"]  # autouse fixture


@pytest.mark.parametrize("factor", [2, 4, 6, 8])
def test_encoder_output_lengths_follow_the_factor(factor: int) -> None:
    encoder = ConformerEncoder(EncoderConfig(preset="tiny", subsampling_factor=factor, dropout=0.0)).eval()
    lens = torch.tensor([100, 57, min_input_frames(factor)])
    with torch.no_grad():
        out, out_lens = encoder(torch.randn(3, 100, 80), lens)
    assert out_lens.tolist() == [int(subsampled_length(int(n), factor)) for n in lens]
    assert out.shape[1] == int(out_lens.max()) and int(out_lens.min()) == 1
    assert encoder.subsampling_factor == factor


def test_x4_keeps_the_parameter_names_of_older_checkpoints() -> None:
    names = set(ConformerEncoder(EncoderConfig(preset="tiny")).subsampling.state_dict())
    assert names == {"conv.0.weight", "conv.0.bias", "conv.2.weight", "conv.2.bias", "project.weight", "project.bias"}


@pytest.mark.parametrize(("factor", "shortest"), [(2, 3), (4, 7), (6, 11), (8, 15)])
def test_too_short_rows_name_the_factor(factor: int, shortest: int) -> None:
    assert min_input_frames(factor) == shortest
    encoder = ConformerEncoder(EncoderConfig(preset="tiny", subsampling_factor=factor))
    with pytest.raises(UserError, match=rf"fewer than {shortest} feature frames.*x{factor}"):
        encoder(torch.randn(2, 40, 80), torch.tensor([40, shortest - 1]))


def test_unknown_factor_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(UserError, match="subsampling_factor"):
        ModelConfig.from_dict({"encoder": {"preset": "tiny", "subsampling_factor": 3}, "tasks": {"lid": {}}})


def test_x2_model_trains_every_task_from_a_collated_batch(tmp_path) -> None:
    """The collator takes the factor from the model: VAD targets and CTC feasibility match the x2 frames."""
    cuts = make_fixture_cuts(tmp_path / "audio")
    tokenizer = train_tokenizer_from_cuts(cuts, vocab_size=300)
    vocabs = build_label_vocabs(cuts)
    tasks = ("asr_ctc", "decoder", "intent", "lid", "emotion", "slots", "vad")
    config = ModelConfig.from_dict(
        {"encoder": {"preset": "tiny", "subsampling_factor": 2}, "tasks": {name: {} for name in tasks}}
    )
    torch.manual_seed(0)
    model = MultiTaskModel(resolve_model_config(config, tokenizer, vocabs))
    collator = MultiTaskCollator(tokenizer, vocabs, LogMelFrontend(), subsampling_factor=2)
    batch = collator(cuts)
    output = model(batch)
    assert output.enc.shape[1] == batch.vad_targets.shape[1] == int(subsampled_length(batch.features.size(1), 2))
    assert set(output.losses) == set(tasks)
    total = sum(output.losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert model.encoder.subsampling.conv[0].weight.grad.abs().sum() > 0
