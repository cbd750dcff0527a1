"""Augmentation: SpecAugment (valid frames only, reproducible, off in eval) and speed perturbation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet, MonoCut, Recording, SupervisionSegment
from pipeline_fixtures import make_fixture_cuts

from mtspeech.data.augment import AugmentConfig, SpecAugment, SpeedPerturb, seeded_generator
from mtspeech.data.batch import IGNORE
from mtspeech.data.collate import MultiTaskCollator
from mtspeech.data.dataset import MultiTaskDataset, make_dataloader
from mtspeech.data.features import LogMelFrontend, load_waveform
from mtspeech.data.labels import build_label_vocabs
from mtspeech.data.tokenizer import train_tokenizer_from_cuts

LENGTHS = [200, 120, 37]


def _features(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(LENGTHS)
    feats = torch.randn(3, 200, 80, generator=gen) + 5.0
    feats[torch.arange(200).unsqueeze(0) >= lengths.unsqueeze(1)] = 0.0
    return feats, lengths


def test_spec_augment_masks_only_valid_frames_with_the_row_mean() -> None:
    feats, lengths = _features()
    spec = SpecAugment(num_freq_masks=2, freq_mask_width=27, num_time_masks=5, time_mask_width=40)
    out = spec(feats, lengths, generator=torch.Generator().manual_seed(1))
    changed = out != feats
    for row, n in enumerate(LENGTHS):
        assert not changed[row, n:].any(), "padding must stay untouched"
        assert changed[row, :n].any()
        mean = feats[row, :n].mean()
        torch.testing.assert_close(out[row][changed[row]], mean.expand(int(changed[row].sum())))
        # Masks are whole bands: a masked frequency bin is masked on every valid frame, a masked frame on
        # every bin; the rest of the row is untouched.
        bins = changed[row, :n].all(dim=0)
        frames = changed[row, :n].all(dim=1)
        assert torch.equal(changed[row, :n], bins.unsqueeze(0) | frames.unsqueeze(1))
        assert int(bins.sum()) <= 2 * 27
        # Time masks: at most 5, each at most min(40, 5% of the row) frames wide.
        assert int(frames.sum()) <= 5 * min(40, int(n * 0.05))


def test_spec_augment_is_reproducible_and_varies_with_the_seed() -> None:
    feats, lengths = _features()
    spec = SpecAugment()
    a = spec(feats, lengths, generator=seeded_generator("specaug", 0, 0, "cut-a"))
    b = spec(feats, lengths, generator=seeded_generator("specaug", 0, 0, "cut-a"))
    c = spec(feats, lengths, generator=seeded_generator("specaug", 0, 1, "cut-a"))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_spec_augment_is_off_in_eval_mode_and_with_zero_masks() -> None:
    feats, lengths = _features()
    spec = SpecAugment().eval()
    assert torch.equal(spec(feats, lengths), feats)
    none = SpecAugment(num_freq_masks=0, num_time_masks=0)
    assert torch.equal(none(feats, lengths), feats)
    with pytest.raises(ValueError):
        SpecAugment(num_time_masks=-1)
    with pytest.raises(ValueError):
        SpecAugment(max_time_mask_fraction=1.5)


# --- speed perturbation ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tone_cut(tmp_path_factory: pytest.TempPathFactory) -> MonoCut:
    """2 s of a 1 kHz tone, with speech marked at [0.5, 1.5)."""
    path = tmp_path_factory.mktemp("tone") / "tone.wav"
    t = np.arange(32000) / 16000
    sf.write(path, (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), 16000)
    recording = Recording.from_file(path, recording_id="tone")
    sup = SupervisionSegment("tone-0", "tone", 0.5, 1.0, text="a b", language="en")
    return MonoCut("tone", 0.0, 2.0, 0, recording=recording, supervisions=[sup], custom={"exact_segments": True})


def _peak_hz(wave: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.argmax(spectrum) * 16000 / len(wave))


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturbation_scales_duration_timing_and_pitch(tone_cut: MonoCut, factor: float) -> None:
    (cut,) = SpeedPerturb([factor])(CutSet.from_cuts([tone_cut]))
    assert cut.id == f"tone_sp{factor}"
    assert cut.duration == pytest.approx(2.0 / factor, abs=1 / 16000)
    wave = load_waveform(cut)
    assert len(wave) == pytest.approx(32000 / factor, abs=1)
    assert _peak_hz(wave) == pytest.approx(1000 * factor, rel=0.01)
    (sup,) = cut.supervisions
    assert sup.start == pytest.approx(0.5 / factor, abs=1e-3) and sup.duration == pytest.approx(1.0 / factor, abs=1e-3)


def test_speed_factor_one_leaves_the_cut_alone_and_draws_are_seeded(tone_cut: MonoCut) -> None:
    (same,) = SpeedPerturb([1.0])(CutSet.from_cuts([tone_cut]))
    assert same.id == "tone" and same.duration == 2.0
    cuts = CutSet.from_cuts(tone_cut.with_id(f"tone{i}") for i in range(30))
    perturb = SpeedPerturb((0.9, 1.0, 1.1), seed=5)
    first = [c.id for c in perturb(cuts)]
    assert first == [c.id for c in SpeedPerturb((0.9, 1.0, 1.1), seed=5)(cuts)]
    assert {c.split("_sp")[-1] if "_sp" in c else "1.0" for c in first} == {"0.9", "1.0", "1.1"}
    perturb.set_epoch(1)
    assert [c.id for c in perturb(cuts)] != first
    with pytest.raises(ValueError):
        SpeedPerturb([0.0])


# --- the dataset: augmentation only in training ------------------------------------------------------------
@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory):
    cuts = make_fixture_cuts(tmp_path_factory.mktemp("augment") / "audio")
    cuts = CutSet.from_cuts(c for c in cuts if c.sampling_rate == 16000)  # skip resampling: keeps the test fast
    tok = train_tokenizer_from_cuts(cuts, vocab_size=300)
    return cuts, MultiTaskCollator(tok, build_label_vocabs(cuts), LogMelFrontend())


def test_eval_dataset_never_augments(pipeline) -> None:
    cuts, collator = pipeline
    everything_on = AugmentConfig(spec_augment=True, speed_perturb=True, speed_factors=(0.9,))
    dataset = MultiTaskDataset(collator, train=False, augment=everything_on)
    batch = dataset[cuts]
    plain = collator(cuts)
    assert batch.ids == plain.ids and torch.equal(batch.features, plain.features)


def test_train_dataset_spec_augment_changes_only_valid_frames(pipeline) -> None:
    cuts, collator = pipeline
    dataset = MultiTaskDataset(collator, train=True, augment=AugmentConfig(spec_augment=True))
    plain = collator(cuts)
    batch = dataset[cuts]
    assert batch.ids == plain.ids and torch.equal(batch.feature_lens, plain.feature_lens)
    changed = batch.features != plain.features
    valid = torch.arange(plain.features.size(1)).unsqueeze(0) < plain.feature_lens.unsqueeze(1)
    assert changed.any() and not changed[~valid].any()
    assert torch.equal(dataset[cuts].features, batch.features)  # same epoch, same masks
    dataset.set_epoch(1)
    assert not torch.equal(dataset[cuts].features, batch.features)


def test_train_dataset_speed_perturbation_moves_vad_targets(pipeline) -> None:
    cuts, collator = pipeline
    alarm = CutSet.from_cuts([cuts["en-alarm"]])  # speech at [0.3, 1.5) of 2.0 s
    dataset = MultiTaskDataset(
        collator, train=True, augment=AugmentConfig(spec_augment=False, speed_perturb=True, speed_factors=(0.8,))
    )
    slow, plain = dataset[alarm], collator(alarm)
    assert slow.ids == ["en-alarm_sp0.8"]
    assert int(slow.feature_lens[0]) == 250 and int(plain.feature_lens[0]) == 200
    first_speech = [int((b.vad_targets[0] == 1).nonzero()[0]) for b in (slow, plain)]
    last_speech = [int((b.vad_targets[0] == 1).nonzero()[-1]) for b in (slow, plain)]
    # 0.3 s -> 0.375 s and 1.5 s -> 1.875 s: in 40 ms encoder frames, about 2 and 9 frames later.
    assert abs((first_speech[0] - first_speech[1]) - 2) <= 1
    assert abs((last_speech[0] - last_speech[1]) - 9) <= 1
    assert torch.all(slow.vad_targets[0, : int(slow.vad_targets.size(1))] != IGNORE)


def test_dataloader_runs_train_and_eval(pipeline, tmp_path: Path) -> None:
    cuts, collator = pipeline
    cuts.to_file(tmp_path / "cuts.jsonl.gz")
    lazy = CutSet.from_jsonl_lazy(tmp_path / "cuts.jsonl.gz")
    train = make_dataloader(lazy, collator, train=True, max_duration=5.0, drop_last=False)
    train_ids = sorted(i for batch in train for i in batch.ids)
    assert train_ids == sorted(c.id for c in cuts)
    evaluation = make_dataloader(lazy, collator, train=False, max_duration=5.0)
    assert [i for batch in evaluation for i in batch.ids] == [c.id for c in cuts]
