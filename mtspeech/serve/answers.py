"""Turn head outputs into the JSON answers of the Unified Speech API (pure functions, no model).

Every answer is a plain dict that ``json.dumps`` accepts and that carries a ``confidence`` in [0, 1]:

* classifiers (language, intent, emotion, accent, speaker, gender): ``label``, ``confidence`` (its probability)
  and, for small label sets, every label's ``probabilities``;
* ``vad``: speech ``segments`` in seconds, confidence = how decided the frames are on average;
* ``slots``: spans over the words of the transcript (``start_word`` inclusive, ``end_word`` exclusive), read
  from BIO tags of the transcript's pieces (a word takes the tag of its first piece).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from mtspeech.decode.options import VadOptions
from mtspeech.decode.result import DecodingResult
from mtspeech.decode.vad_gating import segment_times, speech_segments

if TYPE_CHECKING:
    from mtspeech.data.tokenizer import Tokenizer
    from mtspeech.tasks.slots import SlotsTask

PROBABILITY_DIGITS = 4
MAX_LISTED_LABELS = 32  # label sets up to this size get every label's probability; larger ones only the top


def rounded(value: float, digits: int = PROBABILITY_DIGITS) -> float:
    return round(float(value), digits)


def classifier_answer(probs: torch.Tensor, labels: Sequence[str], top: int = MAX_LISTED_LABELS) -> dict[str, Any]:
    """One row's class probabilities ``(C,)`` -> ``{label, confidence, probabilities}``.

    A head may have more outputs than its vocabulary has labels (a one-label vocabulary gets a 2-way head):
    outputs without a label are dropped and the rest renormalised."""
    usable = probs[: len(labels)].tolist()  # Python floats: a few labels are faster here than tensor indexing
    total = max(sum(usable), 1e-12)
    usable = [p / total for p in usable]
    order = sorted(range(len(usable)), key=usable.__getitem__, reverse=True)
    best = order[0]
    listed = {labels[i]: rounded(usable[i]) for i in order[:top]}
    return {"label": labels[best], "confidence": rounded(usable[best]), "probabilities": listed}


def vad_answer(
    probs: torch.Tensor, centres: torch.Tensor, frame_shift: float, duration: float, options: VadOptions
) -> dict[str, Any]:
    """Speech probabilities of one row's encoder frames ``(T,)`` centred at ``centres`` (seconds) -> segments in
    seconds, placed as :func:`segment_times` places them (clipped to the audio)."""
    frames = speech_segments(probs, dataclasses.replace(options, frame_shift=frame_shift))
    segments = [
        {"start": round(begin, 3), "end": round(end, 3)}
        for begin, end in segment_times(frames, centres, frame_shift, duration)
    ]
    decided = (probs - 0.5).abs().mul(2).mean() if probs.numel() else torch.tensor(1.0)
    speech = float((probs >= options.threshold).float().mean()) if probs.numel() else 0.0
    return {"segments": segments, "speech_ratio": rounded(speech), "confidence": rounded(0.5 + 0.5 * decided)}


def asr_answer(result: DecodingResult) -> dict[str, Any]:
    """A decoded transcript with its CTC-aligned words (empty when the model has no CTC head)."""
    words = [
        {"word": w.word, "start": w.start, "end": w.end, "confidence": rounded(w.confidence)} for w in result.words
    ]
    return {
        "text": result.text,
        "words": words,
        "confidence": rounded(result.confidence),
        "language": result.language,
        "no_speech": result.no_speech,
    }


def word_groups(word_starts: Sequence[bool]) -> list[int]:
    """Piece index -> word index (a piece that starts a word opens the next group; a leading piece opens one)."""
    groups, word = [], -1
    for starts in word_starts:
        if starts or word < 0:
            word += 1
        groups.append(word)
    return groups


def spans_from_word_tags(words: Sequence[str], tags: Sequence[str]) -> list[dict[str, Any]]:
    """BIO tags per word -> ``[{type, value, start_word, end_word}]``; an ``I-x`` after anything but ``x``
    opens a span (lenient, as conlleval reads it)."""
    spans: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for index, tag in enumerate(tags):
        kind = tag[2:] if tag[:2] in ("B-", "I-") else None
        if kind is None:
            current = None
            continue
        if tag.startswith("I-") and current is not None and current["type"] == kind:
            current["end_word"] = index + 1
            continue
        current = {"type": kind, "start_word": index, "end_word": index + 1}
        spans.append(current)
    for span in spans:
        span["value"] = " ".join(words[span["start_word"] : span["end_word"]])
    return spans


def slots_from_piece_tags(
    words: Sequence[str],
    word_starts: Sequence[bool],
    tag_ids: Sequence[int],
    tag_probs: Sequence[float],
    tags: Sequence[str],
) -> dict[str, Any]:
    """Tags of the transcript's pieces -> the slots answer over its whitespace ``words``.

    Each word takes its first piece's tag; ids outside the tag vocabulary read as ``O``. Confidence: the mean
    probability of the chosen tag over those first pieces (1.0 for an empty transcript)."""
    groups = word_groups(word_starts)
    word_tags = ["O"] * len(words)
    chosen: list[float] = []
    seen: set[int] = set()
    for piece, word in enumerate(groups):
        if word in seen or word >= len(words):
            continue
        seen.add(word)
        tag_id = int(tag_ids[piece])
        word_tags[word] = tags[tag_id] if 0 <= tag_id < len(tags) else "O"
        chosen.append(float(tag_probs[piece]))
    confidence = sum(chosen) / len(chosen) if chosen else 1.0
    return {"spans": spans_from_word_tags(words, word_tags), "text": " ".join(words), "confidence": rounded(confidence)}


def slots_from_head(
    head: SlotsTask,
    tokenizer: Tokenizer,
    tags: Sequence[str],
    texts: Sequence[str],
    enc: torch.Tensor,
    enc_lens: torch.Tensor,
) -> list[dict[str, Any]]:
    """The ``slots`` head's answer for each row's transcript (see :func:`slots_from_piece_tags`)."""
    pieces = [tokenizer.encode(text) if text else [] for text in texts]
    best = head.best_tags(pieces, enc, enc_lens)
    return [
        slots_from_piece_tags(text.split(), tokenizer.word_starts(ids) if ids else [], tag_ids, probs, tags)
        for text, ids, (tag_ids, probs) in zip(texts, pieces, best, strict=True)
    ]


def slots_from_decoder(result: DecodingResult) -> dict[str, Any]:
    """The decoder's SLU answer (``[type : words]`` brackets already parsed) in the API's span format."""
    spans = [
        {"type": s["type"], "value": s["value"], "start_word": int(s["start"]), "end_word": int(s["end"])}
        for s in result.slots
    ]
    return {"spans": spans, "text": result.text, "confidence": rounded(result.confidence)}
