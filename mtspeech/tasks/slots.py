"""``slots``: a BIO slot tag for every transcript token, for SLU without the attention decoder.

Design: a *token-query attention tagger*. The tokens of the transcript (SentencePiece ids, exactly those of
``Batch.ctc_targets``) are embedded and passed through small Transformer layers whose self-attention is
bidirectional (a tag depends on the words after it too: "at eight" vs "eight people") and whose cross-attention
reads the encoder frames (prosody and acoustics disambiguate what text alone cannot). A linear layer gives one
tag per token. Training teacher-forces the reference tokens; at inference the tokens come from the ``asr_ctc``
greedy hypothesis (hence ``requires = ("asr_ctc",)``), or from any transcript passed as ``tokens``.

Why not read the CTC spike frames directly: their positions are only meaningful once CTC has converged, so a
tagger on top of them learns nothing for the first part of training and must follow the alignment as it moves;
the tagger here learns from step one and needs no alignment at all. Its risk is exposure bias to ASR errors,
which is the usual price of a pipeline-style tagger.

Loss: cross-entropy over tokens whose tag is not IGNORE (``Batch.slot_targets``), averaged over those tokens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from pydantic import Field, ValidationInfo, model_validator
from torch import nn

from mtspeech.data.batch import IGNORE, Batch
from mtspeech.data.labels import SLOT_TASK
from mtspeech.errors import UserError
from mtspeech.model.attention import ensure_attendable, padding_mask
from mtspeech.model.decoder import DecoderLayer
from mtspeech.tasks.base import Task, TaskConfig, TaskLoss, register_task, rows_with, with_preset
from mtspeech.tasks.metrics import error_rate

OUTSIDE_ID = 0  # "O" is the first slot tag of every vocabulary (mtspeech.data.labels.CLOSED_SETS)


# Tagger depth and width per encoder preset.
SLOTS_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"num_layers": 1, "num_heads": 2, "ffn_dim": 128},
    "small": {"num_layers": 2, "num_heads": 4, "ffn_dim": 288},
    "base": {"num_layers": 2, "num_heads": 4, "ffn_dim": 512},
}


class SlotsConfig(TaskConfig):
    """Sizes default to the encoder preset's row of :data:`SLOTS_PRESETS`; explicit keys override them."""

    preset: Literal["tiny", "small", "base"] | None = Field(None, description="default: the encoder's preset")
    vocab_size: int | None = Field(None, ge=2, description="tokenizer.sp_size: text pieces (filled in)")
    num_tags: int | None = Field(None, ge=2, description="BIO tags in the 'slot' vocabulary (filled from it)")
    num_layers: int = Field(2, ge=1, description="tagger layers (bidirectional self-attn + cross-attn + FF)")
    num_heads: int = Field(4, ge=1)
    ffn_dim: int = Field(288, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any, info: ValidationInfo) -> Any:
        return with_preset(data, SLOTS_PRESETS, info.context)


class SlotTags(NamedTuple):
    """Tags of one row: ``tags[i]`` is the tag id of ``tokens[i]``."""

    tokens: list[int]
    tags: list[int]


