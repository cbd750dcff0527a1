"""The log-mel front end (exactness against Lhotse, padding, CMVN) and the encoder frame arithmetic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lhotse import Fbank, FbankConfig
from pipeline_fixtures import make_fixture_cuts
from torch import nn

from mtspeech.data.features import (
    NUM_MEL_BINS,
    SUBSAMPLING_LAYOUTS,
    LogMelFrontend,
    compute_global_cmvn,
    encoder_frame_centres,
    load_waveform,
    num_feature_frames,
    pad_waveforms,
    subsampled_length,
)


@pytest.fixture(scope="module")
def fixture_cuts(tmp_path_factory: pytest.TempPathFactory):
    return make_fixture_cuts(tmp_path_factory.mktemp("features") / "audio")


def _random_waves(lengths: list[int], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    t = [np.arange(n) / 16000 for n in lengths]
    return [(0.2 * np.sin(2 * np.pi * 300 * x) + 0.05 * rng.standard_normal(len(x))).astype(np.float32) for x in t]


def test_padded_batch_matches_lhotse_fbank_of_each_waveform_alone() -> None:
    lengths = [16037, 401, 1999, 5555, 8000]
    waves = _random_waves(lengths)
    frontend = LogMelFrontend()
    padded, lens = pad_waveforms(waves)
    feats, frame_lens = frontend(padded, lens)
    extractor = Fbank(FbankConfig(num_mel_bins=NUM_MEL_BINS))
    for row, wave in enumerate(waves):
        reference = extractor.extract(wave, 16000)
        assert int(frame_lens[row]) == reference.shape[0] == (len(wave) + 80) // 160
        np.testing.assert_allclose(feats[row, : frame_lens[row]].numpy(), reference, atol=1e-4)


def test_output_shape_dtype_and_zeroed_padding() -> None:
    lengths = [12000, 3000, 150]  # the last one is shorter than one 25 ms window
    padded, lens = pad_waveforms(_random_waves(lengths, seed=1))
    frontend = LogMelFrontend()
    feats, frame_lens = frontend(padded, lens)
    assert feats.dtype == torch.float32 and frame_lens.dtype == torch.long
    assert feats.shape == (3, num_feature_frames(12000), 80)
    assert frame_lens.tolist() == [75, 19, 1]
    for row, n in enumerate(frame_lens.tolist()):
        assert torch.all(feats[row, n:] == 0)
        assert torch.all(feats[row, :n] != 0)
    # A row's features do not depend on what it is batched with.
    alone, _ = frontend(padded[2, :150])
    torch.testing.assert_close(alone[0], feats[2, :1])


def test_features_stay_float32_under_autocast() -> None:
    padded, lens = pad_waveforms(_random_waves([8000, 6000], seed=2))
    frontend = LogMelFrontend()
    reference, _ = frontend(padded, lens)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        feats, _ = frontend(padded, lens)
    assert feats.dtype == torch.float32
    torch.testing.assert_close(feats, reference)


def test_load_waveform_resamples_and_downmixes(fixture_cuts) -> None:
    stereo = fixture_cuts["en-stereo-22k"]
    assert stereo.sampling_rate == 22050 and stereo.num_channels == 2
    wave = load_waveform(stereo)
    assert wave.ndim == 1 and wave.dtype == np.float32
    assert abs(len(wave) - round(stereo.duration * 16000)) <= 1


def test_global_cmvn_normalises_the_data_it_was_computed_on(fixture_cuts) -> None:
    frontend = LogMelFrontend()
    waves = [load_waveform(c) for c in fixture_cuts]
    padded, lens = pad_waveforms(waves)
    raw, frame_lens = frontend(padded, lens)
    valid = torch.arange(raw.size(1)).unsqueeze(0) < frame_lens.unsqueeze(1)
    # Identity until statistics are set.
    torch.testing.assert_close(raw[valid], frontend.log_mel(padded, lens)[0][valid])
    assert raw[valid].mean(0).abs().max() > 1.0

    mean, std = compute_global_cmvn(fixture_cuts, frontend, batch_size=3)
    assert mean.shape == std.shape == (NUM_MEL_BINS,)
    torch.testing.assert_close(mean, raw[valid].mean(0), atol=1e-3, rtol=1e-4)
    normalised, _ = frontend(padded, lens)
    frames = normalised[valid].double()
    assert frames.mean(0).abs().max() < 1e-3
    assert (frames.std(0, unbiased=False) - 1).abs().max() < 1e-3
    assert torch.all(normalised[~valid] == 0)

    # The statistics are buffers: they travel in the state_dict and give the same features after loading.
    restored = LogMelFrontend()
    restored.load_state_dict(frontend.state_dict())
    torch.testing.assert_close(restored(padded, lens)[0], normalised)
    with pytest.raises(ValueError, match="shape"):
        frontend.set_cmvn(torch.zeros(40), torch.ones(40))


def test_compute_global_cmvn_rejects_empty_input() -> None:
    with pytest.raises(ValueError, match="no feature frames"):
        compute_global_cmvn([], LogMelFrontend())


@pytest.mark.parametrize("factor", sorted(SUBSAMPLING_LAYOUTS))
def test_subsampled_length_matches_real_convolutions(factor: int) -> None:
    convs = nn.Sequential(*(nn.Conv1d(1, 1, k, stride=s) for k, s in SUBSAMPLING_LAYOUTS[factor]))
    for frames in range(16, 90):
        assert convs(torch.zeros(1, 1, frames)).shape[-1] == subsampled_length(frames, factor)


def test_factor_4_matches_the_encoder_subsampling() -> None:
    from mtspeech.model.encoder import Conv2dSubsampling

    sub = Conv2dSubsampling(NUM_MEL_BINS, 8, 0.0)
    for frames in (7, 8, 9, 10, 11, 57, 100, 101):
        out, lens = sub(torch.zeros(1, frames, NUM_MEL_BINS), torch.tensor([frames]))
        assert out.shape[1] == int(lens[0]) == subsampled_length(frames, 4)
    assert subsampled_length(6, 4) == 0  # too short for the encoder: the collator must reject it


@pytest.mark.parametrize("factor", sorted(SUBSAMPLING_LAYOUTS))
def test_encoder_frame_centres_are_the_receptive_field_centres(factor: int) -> None:
    """Push one-hot inputs through all-ones convolutions: encoder frame j is touched by exactly the input
    frames of its receptive field, whose midpoint must be the reported centre."""
    frames = 80
    convs = nn.Sequential(*(nn.Conv1d(1, 1, k, stride=s, bias=False) for k, s in SUBSAMPLING_LAYOUTS[factor]))
    for conv in convs:
        nn.init.ones_(conv.weight)
    n_enc = int(subsampled_length(frames, factor))
    with torch.no_grad():
        touched = torch.stack([convs(torch.eye(frames)[k].view(1, 1, -1)).flatten() > 0 for k in range(frames)])
    centres = encoder_frame_centres(n_enc, factor)
    for j in range(n_enc):
        inputs = touched[:, j].nonzero().flatten()
        assert float(centres[j]) == (int(inputs.min()) + int(inputs.max())) / 2
    if factor == 4:
        assert centres[:3].tolist() == [3.0, 7.0, 11.0]


def test_unknown_subsampling_factor_is_rejected() -> None:
    with pytest.raises(ValueError, match="subsampling factor"):
        subsampled_length(100, 5)


def test_fixture_cut_features_have_the_cut_duration(fixture_cuts) -> None:
    frontend = LogMelFrontend()
    for cut in fixture_cuts:
        feats, lens = frontend(torch.from_numpy(load_waveform(cut)))
        assert int(lens[0]) == feats.shape[1] == round(cut.duration * 100)


def test_frontend_is_part_of_a_saved_model(tmp_path: Path) -> None:
    """The front end has no parameters at all (optimisers and parameter counts never see it) but its buffers,
    CMVN included, are saved with the model."""
    frontend = LogMelFrontend()
    frontend.set_cmvn(torch.full((80,), 2.0), torch.full((80,), 4.0))
    assert list(frontend.parameters()) == []
    assert {"cmvn_mean", "cmvn_istd", "fbank._fb"} <= set(frontend.state_dict())
    torch.save(frontend.state_dict(), tmp_path / "fe.pt")
    state = torch.load(tmp_path / "fe.pt")
    torch.testing.assert_close(state["cmvn_mean"], torch.full((80,), 2.0))
    torch.testing.assert_close(state["cmvn_istd"], torch.full((80,), 0.25))
