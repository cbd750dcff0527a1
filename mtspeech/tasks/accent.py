"""``accent``: an utterance classifier behind a gradient-reversal layer (domain-adversarial training, DANN).

The classifier itself learns to recognise the accent as well as it can, but the gradient it sends into the
shared encoder is multiplied by ``-lambda``: the encoder is pushed to make accents *indistinguishable*, so the
other tasks (ASR above all) cannot rely on accent-specific cues. ``lambda`` follows Ganin & Lempitsky's ramp
``max_lambda * (2 / (1 + exp(-gamma * p)) - 1)`` over training progress ``p`` (:meth:`Task.set_progress`), so the
adversary starts harmless while its classifier is still random, or stays constant (``schedule: constant``).
``reversal: false`` trains an ordinary auxiliary accent classifier instead (the encoder is *helped* to encode
accent), which is the baseline to compare against.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field

from mtspeech.model.layers import scale_gradient
from mtspeech.tasks.base import register_task
from mtspeech.tasks.pooled import PooledClassifierConfig, PooledClassifierTask


class AccentConfig(PooledClassifierConfig):
    reversal: bool = Field(True, description="reverse the encoder gradient (adversarial); false = plain auxiliary")
    max_lambda: float = Field(1.0, ge=0.0, description="strength of the reversed gradient once fully ramped")
    schedule: Literal["dann", "constant"] = Field("dann", description="dann: 2/(1+exp(-gamma*p))-1 ramp")
    gamma: float = Field(10.0, gt=0.0, description="steepness of the dann ramp")


def grl_lambda(config: AccentConfig, progress: float) -> float:
    """Reversal strength at training progress ``progress`` in [0, 1]."""
    if config.schedule == "constant":
        return config.max_lambda
    p = min(max(progress, 0.0), 1.0)
    return config.max_lambda * (2.0 / (1.0 + math.exp(-config.gamma * p)) - 1.0)


@register_task
class AccentTask(PooledClassifierTask):
    name = "accent"
    config_class = AccentConfig
    config: AccentConfig

    def __init__(self, config: AccentConfig, d_model: int) -> None:
        super().__init__(config, d_model)
        self.progress = 0.0

    def set_progress(self, progress: float) -> None:
        self.progress = float(progress)

    @property
    def reversal_lambda(self) -> float:
        """The coefficient currently applied to the encoder gradient is ``-reversal_lambda`` (0 when off)."""
        return grl_lambda(self.config, self.progress) if self.config.reversal else 0.0

    def features(self, enc: torch.Tensor) -> torch.Tensor:
        if not self.config.reversal:
            return enc
        return scale_gradient(enc, -self.reversal_lambda)
