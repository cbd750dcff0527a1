"""Samplers: temperature weights, corpus mixing, duration bucketing, DDP shards and exact resume."""

from __future__ import annotations

import io
import math
import random
import warnings
from collections import Counter
from itertools import islice
from pathlib import Path

import pytest
import torch
from lhotse import CutSet
from pipeline_fixtures import make_duration_cuts

from mtspeech.data.sampling import (
    corpus_size,
    make_eval_sampler,
    make_train_sampler,
    mix_corpora,
    padding_fraction,
    resume_state_dict,
    temperature_weights,
)
from mtspeech.errors import UserError

SIZES = {"small": 60, "medium": 240, "large": 960}


@pytest.fixture(autouse=True)
def _quiet_lhotse():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CutSet]:
    root = tmp_path_factory.mktemp("sampling")
    return {
        name: make_duration_cuts(root / f"{name}.jsonl.gz", name, n, seed)
        for seed, (name, n) in enumerate(SIZES.items())
    }


def _ids(batches) -> list[tuple[str, ...]]:
    return [tuple(cut.id for cut in batch) for batch in batches]


def _sampler(cuts, **kwargs):
    options = {"max_duration": 40.0, "seed": 7, "num_cuts_for_bins_estimate": 1000, "buffer_size": 1000}
    return make_train_sampler(cuts, **{**options, **kwargs})


# --- temperature weights ----------------------------------------------------------------------------
def test_temperature_weights_follow_the_formula() -> None:
    sizes = [1.0, 4.0, 16.0]
    assert temperature_weights(sizes, 1.0) == pytest.approx([1 / 21, 4 / 21, 16 / 21])
    assert temperature_weights(sizes, 2.0) == pytest.approx([1 / 7, 2 / 7, 4 / 7])
    scaled = [s ** (1 / 5) for s in sizes]
    assert temperature_weights(sizes, 5.0) == pytest.approx([s / sum(scaled) for s in scaled])
    assert temperature_weights({"a": 3.0, "b": 3.0}, 5.0) == pytest.approx([0.5, 0.5])
    assert max(temperature_weights(sizes, 1e6)) - min(temperature_weights(sizes, 1e6)) < 1e-4  # T -> inf: uniform
    # A higher temperature lifts the smallest corpus.
    assert temperature_weights(sizes, 5.0)[0] > temperature_weights(sizes, 2.0)[0] > temperature_weights(sizes, 1.0)[0]


@pytest.mark.parametrize("sizes, temperature", [([1.0, 0.0], 5.0), ([1.0, -2.0], 5.0), ([], 5.0), ([1.0], 0.0)])
def test_temperature_weights_reject_bad_input(sizes, temperature) -> None:
    with pytest.raises(ValueError):
        temperature_weights(sizes, temperature)


def test_corpus_size_in_hours_and_cuts(corpora) -> None:
    cuts = corpora["small"]
    assert corpus_size(cuts, "cuts") == 60
    assert corpus_size(cuts) == pytest.approx(sum(c.duration for c in cuts) / 3600)
    with pytest.raises(ValueError, match="unit"):
        corpus_size(cuts, "frames")


# --- mixing --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("temperature", [1.0, 5.0])
def test_mux_proportions_match_the_weights(corpora, temperature: float) -> None:
    mixed, weights = mix_corpora(corpora, temperature=temperature, size_unit="cuts", seed=1)
    assert list(weights.values()) == pytest.approx(temperature_weights(list(SIZES.values()), temperature))
    draws = 6000
    counts = Counter(cut.custom["corpus"] for cut in islice(mixed, draws))
    for name, p in weights.items():
        sigma = math.sqrt(draws * p * (1 - p))
        assert abs(counts[name] - draws * p) < 4 * sigma, (name, counts[name], draws * p)
    # The stream is endless: each corpus repeats, so the small one appears far more than its 60 cuts.
    assert counts["small"] > 60 * 3


def test_mixed_sampler_batches_hold_every_corpus_in_proportion(corpora) -> None:
    sampler = _sampler(corpora, size_unit="cuts", temperature=5.0)
    weights = temperature_weights(list(SIZES.values()), 5.0)
    counts = Counter(cut.custom["corpus"] for batch in islice(sampler, 300) for cut in batch)
    total = sum(counts.values())
    for name, p in zip(SIZES, weights, strict=True):
        assert abs(counts[name] / total - p) < 0.05, (name, counts[name] / total, p)


def test_mixing_with_explicit_sizes_and_empty_corpora(corpora) -> None:
    _, weights = mix_corpora(corpora, temperature=1.0, sizes={"small": 1.0, "medium": 1.0, "large": 2.0})
    assert weights == pytest.approx({"small": 0.25, "medium": 0.25, "large": 0.5})
    with pytest.raises(UserError, match="no training data"):
        mix_corpora(corpora, sizes={"small": 0.0, "medium": 1.0, "large": 1.0})


