"""The torch Dataset fed by Lhotse samplers, and the one-call DataLoader factory training uses.

The sampler yields a CutSet per batch (a map-style "index"); ``MultiTaskDataset[cuts]`` applies the cut
transforms (speed perturbation), collates, then SpecAugment: all inside DataLoader workers. Randomness of a batch
is seeded from ``(seed, epoch, cut ids)``, so batches do not depend on the number of workers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from lhotse import CutSet
from torch.utils.data import DataLoader, Dataset

from mtspeech.data.augment import AugmentConfig, SpecAugment, SpeedPerturb, seeded_generator
from mtspeech.data.batch import Batch
from mtspeech.data.collate import MultiTaskCollator
from mtspeech.data.sampling import make_eval_sampler, make_train_sampler


class MultiTaskDataset(Dataset):
    """``dataset[cuts] -> Batch``. Augmentation runs only when ``train`` and enabled in ``augment``."""

    def __init__(self, collator: MultiTaskCollator, train: bool = False, augment: AugmentConfig | None = None) -> None:
        self.collator = collator
        self.train = train
        self.augment = augment if augment is not None else AugmentConfig(spec_augment=False, speed_perturb=False)
        self.seed = collator.seed
        self.epoch = 0
        self.speed_perturb = (
            SpeedPerturb(self.augment.speed_factors, seed=self.seed) if train and self.augment.speed_perturb else None
        )
        self.spec_augment = (
            SpecAugment(
                num_freq_masks=self.augment.num_freq_masks,
                freq_mask_width=self.augment.freq_mask_width,
                num_time_masks=self.augment.num_time_masks,
                time_mask_width=self.augment.time_mask_width,
                max_time_mask_fraction=self.augment.max_time_mask_fraction,
            )
            if train and self.augment.spec_augment
            else None
        )

    def set_epoch(self, epoch: int) -> None:
        """Re-seed per-epoch choices (tasks, speed factors, masks). Call before iterating a new epoch's
        DataLoader; with ``persistent_workers`` the workers keep the epoch they were started with."""
        self.epoch = int(epoch)
        self.collator.set_epoch(epoch)
        if self.speed_perturb is not None:
            self.speed_perturb.set_epoch(epoch)

    def __getitem__(self, cuts: CutSet) -> Batch:
        if self.speed_perturb is not None:
            cuts = self.speed_perturb(cuts)
        batch = self.collator(cuts)
        if self.spec_augment is not None:
            generator = seeded_generator("specaug", self.seed, self.epoch, *batch.ids)
            batch.features = self.spec_augment(batch.features, batch.feature_lens, generator=generator)
        return batch

    def __len__(self) -> int:
        raise TypeError("MultiTaskDataset is indexed by CutSets from a Lhotse sampler and has no length")


def make_dataloader(
    cuts: CutSet | Mapping[str, CutSet],
    collator: MultiTaskCollator,
    *,
    train: bool,
    max_duration: float,
    augment: AugmentConfig | None = None,
    num_workers: int = 0,
    seed: int | None = None,
    world_size: int | None = None,
    rank: int | None = None,
    temperature: float = 5.0,
    num_buckets: int = 10,
    sizes: Mapping[str, float] | None = None,
    pin_memory: bool = False,
    prefetch_factor: int | None = None,
    **sampler_kwargs: Any,
) -> DataLoader:
    """One call from cuts to batches. ``train=True``: bucketed, shuffled, temperature-mixed (when several corpora
    are given), augmented; ``train=False``: sequential, unaugmented. ``loader.sampler`` is the Lhotse sampler
    (``state_dict``/``load_state_dict``/``set_epoch``); ``loader.dataset.set_epoch`` re-seeds augmentation."""
    seed = collator.seed if seed is None else seed
    if train:
        sampler = make_train_sampler(
            cuts,
            max_duration=max_duration,
            temperature=temperature,
            num_buckets=num_buckets,
            seed=seed,
            world_size=world_size,
            rank=rank,
            sizes=sizes,
            **sampler_kwargs,
        )
    else:
        sampler = make_eval_sampler(cuts, max_duration=max_duration, world_size=world_size, rank=rank)
    dataset = MultiTaskDataset(collator, train=train, augment=augment)
    return DataLoader(
        dataset,
        sampler=sampler,
        batch_size=None,
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=prefetch_factor if num_workers > 0 else None,
        persistent_workers=False,
        generator=torch.Generator().manual_seed(seed),
    )
