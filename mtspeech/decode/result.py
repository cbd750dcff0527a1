"""What the decoders return: raw hypotheses (token ids + scores) and the user-facing :class:`DecodingResult`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Finish = Literal["eot", "length", "frames", "empty"]


@dataclass
class Hypothesis:
    """One answer of a search: token ids after the prompt (no ``<|eot|>``) and its scores.

    ``score`` is what the search ranked by (log domain): the path log-probability for CTC greedy, the total
    log-probability over all alignments for CTC prefix beam, ``(1 - lambda) * attention + lambda * CTC`` for
    joint decoding and rescoring, plus ``lm_weight * lm_score + lm_bonus * length`` when an n-gram LM is fused.
    ``att_score`` / ``ctc_score`` / ``lm_score`` are the parts when they exist. ``finish``:
    ``eot`` (the decoder ended it), ``length`` (the max-length guard did), ``frames`` (CTC ran out of frames),
    ``empty`` (nothing could be decoded).
    """

    tokens: list[int]
    score: float
    att_score: float | None = None
    ctc_score: float | None = None
    finish: Finish = "eot"
    lm_score: float | None = None  # log P of the tokens and the sentence end under the n-gram LM, when fused

    @property
    def num_scored(self) -> int:
        """Decoder steps behind ``score``: every answer token plus the final ``<|eot|>`` (forced or not)."""
        return len(self.tokens) + 1


def length_normalised(score: float, length: int, length_penalty: float | None) -> float:
    """whisper's ranking: ``score / length`` (None) or GNMT's ``score / ((5 + length) / 6) ** alpha``."""
    if length_penalty is None:
        return score / max(length, 1)
    return score / ((5.0 + length) / 6.0) ** length_penalty


def best_hypothesis(hypotheses: list[Hypothesis], length_penalty: float | None) -> Hypothesis:
    """The highest length-normalised hypothesis (the first one on ties); an empty one when there are none."""
    if not hypotheses:
        return Hypothesis(tokens=[], score=-math.inf, finish="empty")
    return max(hypotheses, key=lambda h: length_normalised(h.score, h.num_scored, length_penalty))


@dataclass
class Word:
    word: str
    start: float  # seconds from the start of the input audio
    end: float
    confidence: float  # mean CTC posterior of its pieces


@dataclass
class Segment:
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)


@dataclass
class DecodingResult:
    """One utterance's answer. ``text`` is the transcript or translation; for SLU it is the plain transcript
    (brackets removed) with ``annotation``, ``intent`` and ``slots`` beside it."""

    text: str
    tokens: list[int]
    mode: str
    task: str
    language: str | None
    score: float
    confidence: float  # in [0, 1]: mean token posterior (CTC) or exp(normalised decoder score)
    finish: Finish
    no_speech: bool = False  # voice activity found no speech: nothing was decoded
    segments: list[Segment] = field(default_factory=list)
    target_language: str | None = None
    intent: str | None = None
    annotation: str | None = None
    slots: list[dict[str, Any]] = field(default_factory=list)  # {"type", "start", "end", "value"}, word spans

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("score", "confidence"):
            if not math.isfinite(data[key]):
                data[key] = None  # JSON has no infinities
        return data


def empty_result(mode: str, task: str, language: str | None, *, no_speech: bool, target_language: str | None = None):
    """The answer for audio with nothing to decode (no speech found, or an input too short to encode)."""
    return DecodingResult(
        text="",
        tokens=[],
        mode=mode,
        task=task,
        language=language,
        target_language=target_language,
        score=0.0,
        confidence=1.0 if no_speech else 0.0,
        finish="empty",
        no_speech=no_speech,
    )


def merge_results(pieces: list[DecodingResult], template: DecodingResult) -> DecodingResult:
    """Join the answers of consecutive audio pieces (VAD segments), times already absolute; ``template`` gives
    mode and task (and the language, when it was not detected per piece) and is the answer when ``pieces`` is
    empty. Intent and detected language: the most frequent over the pieces, the first on ties."""
    if not pieces:
        return template
    if len(pieces) == 1:
        return pieces[0]
    spoken = [p for p in pieces if not p.no_speech and p.text]
    num_tokens = [max(len(p.tokens), 1) for p in spoken]
    confidence = sum(p.confidence * n for p, n in zip(spoken, num_tokens, strict=True)) / max(sum(num_tokens), 1)
    intents = [p.intent for p in spoken if p.intent]
    languages = [p.language for p in spoken if p.language]
    word_offset = 0
    slots: list[dict[str, Any]] = []
    for piece in spoken:
        for slot in piece.slots:
            slots.append({**slot, "start": slot["start"] + word_offset, "end": slot["end"] + word_offset})
        word_offset += len(piece.text.split())
    finishes = {p.finish for p in spoken}
    return DecodingResult(
        text=" ".join(p.text for p in spoken),
        tokens=[t for p in spoken for t in p.tokens],
        mode=template.mode,
        task=template.task,
        language=template.language or (max(languages, key=languages.count) if languages else None),
        target_language=template.target_language,
        score=sum(p.score for p in spoken),
        confidence=confidence if spoken else template.confidence,
        finish="length" if "length" in finishes else (spoken[0].finish if spoken else "empty"),
        no_speech=not spoken and all(p.no_speech for p in pieces),
        segments=[s for p in spoken for s in p.segments],
        intent=max(intents, key=intents.count) if intents else None,  # most frequent, first on ties
        annotation=" ".join(p.annotation for p in spoken if p.annotation) or None,
        slots=slots,
    )
