"""Decoding options: two frozen dataclasses, validated on construction (a bad value is a UserError naming it).

:class:`DecodingOptions` says *what* to decode (task, languages, timestamps) and *how* (mode, beam, guards);
:class:`VadOptions` says how voice-activity probabilities gate the decoders. ``from_dict`` builds either from a
plain mapping (a YAML section, CLI flags, a JSON request) and rejects unknown keys by name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Self, get_args

from mtspeech.errors import UserError

DecodeMode = Literal["ctc_greedy", "ctc_prefix_beam", "attention_beam", "attention_rescoring", "joint_ctc_attention"]
MODES: tuple[str, ...] = get_args(DecodeMode)
CTC_MODES = ("ctc_greedy", "ctc_prefix_beam")
DECODER_TASKS = ("transcribe", "translate", "slu")


def _fail(owner: str, name: str, expected: str, value: Any) -> UserError:
    return UserError(f"decoding option {owner}{name} must be {expected}, got {value!r}")


class _FromDict:
    """``from_dict`` shared by the option classes: unknown keys and wrong values become one UserError."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None = None, **overrides: Any) -> Self:
        values = {**(data or {}), **overrides}
        known = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise UserError(f"unknown decoding option {unknown[0]!r}; known options: {', '.join(known)}")
        if cls is DecodingOptions and isinstance(values.get("vad"), Mapping):
            values["vad"] = VadOptions.from_dict(values["vad"])
        return cls(**values)


@dataclass(frozen=True)
class VadOptions(_FromDict):
    """How frame-level speech probabilities (the ``vad`` task, one per 40 ms encoder frame) gate decoding.

    Frames with probability >= ``threshold`` are speech. Speech runs separated by less than ``min_silence`` are
    merged, runs shorter than ``min_speech`` are dropped, each kept run is widened by ``pad`` on both sides, and a
    run longer than ``max_segment`` is split at its least speech-like frame. Each segment is decoded on its own.
    """

    threshold: float = 0.5
    min_speech: float = 0.2  # seconds
    min_silence: float = 0.3  # seconds
    pad: float = 0.2  # seconds
    max_segment: float = 30.0  # seconds
    frame_shift: float = 0.04  # seconds per encoder frame (10 ms features, x4 subsampling)

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise _fail("vad.", "threshold", "a probability in (0, 1)", self.threshold)
        for name in ("min_speech", "min_silence", "pad"):
            if getattr(self, name) < 0:
                raise _fail("vad.", name, "seconds >= 0", getattr(self, name))
        if self.frame_shift <= 0:
            raise _fail("vad.", "frame_shift", "seconds > 0", self.frame_shift)
        if self.max_segment < 2 * self.frame_shift:
            raise _fail("vad.", "max_segment", f"seconds >= {2 * self.frame_shift}", self.max_segment)


