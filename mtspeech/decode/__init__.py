"""Decoding: CTC greedy and prefix beam search, attention beam search, attention rescoring, joint CTC/attention
decoding, VAD gating and CTC-aligned timestamps. See docs/decoding.md.

The search algorithms take log-prob tensors and a decoder step function and know nothing of the model;
:class:`ModelDecoder` wires them to a :class:`~mtspeech.model.model.MultiTaskModel`.
"""

from __future__ import annotations

from mtspeech.decode.beam import StepFn, beam_search
from mtspeech.decode.ctc import ctc_greedy_search, ctc_prefix_beam_search
from mtspeech.decode.decoding import ModelDecoder
from mtspeech.decode.grammar import AnswerGrammar, VocabLayout
from mtspeech.decode.joint import CTCPrefixScorer
from mtspeech.decode.options import MODES, DecodingOptions, VadOptions
from mtspeech.decode.rescoring import attention_rescoring
from mtspeech.decode.result import DecodingResult, Hypothesis, Segment, Word
from mtspeech.decode.timestamps import ctc_forced_align
from mtspeech.decode.vad_gating import speech_segments

__all__ = [
    "MODES",
    "AnswerGrammar",
    "CTCPrefixScorer",
    "DecodingOptions",
    "DecodingResult",
    "Hypothesis",
    "ModelDecoder",
    "Segment",
    "StepFn",
    "VadOptions",
    "VocabLayout",
    "Word",
    "attention_rescoring",
    "beam_search",
    "ctc_forced_align",
    "ctc_greedy_search",
    "ctc_prefix_beam_search",
    "speech_segments",
]
