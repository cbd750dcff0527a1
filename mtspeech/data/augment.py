"""Training-time augmentation: SpecAugment on features and speed perturbation on cuts. Both can be switched off.

Speed perturbation goes through Lhotse (``cut.perturb_speed``): it resamples the audio and rescales supervision
starts and durations by ``1 / factor``, so VAD targets and timestamps computed afterwards follow the new timing.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class AugmentConfig:
    """What the training dataset applies; evaluation never augments."""

    spec_augment: bool = True
    num_freq_masks: int = 2
    freq_mask_width: int = 27  # F in the SpecAugment paper (max bins per mask)
    num_time_masks: int = 5
    time_mask_width: int = 40  # T (max frames per mask)
    max_time_mask_fraction: float = 0.05  # each time mask is at most this share of the utterance
    speed_perturb: bool = False
    speed_factors: tuple[float, ...] = (0.9, 1.0, 1.1)


class SpecAugment(nn.Module):
    """Frequency and time masking on ``(B, T, F)`` features, only inside each row's valid length.

    Written here rather than using ``lhotse.dataset.SpecAugment`` because that one draws masks over the padded
    length, fills with a mean that includes padding and uses the global RNG; this one is length-aware,
    vectorised over the batch and takes an explicit generator so a batch's masks can be reproduced.
    Masked values are set to each row's mean over its valid frames. Time warping is not implemented. Like
    dropout, the module is the identity in ``eval()`` mode.
    """

    def __init__(
        self,
        num_freq_masks: int = 2,
        freq_mask_width: int = 27,
        num_time_masks: int = 5,
        time_mask_width: int = 40,
        max_time_mask_fraction: float = 0.05,
    ) -> None:
        super().__init__()
        if min(num_freq_masks, num_time_masks, freq_mask_width, time_mask_width) < 0:
            raise ValueError("SpecAugment mask counts and widths must be >= 0")
        if not 0.0 <= max_time_mask_fraction <= 1.0:
            raise ValueError(f"max_time_mask_fraction must be in [0, 1], got {max_time_mask_fraction}")
        self.num_freq_masks = num_freq_masks
        self.freq_mask_width = freq_mask_width
        self.num_time_masks = num_time_masks
        self.time_mask_width = time_mask_width
        self.max_time_mask_fraction = max_time_mask_fraction

    @staticmethod
    def _masks(
        num_masks: int, max_width: torch.Tensor, axis_len: torch.Tensor, size: int, generator: torch.Generator | None
    ) -> torch.Tensor:
        """``(B, size)`` bool: union of ``num_masks`` spans per row, width ~ U[0, max_width], inside axis_len."""
        batch = axis_len.size(0)
        if num_masks == 0:
            return torch.zeros(batch, size, dtype=torch.bool)
        u_width = torch.rand(batch, num_masks, generator=generator)
        u_start = torch.rand(batch, num_masks, generator=generator)
        width = (u_width * (max_width.unsqueeze(1) + 1).float()).long().clamp(max=max_width.unsqueeze(1))
        width = torch.minimum(width, axis_len.unsqueeze(1))
        start = (u_start * (axis_len.unsqueeze(1) - width + 1).float()).long()
        pos = torch.arange(size).view(1, 1, size)
        inside = (pos >= start.unsqueeze(-1)) & (pos < (start + width).unsqueeze(-1))
        return inside.any(dim=1)

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if not self.training:
            return features
        batch, frames, bins = features.shape
        lengths = lengths.to("cpu", torch.long)
        valid = torch.arange(frames).unsqueeze(0) < lengths.unsqueeze(1)
        freq = self._masks(
            self.num_freq_masks,
            torch.full((batch,), self.freq_mask_width),
            torch.full((batch,), bins),
            bins,
            generator,
        )
        time_width = torch.clamp((lengths.float() * self.max_time_mask_fraction).long(), max=self.time_mask_width)
        time = self._masks(self.num_time_masks, time_width, lengths, frames, generator) & valid
        masked = (freq.unsqueeze(1) & valid.unsqueeze(-1)) | time.unsqueeze(-1)
        masked = masked.to(features.device)
        valid_f = valid.to(features.device, features.dtype).unsqueeze(-1)
        row_mean = (features * valid_f).sum(dim=(1, 2)) / (valid_f.sum(dim=(1, 2)) * bins).clamp_min(1.0)
        return torch.where(masked, row_mean.view(batch, 1, 1).to(features.dtype), features)


def seeded_generator(*parts: Any) -> torch.Generator:
    """A torch generator seeded from ``parts`` (e.g. seed, epoch, cut ids): same inputs, same random stream."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


class SpeedPerturb:
    """Cut transform: each cut is replaced by ``cut.perturb_speed(f)`` with ``f`` drawn from ``factors``.

    The draw is seeded by ``(seed, epoch, cut.id)``, so it does not depend on worker assignment. A factor of
    1.0 leaves the cut (and its id) untouched; other factors append ``_sp{f}`` to the id (Lhotse's affix)."""

    def __init__(self, factors: Sequence[float] = (0.9, 1.0, 1.1), seed: int = 0) -> None:
        if not factors or any(f <= 0 for f in factors):
            raise ValueError(f"speed factors must be positive, got {list(factors)}")
        self.factors = tuple(float(f) for f in factors)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __call__(self, cuts: Any) -> Any:
        from lhotse import CutSet

        out = []
        for cut in cuts:
            factor = random.Random(f"speed:{self.seed}:{self.epoch}:{cut.id}").choice(self.factors)
            out.append(cut if factor == 1.0 else cut.perturb_speed(factor))
        return CutSet.from_cuts(out)