@dataclass(frozen=True)
class DecodingOptions(_FromDict):
    """Everything a decoding run needs besides the model and the audio (whisper's ``DecodingOptions`` idea)."""

    mode: DecodeMode = "attention_beam"
    # --- what to produce (the decoder prompt; CTC modes always transcribe) ---------------------------
    task: str = "transcribe"  # transcribe | translate | slu
    language: str | None = None  # spoken language; None: the model's language-ID head decides
    target_language: str | None = None  # translate only
    timestamps: bool = False  # <|timestamps|> prompt: the decoder emits segment times itself
    word_timestamps: bool = False  # word/segment times from a CTC forced alignment of the answer
    segment_gap: float = 0.6  # seconds of silence between aligned words that start a new segment
    # --- search -----------------------------------------------------------------------------------
    beam_size: int = 5
    patience: float = 1.0  # stop once beam_size * patience hypotheses have finished (whisper's patience)
    length_penalty: float | None = None  # None: score / length; a: score / ((5 + length) / 6) ** a (GNMT)
    ctc_weight: float = 0.3  # lambda: joint score = lambda * CTC prefix + (1 - lambda) * attention
    pre_beam_size: int | None = None  # joint: candidate tokens scored by CTC per hypothesis (None: 1.5 x beam)
    ctc_token_topk: int | None = 8  # CTC prefix beam: tokens kept per frame (None: all); docs/decoding.md
    ctc_blank_skip: float | None = 0.999  # CTC prefix beam: frames this sure of blank are one cheap step (None: off)
    nbest: int = 10  # attention rescoring: CTC hypotheses handed to the decoder
    # n-gram LM shallow fusion (CTC prefix beam and attention rescoring; the model file must carry an LM)
    lm_weight: float = 0.0  # 0: off
    lm_bonus: float = 0.0  # added per answer token, against the LM's preference for short answers
    # --- guards -----------------------------------------------------------------------------------
    max_length_ratio: float = 1.0  # answer tokens per encoder frame (40 ms) at most
    max_tokens: int = 448  # answer tokens at most, whatever the audio length
    max_repeats: int = 4  # a unit of <= max_repeat_period tokens may repeat this often in a row (0: off)
    max_repeat_period: int = 8
    no_repeat_ngram_size: int = 0  # ban any n-gram from occurring twice (0: off)
    # --- voice activity gating (None: decode the whole input) -----------------------------------------
    vad: VadOptions | None = field(default=None)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise _fail("", "mode", f"one of {', '.join(MODES)}", self.mode)
        if self.task not in DECODER_TASKS:
            raise _fail("", "task", f"one of {', '.join(DECODER_TASKS)}", self.task)
        if (self.task == "translate") != (self.target_language is not None):
            raise UserError("decoding option target_language is required for task 'translate' and only allowed there")
        if self.mode in CTC_MODES and self.task != "transcribe":
            raise UserError(f"decoding mode {self.mode!r} can only transcribe (CTC is trained on transcripts)")
        if self.mode in ("attention_rescoring", "joint_ctc_attention") and self.task != "transcribe":
            raise UserError(
                f"decoding mode {self.mode!r} needs task 'transcribe': its CTC scores only fit transcripts; "
                f"use mode 'attention_beam' for {self.task!r}"
            )
        if self.mode in CTC_MODES and self.timestamps:
            raise UserError(
                "decoding option timestamps (decoder timestamp tokens) needs an attention mode; "
                "CTC modes give times with word_timestamps"
            )
        if self.timestamps and self.task != "transcribe":
            raise UserError("decoding option timestamps (decoder timestamp tokens) is trained for task transcribe only")
        if self.word_timestamps and self.task == "translate":
            raise UserError(
                "decoding option word_timestamps needs task transcribe or slu: a translation has no "
                "CTC alignment to the audio"
            )
        positive_ints = ("beam_size", "max_tokens", "nbest", "max_repeat_period")
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise _fail("", name, "an integer >= 1", value)
        for name in ("max_repeats", "no_repeat_ngram_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise _fail("", name, "an integer >= 0", value)
        for name in ("pre_beam_size", "ctc_token_topk"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise _fail("", name, "an integer >= 1 or null", value)
        if self.ctc_blank_skip is not None and not 0.0 < self.ctc_blank_skip <= 1.0:
            raise _fail("", "ctc_blank_skip", "a probability in (0, 1] or null", self.ctc_blank_skip)
        if not 0.0 <= self.ctc_weight <= 1.0:
            raise _fail("", "ctc_weight", "in [0, 1]", self.ctc_weight)
        if not 0.0 <= self.lm_weight <= 10.0:
            raise _fail("", "lm_weight", "in [0, 10]", self.lm_weight)
        if not -20.0 <= self.lm_bonus <= 20.0:
            raise _fail("", "lm_bonus", "in [-20, 20]", self.lm_bonus)
        if self.lm_weight > 0 and self.mode not in ("ctc_prefix_beam", "attention_rescoring"):
            raise UserError(
                f"decoding option lm_weight fuses the n-gram LM into CTC prefix beam search: use mode "
                f"ctc_prefix_beam or attention_rescoring, not {self.mode!r}"
            )
        if self.patience < 1.0:
            raise _fail("", "patience", ">= 1.0", self.patience)
        if self.max_length_ratio <= 0:
            raise _fail("", "max_length_ratio", "> 0", self.max_length_ratio)
        if self.segment_gap <= 0:
            raise _fail("", "segment_gap", "seconds > 0", self.segment_gap)
        if self.vad is not None and not isinstance(self.vad, VadOptions):
            raise _fail("", "vad", "VadOptions, a mapping or null", self.vad)

    @property
    def candidates_per_hypothesis(self) -> int:
        """Joint decoding's pre-beam: how many tokens per hypothesis get a CTC prefix score."""
        return self.pre_beam_size if self.pre_beam_size is not None else max(2, int(1.5 * self.beam_size))

    def replace(self, **changes: Any) -> DecodingOptions:
        return dataclasses.replace(self, **changes)