@register_task
class SlotsTask(Task):
    name = "slots"
    config_class = SlotsConfig
    config: SlotsConfig
    requires = ("asr_ctc",)
    label_vocab = SLOT_TASK

    def __init__(self, config: SlotsConfig, d_model: int) -> None:
        super().__init__(config, d_model)
        if d_model % config.num_heads or (d_model // config.num_heads) % 2:
            raise UserError(
                f"tasks.slots.num_heads ({config.num_heads}) must split d_model ({d_model}) into heads of even size"
            )
        self.head = nn.ModuleDict(
            {
                "embed": nn.Embedding(self.require("vocab_size"), d_model),
                "layers": nn.ModuleList(
                    DecoderLayer(d_model, config.num_heads, config.ffn_dim, config.dropout)
                    for _ in range(config.num_layers)
                ),
                "norm": nn.LayerNorm(d_model),
                "classifier": nn.Linear(d_model, self.require("num_tags")),
            }
        )

    @classmethod
    def sizes_from_data(cls, tokenizer: Any, vocabs: Mapping[str, Any]) -> dict[str, Any]:
        vocab = vocabs.get(SLOT_TASK)
        if vocab is None:
            raise UserError(
                f"task 'slots' needs the {SLOT_TASK!r} tag vocabulary, but the data has no slot labels; disable it"
            )
        return {"vocab_size": tokenizer.sp_size, "num_tags": max(len(vocab), 2)}  # transcript pieces only

    def target(self, batch: Batch) -> torch.Tensor | None:
        tags = batch.slot_targets
        if tags is None or not bool((tags != IGNORE).any()):
            return None
        return tags

    def tag_logits(
        self, tokens: torch.Tensor, token_lens: torch.Tensor, enc: torch.Tensor, enc_lens: torch.Tensor
    ) -> torch.Tensor:
        """``tokens (B, L)`` + encoder output -> ``(B, L, num_tags)``."""
        token_valid = padding_mask(token_lens, tokens.size(1))
        self_mask = ensure_attendable(token_valid[:, None, None, :])  # bidirectional over the row's tokens
        memory_mask = padding_mask(enc_lens, enc.size(1))[:, None, None, :]
        x = self.head["embed"](tokens)
        for layer in self.head["layers"]:
            x = layer(x, self_mask, enc, memory_mask)
        return self.head["classifier"](self.head["norm"](x))

    def loss(self, enc: torch.Tensor, enc_lens: torch.Tensor, batch: Batch) -> TaskLoss:
        tags = self.target(batch)
        if tags is None:
            return self.empty_loss(enc)
        width = min(tags.size(1), batch.ctc_targets.size(1))
        tags = tags[:, :width]
        rows = rows_with((tags != IGNORE).any(dim=1))
        logits = self.tag_logits(
            batch.ctc_targets[rows, :width], batch.ctc_target_lens[rows].clamp(max=width), enc[rows], enc_lens[rows]
        ).float()
        loss = F.cross_entropy(logits.flatten(0, 1), tags[rows].flatten(), ignore_index=IGNORE)
        return TaskLoss(loss, int(rows.numel()))

    @torch.no_grad()
    def predict(self, enc: torch.Tensor, enc_lens: torch.Tensor, **options: Any) -> list[SlotTags]:
        """Tag ids per row for ``tokens`` (option: one id list per row), by default the asr_ctc greedy output."""
        self.check_options(options, ("tokens",))
        tokens = self.transcript_tokens(enc, enc_lens, options.get("tokens"))
        best = self.best_tags(tokens, enc, enc_lens)
        return [SlotTags(list(map(int, row)), tags) for row, (tags, _) in zip(tokens, best, strict=True)]

    @torch.no_grad()
    def best_tags(
        self, tokens: Sequence[Sequence[int]], enc: torch.Tensor, enc_lens: torch.Tensor
    ) -> list[tuple[list[int], list[float]]]:
        """The most likely tag id of every token of every row, and its probability (rows may be empty)."""
        vocab_size = self.require("vocab_size")
        if any(not 0 <= int(t) < vocab_size for row in tokens for t in row):
            raise UserError(f"slots: token ids must be text pieces in [0, {vocab_size})")
        lens = torch.tensor([len(t) for t in tokens], dtype=torch.long, device=enc.device)
        padded = torch.zeros(len(tokens), max([1, *map(len, tokens)]), dtype=torch.long, device=enc.device)
        for i, row in enumerate(tokens):
            padded[i, : len(row)] = torch.tensor(list(row), dtype=torch.long)
        probs, ids = self.tag_logits(padded, lens, enc, enc_lens).float().softmax(dim=-1).max(dim=-1)
        return [(ids[i, : len(row)].tolist(), probs[i, : len(row)].tolist()) for i, row in enumerate(tokens)]

    def score(self, predictions: Sequence[Any], references: Sequence[Any]) -> dict[str, float]:
        """``tag_error_rate`` (edit distance over tag sequences) and ``f1``: micro F1 of (position, tag) pairs
        over non-O tags. Word-level SLU-F1 on text lives in ``mtspeech.evaluate``."""
        hyps = [list(p.tags) if isinstance(p, SlotTags) else [int(t) for t in p] for p in predictions]
        refs = [[int(t) for t in r if int(t) != IGNORE] for r in references]
        if not any(refs):
            return {}
        scores = {"tag_error_rate": error_rate(hyps, refs)}
        hyp_pairs = {(i, p, t) for i, h in enumerate(hyps) for p, t in enumerate(h) if t != OUTSIDE_ID}
        ref_pairs = {(i, p, t) for i, r in enumerate(refs) for p, t in enumerate(r) if t != OUTSIDE_ID}
        if hyp_pairs or ref_pairs:
            scores["f1"] = 2 * len(hyp_pairs & ref_pairs) / (len(hyp_pairs) + len(ref_pairs))
        return scores
