"""``vad``: speech / non-speech for every encoder frame (40 ms).

Head: a per-frame MLP to one logit (the speech log-odds). Loss: binary cross-entropy averaged over the frames
that carry a target; ``Batch.vad_targets`` is :data:`~mtspeech.data.batch.IGNORE` on padding and on cuts whose
segments are not exact, so such rows teach nothing. Prediction: 1/0 per valid frame at probability 0.5;
:meth:`VadTask.speech_probs` gives the probabilities that ``mtspeech.decode`` thresholds and smooths into
segments.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from mtspeech.data.batch import IGNORE, Batch
from mtspeech.tasks.base import Task, TaskConfig, TaskLoss, register_task, rows_with


class VadConfig(TaskConfig):
    hidden_dim: int = Field(64, ge=0, description="hidden layer of the per-frame MLP; 0 = linear")
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    pos_weight: float = Field(1.0, gt=0.0, description="weight of speech frames in the loss (class imbalance)")


def align_frames(targets: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Crop or IGNORE-pad frame targets ``(B, T')`` to the encoder's ``num_frames`` (a collator built for another
    subsampling would otherwise fail with a shape error deep inside the loss)."""
    if targets.size(1) >= num_frames:
        return targets[:, :num_frames]
    return F.pad(targets, (0, num_frames - targets.size(1)), value=IGNORE)


@register_task
class VadTask(Task):
    name = "vad"
    config_class = VadConfig
    config: VadConfig

    def __init__(self, config: VadConfig, d_model: int) -> None:
        super().__init__(config, d_model)
        if config.hidden_dim > 0:
            hidden = config.hidden_dim
            self.head = nn.Sequential(
                nn.Linear(d_model, hidden), nn.GELU(), nn.Dropout(config.dropout), nn.Linear(hidden, 1)
            )
        else:
            self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(d_model, 1))

    def target(self, batch: Batch) -> torch.Tensor | None:
        targets = batch.vad_targets
        if targets is None or not bool((targets != IGNORE).any()):
            return None
        return targets

    def frame_logits(self, enc: torch.Tensor) -> torch.Tensor:
        """``(B, T, D)`` -> ``(B, T)`` speech log-odds."""
        return self.head(enc).squeeze(-1)

    def loss(self, enc: torch.Tensor, enc_lens: torch.Tensor, batch: Batch) -> TaskLoss:
        targets = self.target(batch)
        if targets is None:
            return self.empty_loss(enc)
        targets = align_frames(targets, enc.size(1))
        labelled = targets != IGNORE
        rows = rows_with(labelled.any(dim=1))
        if rows.numel() == 0:  # every labelled frame was cropped away
            return self.empty_loss(enc)
        logits = self.frame_logits(enc[rows]).float()
        frames = labelled[rows]
        pos_weight = torch.tensor(self.config.pos_weight, device=logits.device)
        loss = F.binary_cross_entropy_with_logits(logits[frames], targets[rows][frames].float(), pos_weight=pos_weight)
        return TaskLoss(loss, int(rows.numel()))

    @torch.no_grad()
    def speech_probs(self, enc: torch.Tensor, enc_lens: torch.Tensor) -> list[list[float]]:
        """Speech probability of every valid encoder frame, per row."""
        probs = self.frame_logits(enc).float().sigmoid()
        return [probs[row, : int(n)].tolist() for row, n in enumerate(enc_lens)]

    @torch.no_grad()
    def predict(self, enc: torch.Tensor, enc_lens: torch.Tensor, **options: Any) -> list[list[int]]:
        """1 (speech) / 0 per valid encoder frame; option ``threshold`` (default 0.5)."""
        self.check_options(options, ("threshold",))
        threshold = float(options.get("threshold", 0.5))
        return [[int(p >= threshold) for p in row] for row in self.speech_probs(enc, enc_lens)]

    def score(self, predictions: Sequence[Any], references: Sequence[Any]) -> dict[str, float]:
        """Frame accuracy and speech-frame F1 over frames whose reference is not IGNORE."""
        tp = fp = fn = correct = total = 0
        for hyp, ref in zip(predictions, references, strict=True):
            for h, r in zip(hyp, ref, strict=False):
                if int(r) == IGNORE:
                    continue
                h, r = int(h), int(r)
                total += 1
                correct += h == r
                tp += h == 1 and r == 1
                fp += h == 1 and r == 0
                fn += h == 0 and r == 1
        if total == 0:
            return {}
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
        return {"frame_accuracy": correct / total, "f1": f1}
