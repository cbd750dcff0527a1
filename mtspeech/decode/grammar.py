"""Which tokens the decoder may emit next, per task: a small grammar over the answer so far.

The decoder's vocabulary holds every task's tokens (text pieces, intents, timestamps, languages, controls). An
answer must have the shape the task was trained on (``mtspeech.data.targets.decoder_answer``):

* transcribe / translate: text pieces, then ``<|eot|>``;
* slu: text pieces (the bracketed annotation), exactly one intent token, then ``<|eot|>``;
* transcribe with timestamps: ``<|t0|> text <|t1|>`` segments, times non-decreasing and inside the audio,
  no empty segment, ``<|eot|>`` only between segments.

Masking the rest (like whisper's ``ApplyTimestampRules``) costs nothing and keeps a half-trained model from
answering with a language token or a dangling timestamp.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from mtspeech.data.tokenizer import Tokenizer


@dataclass(frozen=True)
class VocabLayout:
    """Where each kind of token lives in the id space; see :mod:`mtspeech.data.tokenizer` for the layout."""

    vocab_size: int
    text_end: int  # text pieces are 1 .. text_end - 1 (SentencePiece ids; 0 is the CTC blank)
    eot_id: int
    intent_ids: tuple[int, ...] = ()
    timestamp_begin: int | None = None  # first timestamp id; timestamps run to vocab_size - 1
    timestamp_resolution: float = 0.04
    blank_id: int = 0
    unk_id: int | None = 1

    @classmethod
    def from_tokenizer(cls, tokenizer: Tokenizer) -> VocabLayout:
        return cls(
            vocab_size=tokenizer.vocab_size,
            text_end=tokenizer.sp_size,
            eot_id=tokenizer.eot_id,
            intent_ids=tuple(sorted(tokenizer.intent_ids.values())),
            timestamp_begin=tokenizer.timestamp_begin,
            timestamp_resolution=tokenizer.timestamp_resolution,
            blank_id=tokenizer.blank_id,
            unk_id=tokenizer.unk_id,
        )

    def is_timestamp(self, token: int) -> bool:
        return self.timestamp_begin is not None and self.timestamp_begin <= token < self.vocab_size

    def is_text(self, token: int) -> bool:
        return self.blank_id < token < self.text_end

    def last_timestamp_id(self, seconds: float) -> int:
        """The latest timestamp token not after ``seconds`` (the end of the audio)."""
        assert self.timestamp_begin is not None
        step = int(seconds / self.timestamp_resolution + 1e-6)
        return min(self.timestamp_begin + max(step, 0), self.vocab_size - 1)


class AnswerGrammar:
    """``allowed(answers, ...)`` -> ``(N, V)`` bool mask of the tokens each answer may continue with."""

    def __init__(self, layout: VocabLayout, task: str, timestamps: bool = False) -> None:
        if task not in ("transcribe", "translate", "slu"):
            raise ValueError(f"unknown decoder task {task!r}")
        if timestamps and layout.timestamp_begin is None:
            raise ValueError("timestamps requested but the vocabulary has no timestamp tokens")
        if task == "slu" and not layout.intent_ids:
            raise ValueError("task 'slu' needs intent tokens in the vocabulary")
        self.layout = layout
        self.task = task
        self.timestamps = timestamps
        size = layout.vocab_size
        self.text = torch.zeros(size, dtype=torch.bool)
        self.text[layout.blank_id + 1 : layout.text_end] = True
        if layout.unk_id is not None:
            self.text[layout.unk_id] = False  # never a training target: byte fallback spells every character
        self.eot = torch.zeros(size, dtype=torch.bool)
        self.eot[layout.eot_id] = True
        self.intents = torch.zeros(size, dtype=torch.bool)
        self.intents[list(layout.intent_ids)] = True
        self.timestamp_ids = torch.arange(size)
        self._intent_set = set(layout.intent_ids)

    def finishing(self, answer: Sequence[int], last_timestamp: int | None = None) -> torch.Tensor:
        """``(V,)`` mask of the tokens that close ``answer`` as fast as its shape allows (the max-length guard):
        ``<|eot|>``, but first the intent of an SLU answer, or the closing timestamp of an open segment."""
        if self.task == "slu" and not (answer and answer[-1] in self._intent_set):
            return self.intents.clone()
        if self.timestamps and answer and not self.layout.is_timestamp(answer[-1]):
            times = [t for t in answer if self.layout.is_timestamp(t)]
            if len(times) % 2 == 1:  # inside a segment that has text: close it
                assert last_timestamp is not None
                return self._timestamp_rule(answer, last_timestamp) & ~self.text
        return self.eot.clone()

    def allowed(self, answers: Sequence[Sequence[int]], last_timestamp: Sequence[int] | None = None) -> torch.Tensor:
        """``last_timestamp``: per answer, the latest timestamp id allowed (the end of its audio); needed only
        with timestamps."""
        if not answers:
            return torch.zeros(0, self.layout.vocab_size, dtype=torch.bool)
        if self.task == "slu":
            ended = [bool(a) and a[-1] in self._intent_set for a in answers]
            return torch.stack([self.eot if done else self.text | self.intents for done in ended])
        if not self.timestamps:
            return (self.text | self.eot).expand(len(answers), -1).clone()
        assert last_timestamp is not None, "timestamped decoding needs the last allowed timestamp per answer"
        return torch.stack([self._timestamp_rule(a, end) for a, end in zip(answers, last_timestamp, strict=True)])

    def _timestamp_rule(self, answer: Sequence[int], last_allowed: int) -> torch.Tensor:
        layout = self.layout
        times = [t for t in answer if layout.is_timestamp(t)]
        inside = len(times) % 2 == 1
        # the next segment may open where the last closed; a segment must close after it opened
        floor = (times[-1] + int(inside)) if times else layout.timestamp_begin
        ceiling = max(last_allowed, floor)  # a segment opened at the very end may still close one step later
        in_range = (self.timestamp_ids >= floor) & (self.timestamp_ids <= min(ceiling, layout.vocab_size - 1))
        if not inside:  # between segments: open the next one, or stop
            return in_range | self.eot
        if answer and layout.is_timestamp(answer[-1]):  # a segment just opened: it needs text first
            return self.text.clone()
        return self.text | in_range