# --- bucketing -----------------------------------------------------------------------------------------
def test_bucketing_respects_limits_and_cuts_padding(corpora) -> None:
    cuts = corpora["large"]
    batches = [list(b) for b in _sampler(cuts, max_duration=60.0, min_duration=1.0, max_cut_duration=11.0)]
    assert all(sum(c.duration for c in b) <= 60.0 for b in batches)
    kept = [c for b in batches for c in b]
    assert all(1.0 <= c.duration <= 11.0 for c in kept)
    assert len({c.id for c in kept}) == len(kept)  # one epoch: no repeats

    rng = random.Random(0)
    shuffled = kept[:]
    rng.shuffle(shuffled)
    random_batches, start = [], 0
    for b in batches:  # random batches of the very same sizes
        random_batches.append(shuffled[start : start + len(b)])
        start += len(b)
    bucketed, unbucketed = padding_fraction(batches), padding_fraction(random_batches)
    assert bucketed < 0.15 and bucketed < unbucketed / 2, (bucketed, unbucketed)


def test_padding_fraction_counts_feature_frames(corpora) -> None:
    one, two, three = (next(c for c in corpora["small"]).with_id(f"c{i}") for i in range(3))
    one.duration, two.duration, three.duration = 1.0, 2.0, 3.0
    assert padding_fraction([[one, two]]) == pytest.approx(1 - 300 / 400)
    assert padding_fraction([[one, two], [three]]) == pytest.approx(1 - 600 / 700)
    with pytest.raises(ValueError):
        padding_fraction([[]])


def test_corpus_smaller_than_the_bucket_count(tmp_path: Path) -> None:
    cuts = make_duration_cuts(tmp_path / "tiny.jsonl.gz", "tiny", 3, 0)
    batches = list(_sampler(cuts, num_buckets=10, drop_last=False))
    assert sorted(c.id for b in batches for c in b) == ["tiny-00000", "tiny-00001", "tiny-00002"]
    with pytest.raises(UserError, match="no training cuts"):
        _sampler(cuts, min_duration=100.0)
    with pytest.raises(UserError, match="max_duration"):
        _sampler(cuts, max_duration=0.0)


def test_eval_sampler_yields_every_cut_once_in_order(corpora) -> None:
    sampler = make_eval_sampler({"small": corpora["small"], "medium": corpora["medium"]}, max_duration=30.0)
    ids = [c.id for b in sampler for c in b]
    expected = [c.id for c in corpora["small"]] + [c.id for c in corpora["medium"]]
    assert ids == expected


def test_ddp_ranks_get_disjoint_batches(corpora) -> None:
    cuts = corpora["medium"]
    rank0 = {c.id for b in _sampler(cuts, world_size=2, rank=0) for c in b}
    rank1 = {c.id for b in _sampler(cuts, world_size=2, rank=1) for c in b}
    assert rank0 and rank1 and not rank0 & rank1
    assert len(list(_sampler(cuts, world_size=2, rank=0))) == len(list(_sampler(cuts, world_size=2, rank=1)))


# --- exact resume --------------------------------------------------------------------------------------
def _resumed(make, consumed: int, prefetched: int, epoch: int = 0):
    """A sampler that handed out ``consumed + prefetched`` batches (the DataLoader ran ahead), checkpointed
    after ``consumed``, saved with torch.save and restored into a fresh sampler."""
    running = make()
    running.set_epoch(epoch)
    handed_out = list(islice(running, consumed + prefetched))
    assert len(handed_out) == consumed + prefetched
    buffer = io.BytesIO()
    torch.save(resume_state_dict(running, consumed), buffer)
    buffer.seek(0)
    restored = make()
    restored.load_state_dict(torch.load(buffer, weights_only=False))
    return restored


@pytest.mark.parametrize("epoch", [0, 1])
def test_resumed_single_corpus_sampler_yields_exactly_the_remaining_batches(corpora, epoch: int) -> None:
    def make():
        return _sampler(corpora["medium"])

    reference = make()
    reference.set_epoch(epoch)
    full = _ids(reference)
    assert len(full) > 10
    restored = _resumed(make, consumed=6, prefetched=3, epoch=epoch)
    assert _ids(restored) == full[6:]
    # After the resumed epoch, the next epoch starts afresh and matches an uninterrupted run's next epoch.
    restored.set_epoch(epoch + 1)
    reference.set_epoch(epoch + 1)
    assert _ids(restored) == _ids(reference)


def test_epochs_are_shuffled_differently(corpora) -> None:
    sampler = _sampler(corpora["medium"])
    first = _ids(sampler)
    sampler.set_epoch(1)
    assert _ids(sampler) != first


def test_resumed_mixed_sampler_continues_the_same_stream(corpora) -> None:
    def make():
        return _sampler(corpora, size_unit="cuts")

    expected = _ids(islice(make(), 25))
    restored = _resumed(make, consumed=11, prefetched=4)
    assert _ids(islice(restored, 14)) == expected[11:25]


def test_resume_rejects_more_batches_than_were_handed_out(corpora) -> None:
    sampler = _sampler(corpora["small"])
    list(islice(sampler, 2))
    with pytest.raises(ValueError, match="handed out"):
        resume_state_dict(sampler, 3)
