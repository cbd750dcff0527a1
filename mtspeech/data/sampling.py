"""Batch sampling: duration-bucketed dynamic batches, temperature mixing of corpora, DDP sharding, exact resume.

Mixing: corpus ``i`` of size ``D_i`` is drawn with probability ``p_i = D_i^(1/T) / sum_j D_j^(1/T)``. ``T = 1``
samples proportionally to size, ``T -> inf`` uniformly; ``T = 5`` (the default, as in multilingual MT/ASR work)
lifts small corpora without letting them dominate. Sizes are hours of audio by default (``size_unit="cuts"`` uses
cut counts). Each corpus is repeated without end so the probabilities hold for the whole run: a mixed stream is
infinite and training must be bounded by steps. A single corpus is iterated in finite epochs (call
``sampler.set_epoch(e)`` each epoch).

Resume: Lhotse samplers restore by replaying the batch order up to the number of batches they handed out. A
DataLoader prefetches, so the sampler is ahead of what training consumed; :func:`resume_state_dict` rewrites the
count to the batches actually trained on, and ``load_state_dict`` then continues exactly there.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from itertools import islice
from typing import Any

from lhotse import CutSet
from lhotse.dataset import DynamicBucketingSampler, DynamicCutSampler
from lhotse.dataset.sampling.base import CutSampler, TimeConstraint
from lhotse.dataset.sampling.dynamic_bucketing import estimate_duration_buckets
from lhotse.utils import compute_num_samples

from mtspeech.data.features import num_feature_frames
from mtspeech.data.schema import SAMPLE_RATE
from mtspeech.errors import UserError

SIZE_UNITS = ("hours", "cuts")


def temperature_weights(sizes: Sequence[float] | Mapping[str, float], temperature: float) -> list[float]:
    """Sampling probabilities ``p_i ∝ D_i^(1/T)`` (summing to 1), in the order of ``sizes``."""
    values = list(sizes.values()) if isinstance(sizes, Mapping) else list(sizes)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not values or any(not math.isfinite(v) or v <= 0 for v in values):
        raise ValueError(f"corpus sizes must be positive and finite, got {values}")
    scaled = [v ** (1.0 / temperature) for v in values]
    total = sum(scaled)
    return [s / total for s in scaled]


def corpus_size(cuts: Iterable[Any], unit: str = "hours") -> float:
    """Hours of audio or number of cuts (one pass over the manifest)."""
    if unit not in SIZE_UNITS:
        raise ValueError(f"size unit must be one of {SIZE_UNITS}, got {unit!r}")
    if unit == "cuts":
        return float(sum(1 for _ in cuts))
    return sum(cut.duration for cut in cuts) / 3600.0


def padding_fraction(batches: Iterable[Iterable[Any]], frame_shift: float = 0.01) -> float:
    """Share of the feature frames of padded ``(B, T_max)`` batches that are padding, over all ``batches``.

    Frames are counted as :class:`~mtspeech.data.features.LogMelFrontend` makes them from 16 kHz audio (every
    cut is resampled to 16 kHz first), so this is the share of wasted encoder input. Lower is better."""
    hop = int(round(frame_shift * SAMPLE_RATE))
    padded = 0
    useful = 0
    for batch in batches:
        frames = [num_feature_frames(compute_num_samples(cut.duration, SAMPLE_RATE), hop) for cut in batch]
        if frames:
            padded += max(frames) * len(frames)
            useful += sum(frames)
    if padded == 0:
        raise ValueError("padding_fraction: no cuts (or only empty ones) in the batches")
    return 1.0 - useful / padded


def _duration_filter(min_duration: float, max_duration_per_cut: float | None):
    def keep(cut: Any) -> bool:
        return cut.duration >= min_duration and (max_duration_per_cut is None or cut.duration <= max_duration_per_cut)

    return keep


def mix_corpora(
    cutsets: Mapping[str, CutSet],
    temperature: float = 5.0,
    sizes: Mapping[str, float] | None = None,
    size_unit: str = "hours",
    seed: int = 0,
) -> tuple[CutSet, dict[str, float]]:
    """An endless temperature-weighted mix of ``cutsets``; returns it with the probabilities used."""
    names = list(cutsets)
    if sizes is None:
        sizes = {name: corpus_size(cutsets[name], size_unit) for name in names}
    missing = [n for n in names if n not in sizes]
    if missing:
        raise ValueError(f"sizes lacks corpora {missing}")
    empty = [n for n in names if sizes[n] <= 0]
    if empty:
        raise UserError(f"corpora with no training data: {', '.join(empty)}")
    weights = temperature_weights([sizes[n] for n in names], temperature)
    mixed = CutSet.mux(*(cutsets[n].repeat() for n in names), weights=weights, seed=seed)
    return mixed, dict(zip(names, weights, strict=True))


def make_train_sampler(
    cutsets: Mapping[str, CutSet] | CutSet,
    max_duration: float,
    temperature: float = 5.0,
    num_buckets: int = 10,
    shuffle: bool = True,
    seed: int = 0,
    world_size: int | None = None,
    rank: int | None = None,
    sizes: Mapping[str, float] | None = None,
    size_unit: str = "hours",
    min_duration: float = 0.1,
    max_cut_duration: float | None = 30.0,
    buffer_size: int = 20000,
    num_cuts_for_bins_estimate: int = 10000,
    drop_last: bool = False,
) -> DynamicBucketingSampler:
    """Duration-bucketed training sampler over one corpus or a temperature mix of several.

    ``max_duration`` is seconds of audio per batch (per rank). Cuts shorter than ``min_duration`` (too short
    for the encoder) or longer than ``max_cut_duration`` are dropped. With ``world_size``/``rank`` each rank
    gets its own share of batches (Lhotse's rank sharding); all ranks must use the same ``seed``.

    ``drop_last=False`` keeps the partial batch each bucket holds at the end of an epoch: dropping them would
    lose up to ``num_buckets`` batches per epoch, and *every* batch of a corpus smaller than one full batch per
    bucket (a tiny test corpus would yield nothing)."""
    if isinstance(cutsets, CutSet):
        cutsets = {"train": cutsets}
    if not cutsets:
        raise ValueError("make_train_sampler needs at least one CutSet")
    if max_duration <= 0:
        raise UserError(f"max_duration must be > 0 seconds, got {max_duration}")
    keep = _duration_filter(min_duration, max_cut_duration)
    filtered = {name: cuts.filter(keep) for name, cuts in cutsets.items()}
    if len(filtered) == 1:
        stream = next(iter(filtered.values()))
    else:
        stream, _ = mix_corpora(filtered, temperature, sizes, size_unit, seed)
    return DynamicBucketingSampler(
        stream,
        max_duration=max_duration,
        duration_bins=_duration_bins(stream, num_buckets, num_cuts_for_bins_estimate, max_duration),
        shuffle=shuffle,
        drop_last=drop_last,
        seed=seed,
        world_size=world_size,
        rank=rank,
        buffer_size=buffer_size,
        num_cuts_for_bins_estimate=num_cuts_for_bins_estimate,
    )


def _duration_bins(stream: CutSet, num_buckets: int, num_cuts: int, max_duration: float) -> list[float]:
    """Bucket boundaries from the first ``num_cuts`` cuts, as Lhotse estimates them, but with at most one bucket
    per cut: Lhotse's own estimate fails outright on a corpus with fewer cuts than buckets (a tiny test corpus)."""
    if num_buckets < 1:
        raise UserError(f"num_buckets must be >= 1, got {num_buckets}")
    sample = list(islice(stream, num_cuts))
    if not sample:
        raise UserError("no training cuts left after the min_duration / max_cut_duration filters")
    buckets = min(num_buckets, len(sample))
    if buckets == 1:
        return []
    return estimate_duration_buckets(sample, num_buckets=buckets, constraint=TimeConstraint(max_duration=max_duration))


def make_eval_sampler(
    cutsets: Mapping[str, CutSet] | CutSet,
    max_duration: float,
    world_size: int | None = None,
    rank: int | None = None,
) -> DynamicCutSampler:
    """Sequential, unshuffled batches over all cuts of one or more corpora (corpora one after another)."""
    if isinstance(cutsets, CutSet):
        chained = cutsets
    else:
        parts = list(cutsets.values())
        if not parts:
            raise ValueError("make_eval_sampler needs at least one CutSet")
        chained = parts[0]
        for part in parts[1:]:
            chained = chained + part
    return DynamicCutSampler(chained, max_duration=max_duration, shuffle=False, world_size=world_size, rank=rank)


def resume_state_dict(sampler: CutSampler, batches_consumed: int) -> dict[str, Any]:
    """The sampler's ``state_dict()`` rewritten to say that exactly ``batches_consumed`` batches of the current
    epoch were used (the sampler itself has run ahead by the DataLoader's prefetch)."""
    state = copy.deepcopy(sampler.state_dict())
    epoch_stats = state["diagnostics"]["stats_per_epoch"][state["diagnostics"]["current_epoch"]]
    handed_out = epoch_stats["kept_batches"] + epoch_stats["discarded_batches"]
    if not 0 <= batches_consumed <= handed_out:
        raise ValueError(f"batches_consumed={batches_consumed}, but the sampler handed out {handed_out} this epoch")
    epoch_stats["kept_batches"] = batches_consumed
    epoch_stats["discarded_batches"] = 0
    return state
