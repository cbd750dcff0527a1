"""``decoder``: the Whisper-style attention decoder; the prompt picks the task (transcribe, translate, slu).

Head: :class:`~mtspeech.model.decoder.TransformerDecoder` (its width is the encoder's ``d_model``, so it can
cross-attend without a projection). Loss: teacher-forced cross-entropy (optionally label-smoothed) on
``Batch.decoder_target``, averaged over answer tokens; the prompt and padding are IGNORE there, and rows without
a decoder target are left out. Prediction: batched greedy decoding after a given prompt (``<|sot|> <|en|>
<|transcribe|> <|notimestamps|>``), left-padded so prompts of different lengths share one batch, until
``<|eot|>``. Beam search and joint CTC/attention decoding live in ``mtspeech.decode`` and use :meth:`logits`.

When ``asr_ctc`` is enabled too, :class:`~mtspeech.model.model.MultiTaskModel` reports both losses scaled by the
hybrid weight ``ctc_weight`` (``alpha * ctc + (1 - alpha) * attention``, as in ESPnet/WeNet).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, ValidationInfo, model_validator

from mtspeech.data.batch import IGNORE, Batch
from mtspeech.errors import UserError
from mtspeech.model.attention import padding_mask
from mtspeech.model.decoder import TransformerDecoder
from mtspeech.tasks.base import Task, TaskConfig, TaskLoss, register_task, rows_with, with_preset
from mtspeech.tasks.metrics import text_scores

# Decoder depth and width per encoder preset (keeps each preset inside its parameter budget, see docs/model.md).
DECODER_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"num_layers": 2, "num_heads": 2, "ffn_dim": 128},
    "small": {"num_layers": 4, "num_heads": 4, "ffn_dim": 576},
    "base": {"num_layers": 6, "num_heads": 4, "ffn_dim": 2048},
}


class DecoderConfig(TaskConfig):
    """Sizes default to the encoder preset's row of :data:`DECODER_PRESETS`; explicit keys override them."""

    preset: Literal["tiny", "small", "base"] | None = Field(None, description="default: the encoder's preset")
    vocab_size: int | None = Field(None, ge=2, description="tokenizer.vocab_size (filled from the tokenizer)")
    sot_id: int | None = Field(None, ge=0, description="<|sot|> id (filled from the tokenizer)")
    eot_id: int | None = Field(None, ge=0, description="<|eot|> id (filled from the tokenizer)")
    pad_id: int = Field(0, ge=0, description="padding id of Batch.decoder_input")
    num_layers: int = Field(4, ge=1)
    num_heads: int = Field(4, ge=1)
    ffn_dim: int = Field(576, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0)
    tie_embeddings: bool = Field(True, description="share the token embedding with the output layer")
    max_new_tokens: int = Field(200, ge=1, description="greedy decoding stops after this many tokens")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any, info: ValidationInfo) -> Any:
        return with_preset(data, DECODER_PRESETS, info.context)


