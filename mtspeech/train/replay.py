"""Replay for continual learning: keep a share of the old tasks' data in the stream while learning a new task.

Fine-tuning a multi-task model on a new task alone moves the shared encoder away from what the old tasks need
and their accuracy collapses (catastrophic forgetting). Mixing a small share of the old training data into
every stretch of the new data keeps their losses in the objective, so the encoder is only moved in ways the
old tasks tolerate. It costs ``share`` of the batches and needs no change to the model or the balancer.

::

    replay:
      share: 0.2            # 20 % of the cuts come from the old corpora
      temperature: 5.0      # how the old corpora are mixed among themselves (see sampling.mix_corpora)
"""

from __future__ import annotations

from collections.abc import Mapping

from lhotse import CutSet
from pydantic import Field

from mtspeech.data.sampling import mix_corpora
from mtspeech.errors import UserError
from mtspeech.model.config import StrictConfig


class ReplayConfig(StrictConfig):
    """How much old data to replay while training on new data."""

    share: float = Field(0.2, ge=0.0, lt=1.0, description="fraction of the stream's cuts drawn from the old corpora")
    temperature: float = Field(5.0, gt=0.0, description="temperature of the mix among the old corpora")
    seed: int = Field(0, description="seed of the draw between new and old data")


def _endless(cutsets: CutSet | Mapping[str, CutSet], temperature: float, seed: int, what: str) -> CutSet:
    if isinstance(cutsets, CutSet):
        return cutsets.repeat()
    if not cutsets:
        raise UserError(f"replay: no {what} corpora given")
    if len(cutsets) == 1:
        return next(iter(cutsets.values())).repeat()
    mixed, _ = mix_corpora(cutsets, temperature=temperature, seed=seed)
    return mixed


def replay_mix(
    new: CutSet | Mapping[str, CutSet],
    old: CutSet | Mapping[str, CutSet],
    config: ReplayConfig | None = None,
) -> CutSet:
    """An endless stream where each cut comes from ``old`` with probability ``config.share``, else from ``new``.

    Several corpora on either side are first mixed by temperature (:func:`mtspeech.data.sampling.mix_corpora`);
    the two sides are then multiplexed with ``CutSet.mux``. Bound training by steps (the stream never ends)."""
    config = config or ReplayConfig()
    new_stream = _endless(new, config.temperature, config.seed, "new")
    if config.share == 0.0:
        return new_stream
    old_stream = _endless(old, config.temperature, config.seed + 1, "old")
    return CutSet.mux(new_stream, old_stream, weights=[1.0 - config.share, config.share], seed=config.seed)
