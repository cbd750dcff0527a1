"""The multi-task batch: what collation hands to the model and every task.

A label that a cut lacks is *masked*, never invented: class targets use :data:`IGNORE` (-100, the
``ignore_index`` of ``torch.nn.functional.cross_entropy``), sequence targets carry a per-row
``*_mask`` so a corpus with only transcripts can be mixed with one that has only intents.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from mtspeech.data.text_rows import TextBatch

IGNORE = -100


@dataclass
class Batch:
    # --- audio -------------------------------------------------------------------------------
    features: torch.Tensor  # (B, T, n_mels) float log-mel, zero-padded
    feature_lens: torch.Tensor  # (B,) long, valid frames per row
    ids: list[str]  # cut ids, in row order

    # --- CTC / transcript (SentencePiece ids, no special tokens) --------------------------------
    ctc_targets: torch.Tensor  # (B, L) long, padded with 0 (blank), use ctc_target_lens
    ctc_target_lens: torch.Tensor  # (B,) long
    ctc_mask: torch.Tensor  # (B,) bool, False where the cut has no transcript

    # --- attention decoder (Whisper-style prompt + target) -------------------------------------
    # decoder_input = <|sot|> <|lang|> <|task|> [<|tgt-lang|>] <|notimestamps|> y_1 ... y_n
    # decoder_target is decoder_input shifted left with <|eot|> appended; prompt positions and
    # padding are IGNORE so only the answer is scored.
    decoder_input: torch.Tensor  # (B, U) long, padded with the tokenizer's pad id
    decoder_target: torch.Tensor  # (B, U) long, IGNORE on prompt and padding
    decoder_task: list[str]  # per row: "transcribe" | "translate" | "slu" | "" (no decoder target)

    # --- utterance-level classes: task name -> (B,) long, IGNORE where missing ------------------
    # keys: "intent", "lid", "emotion", "speaker", "accent", "gender" (those with a label vocab)
    class_targets: dict[str, torch.Tensor] = field(default_factory=dict)

    # --- frame-level -----------------------------------------------------------------------------
    # Speech (1) / non-speech (0) per *encoder* frame (features subsampled by the collator's
    # subsampling factor); IGNORE on padding and on cuts without exact speech segments.
    vad_targets: torch.Tensor | None = None  # (B, T_enc) long
    # Slot BIO tag ids aligned to ctc_targets tokens (each SentencePiece piece gets its word's tag,
    # B- only on the word's first piece); IGNORE on padding and on cuts without slot labels.
    slot_targets: torch.Tensor | None = None  # (B, L) long

    # --- text without audio ----------------------------------------------------------------------
    # Sentences no recording speaks, for the tasks that read only the transcript (mtspeech.data.text_rows);
    # the training stream adds them, validation never has them.
    text_rows: TextBatch | None = None

    def to(self, device: torch.device | str) -> Batch:
        """Move every tensor (including those in dicts) to ``device``; lists are kept."""
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                value = value.to(device, non_blocking=True)
            elif isinstance(value, dict):
                value = {k: v.to(device, non_blocking=True) for k, v in value.items()}
            moved[f.name] = value
        return Batch(**moved)

    @property
    def size(self) -> int:
        return int(self.features.shape[0])