@register_task
class DecoderTask(Task):
    name = "decoder"
    config_class = DecoderConfig
    config: DecoderConfig
    head: TransformerDecoder

    def __init__(self, config: DecoderConfig, d_model: int) -> None:
        super().__init__(config, d_model)
        vocab_size = self.require("vocab_size")
        self.require("eot_id")
        if d_model % config.num_heads or (d_model // config.num_heads) % 2:
            raise UserError(
                f"tasks.decoder.num_heads ({config.num_heads}) must split d_model ({d_model}) into heads of even size"
            )
        for field in ("sot_id", "eot_id", "pad_id"):
            value = getattr(config, field)
            if value is not None and value >= vocab_size:
                raise UserError(f"tasks.decoder.{field} ({value}) is outside the vocabulary [0, {vocab_size})")
        self.head = TransformerDecoder(
            vocab_size,
            d_model,
            config.num_layers,
            config.num_heads,
            config.ffn_dim,
            config.dropout,
            tie_embeddings=config.tie_embeddings,
        )

    @classmethod
    def sizes_from_data(cls, tokenizer: Any, vocabs: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "vocab_size": tokenizer.vocab_size,
            "sot_id": tokenizer.sot_id,
            "eot_id": tokenizer.eot_id,
            "pad_id": tokenizer.pad_id,
        }

    def target(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        labelled = (batch.decoder_target != IGNORE).any(dim=1)
        if not bool(labelled.any()):
            return None
        return batch.decoder_input, batch.decoder_target, labelled

    def logits(
        self,
        tokens: torch.Tensor,
        enc: torch.Tensor,
        enc_lens: torch.Tensor,
        token_valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Next-token logits ``(B, U, vocab_size)`` for ``tokens (B, U)``; ``token_valid`` marks left padding."""
        return self.head(tokens, enc, padding_mask(enc_lens, enc.size(1)), token_valid)

    def loss(self, enc: torch.Tensor, enc_lens: torch.Tensor, batch: Batch) -> TaskLoss:
        target = self.target(batch)
        if target is None:
            return self.empty_loss(enc)
        inputs, targets, labelled = target
        rows = rows_with(labelled)
        logits = self.logits(inputs[rows], enc[rows], enc_lens[rows]).float()
        loss = F.cross_entropy(
            logits.flatten(0, 1),
            targets[rows].flatten(),
            ignore_index=IGNORE,
            label_smoothing=self.config.label_smoothing,
        )
        return TaskLoss(loss, int(rows.numel()))

    @torch.no_grad()
    def predict(self, enc: torch.Tensor, enc_lens: torch.Tensor, **options: Any) -> list[list[int]]:
        """Greedy answer ids per row (prompt and ``<|eot|>`` excluded).

        Options: ``prompts`` (required): one id list for every row, or a list of them, one per row;
        ``max_new_tokens`` (default from the config)."""
        self.check_options(options, ("prompts", "max_new_tokens"))
        prompts = options.get("prompts")
        max_new = int(options.get("max_new_tokens", self.config.max_new_tokens))
        rows = self._prompt_rows(prompts, enc.size(0))
        eot = self.require("eot_id")
        width = max(len(p) for p in rows)
        # Left padding: every row's next token sits in the last column; rotary positions keep relative order.
        tokens = torch.full((len(rows), width), self.config.pad_id, dtype=torch.long, device=enc.device)
        valid = torch.zeros(len(rows), width, dtype=torch.bool, device=enc.device)
        for i, prompt in enumerate(rows):
            tokens[i, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            valid[i, width - len(prompt) :] = True
        # Incremental decoding with a key/value cache (imported here: mtspeech.decode imports the tasks); rows
        # that said <|eot|> leave the batch, so the step shrinks as answers finish.
        from mtspeech.decode.incremental import CachedDecoderStep

        step = CachedDecoderStep(self.head)
        memory, memory_valid = enc, padding_mask(enc_lens, enc.size(1))
        answers: list[list[int]] = [[] for _ in rows]
        active = torch.arange(len(rows), device=enc.device)
        for _ in range(max_new):
            next_ids = step(tokens, memory, memory_valid, valid).argmax(dim=-1)
            going = next_ids != eot
            for i, token in zip(active[going].tolist(), next_ids[going].tolist(), strict=True):
                answers[i].append(token)
            if not bool(going.any()):
                break
            keep = going.nonzero().flatten()
            if keep.numel() < active.numel():
                step.select(keep)
                active, tokens, valid, next_ids = active[keep], tokens[keep], valid[keep], next_ids[keep]
                memory, memory_valid = memory[keep], memory_valid[keep]  # only when rows leave, not every step
            tokens = torch.cat([tokens, next_ids[:, None]], dim=1)
            valid = torch.cat([valid, torch.ones_like(valid[:, :1])], dim=1)
        return answers

    def _prompt_rows(self, prompts: Any, batch_size: int) -> list[list[int]]:
        if prompts is None:
            raise UserError(
                "decoder predictions need a prompt, e.g. options={'decoder': {'prompts': tokenizer.prompt("
                "'transcribe', 'en')}}"
            )
        prompts = list(prompts)
        if prompts and all(isinstance(p, int) for p in prompts):
            prompts = [prompts] * batch_size
        if len(prompts) != batch_size or any(len(p) == 0 for p in prompts):
            raise UserError(f"decoder prompts: need one non-empty prompt per row ({batch_size} rows), got {prompts!r}")
        vocab_size = self.require("vocab_size")
        rows = [[int(t) for t in p] for p in prompts]
        if any(not 0 <= t < vocab_size for p in rows for t in p):
            raise UserError(f"decoder prompts hold ids outside the vocabulary [0, {vocab_size})")
        return rows

    def score(self, predictions: Sequence[Any], references: Sequence[Any]) -> dict[str, float]:
        """Token error rate for id sequences; WER and CER when both sides are strings."""
        return text_scores(predictions, references)
