"""The label contract: where every task finds its target in a Lhotse cut.

Every corpus, synthesised or imported, ends up as Lhotse manifests that follow this contract, so the
rest of mtspeech (collation, tasks, evaluation) reads labels in exactly one way.

Supervision fields (one supervision = one stretch of speech):
    ``text``       transcript in the language of the speech (ASR target)
    ``language``   ISO 639-1 code (``en``, ``fr``, ``de``, ``es``, ``it``, ...)
    ``speaker``    speaker label (for the synthetic corpus: the espeak-ng voice variant, e.g. ``f3``)
    ``gender``     ``m`` or ``f`` when known
    ``custom``     the other task labels, keys below; a missing key means "no label for this task"

Cut-level ``custom`` (keys in :data:`CUT_KEYS`):
    ``exact_segments``  True when the supervisions mark speech exactly (VAD targets are trusted);
                        imported corpora whose segments are only utterance boundaries leave it False
    ``noise``           ``{"type": "pink", "snr_db": 10.0}`` or ``{"type": "none"}``
    ``split``           ``train`` / ``valid`` / ``test``
    ``corpus``          name of the corpus the cut came from (used for temperature mixing)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# --- supervision.custom keys -------------------------------------------------------------------
INTENT = "intent"  # SLURP-style ``scenario_action`` name, e.g. "alarm_set"
SLOTS = "slots"  # list of {"type": str, "start": int, "end": int, "value": str}; word span [start, end)
BIO = "bio"  # list[str], one tag per whitespace word of ``text``: "O", "B-time", "I-time", ...
TRANSLATION = "translation"  # {"fr": "...", "de": "..."}: target language -> translated text
EMOTION = "emotion"  # one of EMOTIONS
ACCENT = "accent"  # espeak-ng accent voice, e.g. "en-gb-scotland" (English only)
SENTENCE_ID = "sentence_id"  # stable id of the written sentence; splits never share one
SOURCE = "source"  # "slurp" or "template" (where the sentence came from)
PROSODY_CONFLICT = "prosody_conflict"  # True: positive words spoken with angry/sad prosody
SLURP_ANNOTATION = "slurp_annotation"  # "wake me up at [time : eight] o'clock"

SUPERVISION_KEYS = (
    INTENT,
    SLOTS,
    BIO,
    TRANSLATION,
    EMOTION,
    ACCENT,
    SENTENCE_ID,
    SOURCE,
    PROSODY_CONFLICT,
    SLURP_ANNOTATION,
)

# --- cut.custom keys ---------------------------------------------------------------------------
EXACT_SEGMENTS = "exact_segments"
NOISE = "noise"
SPLIT = "split"
CORPUS = "corpus"
CUT_KEYS = (EXACT_SEGMENTS, NOISE, SPLIT, CORPUS)

# --- closed label sets -------------------------------------------------------------------------
SAMPLE_RATE = 16000
LANGUAGES = ("en", "fr", "de", "es", "it")
TRANSLATION_TARGETS = ("fr", "de", "es")
EMOTIONS = ("neutral", "happy", "sad", "angry")
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-us-nyc", "en-gb-x-gbclan")
GENDERS = ("m", "f")
SPLITS = ("train", "valid", "test")
NOISE_TYPES = ("none", "white", "pink", "brown", "babble", "tone", "click")


@dataclass(frozen=True)
class SlotSpan:
    """A slot as a word span ``[start, end)`` over ``text.split()``."""

    type: str
    start: int
    end: int
    value: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "start": self.start, "end": self.end, "value": self.value}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> SlotSpan:
        return SlotSpan(str(d["type"]), int(d["start"]), int(d["end"]), str(d.get("value", "")))


def spans_to_bio(num_words: int, spans: list[SlotSpan]) -> list[str]:
    """BIO tags for ``num_words`` words; raises ValueError on spans outside or overlapping."""
    tags = ["O"] * num_words
    for span in spans:
        if not 0 <= span.start < span.end <= num_words:
            raise ValueError(f"slot {span.type!r} span [{span.start}, {span.end}) is outside 0..{num_words}")
        if any(t != "O" for t in tags[span.start : span.end]):
            raise ValueError(f"slot {span.type!r} span [{span.start}, {span.end}) overlaps another slot")
        tags[span.start] = f"B-{span.type}"
        for i in range(span.start + 1, span.end):
            tags[i] = f"I-{span.type}"
    return tags


def bio_to_spans(words: list[str], tags: list[str]) -> list[SlotSpan]:
    """Inverse of :func:`spans_to_bio`; a stray ``I-x`` opens a new span (lenient, like seqeval)."""
    spans: list[SlotSpan] = []
    start, kind = -1, ""
    for i, tag in enumerate([*tags, "O"]):
        inside = tag.startswith("I-") and tag[2:] == kind
        if start >= 0 and not inside:
            spans.append(SlotSpan(kind, start, i, " ".join(words[start:i])))
            start, kind = -1, ""
        if tag.startswith("B-") or (tag.startswith("I-") and not inside):
            start, kind = i, tag[2:]
    return spans
