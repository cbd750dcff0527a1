"""From a hypothesis (answer token ids) to a :class:`DecodingResult`: text, SLU fields, times and confidence.

* transcribe / translate: the detokenized answer;
* slu: the answer is the bracketed annotation and an intent token; ``text`` is the plain transcript, ``slots``
  the bracketed spans as word ranges (parsed with the corpus's own SLURP parser, so the two stay in step);
* decoder timestamps (``<|t0|> text <|t1|>`` segments) become segments;
* ``word_timestamps``: the plain transcript is re-tokenized (as CTC was trained) and forced-aligned on the CTC
  posteriors; words and pause-separated segments come from that alignment and replace decoder segments.

Times are seconds on the clock of the input audio: ``offset`` is where the decoded piece starts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mtspeech.data.synth.text_slurp import parse_annotation
from mtspeech.data.tokenizer import Tokenizer
from mtspeech.decode.grammar import VocabLayout
from mtspeech.decode.options import CTC_MODES, DecodingOptions
from mtspeech.decode.result import DecodingResult, Hypothesis, Segment
from mtspeech.decode.timestamps import (
    TokenSpan,
    ctc_forced_align,
    group_segments,
    group_words,
    mean_token_posterior,
)


@dataclass
class PieceContext:
    """Where a hypothesis came from: its language, its place on the input's clock, its CTC posteriors."""

    language: str | None
    offset: float  # seconds
    duration: float  # seconds
    ctc_log_probs: torch.Tensor | None = None  # (T_piece, V) of the piece, when the model has a CTC head


class AnswerBuilder:
    def __init__(
        self, tokenizer: Tokenizer, options: DecodingOptions, frame_shift: float, frame_lead: float = 0.0
    ) -> None:
        self.tokenizer = tokenizer
        self.layout = VocabLayout.from_tokenizer(tokenizer)
        self.options = options
        self.frame_shift = frame_shift
        self.frame_lead = frame_lead  # seconds from a piece's offset to the start of its first frame's span
        self.intent_names = {token: name for name, token in tokenizer.intent_ids.items()}
        # The last alignment: word times and the CTC confidence usually align the same ids on the same frames.
        self._last_alignment: tuple[torch.Tensor, tuple[int, ...], list[TokenSpan] | None] | None = None

    def build(self, hypothesis: Hypothesis, piece: PieceContext) -> DecodingResult:
        options, tokenizer = self.options, self.tokenizer
        tokens = hypothesis.tokens
        result = DecodingResult(
            text="",
            tokens=list(tokens),
            mode=options.mode,
            task=options.task,
            language=piece.language,
            target_language=options.target_language,
            score=hypothesis.score,
            confidence=0.0,
            finish=hypothesis.finish,
        )
        if options.task == "slu":
            self._fill_slu(result, tokens)
        elif options.timestamps:
            result.segments = self._decoder_segments(tokens, piece)
            result.text = " ".join(s.text for s in result.segments)
        else:
            result.text = tokenizer.decode(tokens).strip()
        if options.word_timestamps and piece.ctc_log_probs is not None and result.text:
            aligned = self._aligned_segments(result.text, piece)
            if aligned:
                result.segments = aligned
        if not result.segments and result.text:
            result.segments = [Segment(start=piece.offset, end=piece.offset + piece.duration, text=result.text)]
        result.confidence = self._confidence(hypothesis, piece)
        return result

    # --- task-specific parsing ------------------------------------------------------------------
    def _fill_slu(self, result: DecodingResult, tokens: list[int]) -> None:
        intents = [self.intent_names[t] for t in tokens if t in self.intent_names]
        result.intent = intents[-1] if intents else None
        annotation = self.tokenizer.decode([t for t in tokens if t not in self.intent_names]).strip()
        words, entities = parse_annotation(annotation)
        result.annotation = annotation
        result.text = " ".join(words)
        result.slots = [
            {"type": kind, "start": start, "end": end, "value": " ".join(words[start:end])}
            for kind, start, end in entities
        ]

    def _decoder_segments(self, tokens: list[int], piece: PieceContext) -> list[Segment]:
        """``<|t0|> text <|t1|>`` runs as segments; an unclosed last segment ends with the piece."""
        segments: list[Segment] = []
        opened: float | None = None
        text_ids: list[int] = []
        limit = piece.offset + piece.duration
        for token in tokens:
            if not self.layout.is_timestamp(token):
                text_ids.append(token)
                continue
            seconds = min(piece.offset + self.tokenizer.timestamp_seconds(token), limit)
            if opened is None:
                opened, text_ids = seconds, []
                continue
            text = self.tokenizer.decode(text_ids).strip()
            if text:
                segments.append(Segment(start=opened, end=max(seconds, opened), text=text))
            opened = None
        text = self.tokenizer.decode(text_ids).strip()
        if opened is not None and text:
            segments.append(Segment(start=opened, end=limit, text=text))
        return segments

    # --- CTC alignment: word times and confidence --------------------------------------------------
    def _aligned_segments(self, text: str, piece: PieceContext) -> list[Segment]:
        assert piece.ctc_log_probs is not None
        ids = self.tokenizer.encode(text)
        spans = self._align(piece.ctc_log_probs, ids)
        if not spans:
            return []
        words = group_words(
            spans,
            self.tokenizer.word_starts(ids),
            self.tokenizer.decode,
            self.frame_shift,
            offset=piece.offset,
            duration=piece.duration,
            lead=self.frame_lead,
        )
        return group_segments(words, self.options.segment_gap)

    def _align(self, log_probs: torch.Tensor, ids: Sequence[int]) -> list[TokenSpan] | None:
        key = tuple(ids)
        last = self._last_alignment
        if last is not None and last[0] is log_probs and last[1] == key:
            return last[2]
        spans = ctc_forced_align(log_probs, key, blank=self.layout.blank_id)
        self._last_alignment = (log_probs, key, spans)
        return spans

    def _confidence(self, hypothesis: Hypothesis, piece: PieceContext) -> float:
        """CTC modes: mean posterior of the answer's tokens on their aligned frames (for an empty answer, the
        per-frame geometric mean of its probability). Decoder modes: exp of the decoder's per-token log-prob."""
        if self.options.mode in CTC_MODES:
            if piece.ctc_log_probs is None or not hypothesis.tokens:
                frames = 0 if piece.ctc_log_probs is None else piece.ctc_log_probs.size(0)
                return _bounded_exp(hypothesis.score / max(frames, 1))
            spans = self._align(piece.ctc_log_probs, hypothesis.tokens)
            return round(mean_token_posterior(spans), 4) if spans else 0.0
        score = hypothesis.att_score if hypothesis.att_score is not None else hypothesis.score
        return _bounded_exp(score / hypothesis.num_scored)


def _bounded_exp(value: float) -> float:
    return round(math.exp(min(value, 0.0)), 4) if math.isfinite(value) else 0.0
