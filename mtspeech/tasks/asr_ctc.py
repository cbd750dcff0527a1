"""``asr_ctc``: connectionist temporal classification over SentencePiece tokens, straight off the encoder.

Head: dropout + one linear layer to ``vocab_size`` logits per encoder frame (40 ms); the vocabulary is the
SentencePiece pieces (``tokenizer.sp_size``, blank included), not the special tokens only the decoder needs.
Loss: CTC (blank = the tokenizer's blank id, 0) summed over the labelled rows and divided by their target
tokens, so its scale is a per-token negative log-likelihood like the decoder's cross-entropy. Prediction: greedy
best path (argmax per frame, merge repeats, drop blanks); :meth:`AsrCtcTask.greedy_alignment` also returns the
frame of each emitted token, and :meth:`AsrCtcTask.log_probs` feeds the prefix beam search in ``mtspeech.decode``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from mtspeech.data.batch import Batch
from mtspeech.model.attention import padding_mask
from mtspeech.tasks.base import Task, TaskConfig, TaskLoss, register_task, rows_with
from mtspeech.tasks.metrics import text_scores


class AsrCtcConfig(TaskConfig):
    vocab_size: int | None = Field(None, ge=2, description="tokenizer.sp_size: text pieces incl. blank (filled in)")
    blank_id: int = Field(0, ge=0, description="CTC blank; the tokenizer reserves id 0")
    dropout: float = Field(0.1, ge=0.0, lt=1.0)


class CtcAlignment(NamedTuple):
    """Greedy CTC output of one row: emitted token ids and the encoder frame each was emitted at."""

    tokens: list[int]
    frames: list[int]


@register_task
class AsrCtcTask(Task):
    name = "asr_ctc"
    config_class = AsrCtcConfig
    config: AsrCtcConfig

    def __init__(self, config: AsrCtcConfig, d_model: int) -> None:
        super().__init__(config, d_model)
        vocab_size = self.require("vocab_size")
        if not 0 <= config.blank_id < vocab_size:
            raise ValueError(f"tasks.asr_ctc.blank_id {config.blank_id} outside the vocabulary [0, {vocab_size})")
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(d_model, vocab_size))

    @classmethod
    def sizes_from_data(cls, tokenizer: Any, vocabs: Mapping[str, Any]) -> dict[str, Any]:
        # Text pieces only: transcripts never contain special tokens, so CTC needs no outputs for them.
        return {"vocab_size": tokenizer.sp_size, "blank_id": tokenizer.blank_id}

    def target(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        if not bool(batch.ctc_mask.any()):
            return None
        return batch.ctc_targets, batch.ctc_target_lens, batch.ctc_mask

    def log_probs(self, enc: torch.Tensor) -> torch.Tensor:
        """``(B, T, D)`` -> ``(B, T, vocab_size)`` float32 log-probabilities (float32 even under autocast)."""
        return self.head(enc).float().log_softmax(dim=-1)

    def loss(self, enc: torch.Tensor, enc_lens: torch.Tensor, batch: Batch) -> TaskLoss:
        target = self.target(batch)
        if target is None:
            return self.empty_loss(enc)
        targets, target_lens, mask = target
        rows = rows_with(mask)
        log_probs = self.log_probs(enc[rows])
        lens = target_lens[rows]
        total = F.ctc_loss(
            log_probs.transpose(0, 1),  # (T, B, V) as ctc_loss expects
            targets[rows],
            enc_lens[rows],
            lens,
            blank=self.config.blank_id,
            reduction="sum",
            zero_infinity=True,  # an impossible alignment (too many tokens) contributes 0, not inf
        )
        return TaskLoss(total / lens.sum().clamp_min(1), int(rows.numel()))

    def greedy_alignment(self, enc: torch.Tensor, enc_lens: torch.Tensor) -> list[CtcAlignment]:
        """Best path per row: the token and frame of every emission that is neither blank nor a repeat."""
        best = self.head(enc).argmax(dim=-1)  # (B, T); log_softmax does not change the argmax
        valid = padding_mask(enc_lens, best.size(1))
        previous = F.pad(best[:, :-1], (1, 0), value=self.config.blank_id)
        emitted = valid & (best != self.config.blank_id) & (best != previous)
        out = []
        for row in range(best.size(0)):
            frames = emitted[row].nonzero().flatten()
            out.append(CtcAlignment(best[row, frames].tolist(), frames.tolist()))
        return out

    @torch.no_grad()
    def predict(self, enc: torch.Tensor, enc_lens: torch.Tensor, **options: Any) -> list[list[int]]:
        """Greedy token ids per row (no blanks, repeats merged)."""
        self.check_options(options)
        return [alignment.tokens for alignment in self.greedy_alignment(enc, enc_lens)]

    def score(self, predictions: Sequence[Any], references: Sequence[Any]) -> dict[str, float]:
        """Token error rate for id sequences; WER and CER when both sides are strings."""
        return text_scores(predictions, references)
