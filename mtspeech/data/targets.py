"""Per-cut training targets, read from the label contract in :mod:`mtspeech.data.schema`.

A cut may hold several supervisions. Sequence labels (transcript, translations, SLURP annotation, slot tags) are
joined in time order only when *every* supervision has them and all share one language; utterance-level classes
only when all supervisions agree. Anything else is treated as missing (masked), never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from mtspeech.data.batch import IGNORE
from mtspeech.data.features import encoder_frame_times
from mtspeech.data.labels import LabelVocab, supervision_label
from mtspeech.data.schema import (
    BIO,
    EXACT_SEGMENTS,
    SLOTS,
    SLURP_ANNOTATION,
    TRANSLATION,
    SlotSpan,
    bio_to_spans,
    spans_to_bio,
)
from mtspeech.data.synth.text_slurp import annotate
from mtspeech.data.tokenizer import Tokenizer


@dataclass
class UtteranceView:
    """The labels of one cut, with multi-supervision cuts already joined (or dropped) per the rules above."""

    transcript: str | None = None
    language: str | None = None
    bio: list[str] | None = None  # one tag per word of ``transcript``
    translations: dict[str, str] = field(default_factory=dict)
    slurp_annotation: str | None = None
    segments: list[tuple[float, float, str]] = field(default_factory=list)  # (start, end, text), cut-relative
    speech: list[tuple[float, float]] = field(default_factory=list)  # every supervision's (start, end)
    exact_segments: bool = False
    labels: dict[str, str | None] = field(default_factory=dict)  # class task -> agreed label


def _joined(values: list[str | None]) -> str | None:
    if not values or any(not v for v in values):
        return None
    return " ".join(" ".join(str(v).split()) for v in values)


def _bio_of(sup: Any) -> list[str] | None:
    """BIO tags of one supervision from ``bio`` or ``slots``; None when absent or inconsistent with its text."""
    custom = sup.custom or {}
    words = (sup.text or "").split()
    if custom.get(BIO) is not None:
        tags = [str(t) for t in custom[BIO]]
        return tags if len(tags) == len(words) else None
    if custom.get(SLOTS) is not None:
        try:
            return spans_to_bio(len(words), [SlotSpan.from_dict(s) for s in custom[SLOTS]])
        except (ValueError, KeyError, TypeError):
            return None
    return None


def slurp_annotation_of(sup: Any) -> str | None:
    """The SLU answer text of one supervision: its ``slurp_annotation``, else one built from its slot labels
    (``bio`` or ``slots``) in the same ``[type : words]`` form, so corpora that only carry slot tags still teach
    the decoder to bracket slots; None without either."""
    custom = sup.custom or {}
    if custom.get(SLURP_ANNOTATION):
        return " ".join(str(custom[SLURP_ANNOTATION]).split())
    tags = _bio_of(sup)
    if tags is None:
        return None
    words = (sup.text or "").split()
    return annotate(words, bio_to_spans(words, tags))


def utterance_view(cut: Any, class_tasks: tuple[str, ...] | list[str] = ()) -> UtteranceView:
    sups = sorted(cut.supervisions, key=lambda s: (s.start, s.end))
    custom = getattr(cut, "custom", None) or {}
    view = UtteranceView(exact_segments=bool(custom.get(EXACT_SEGMENTS, False)))
    view.speech = [(float(s.start), float(s.end)) for s in sups]
    for task in class_tasks:
        values = {supervision_label(task, s) for s in sups}
        view.labels[task] = values.pop() if len(values) == 1 else None
    languages = {s.language for s in sups}
    if not sups or len(languages) != 1:
        return view
    view.language = languages.pop() or None
    view.transcript = _joined([s.text for s in sups])
    if view.transcript is None:
        return view
    view.segments = [(float(s.start), float(s.end), " ".join(s.text.split())) for s in sups]
    bios = [_bio_of(s) for s in sups]
    if all(b is not None for b in bios):
        view.bio = [tag for b in bios for tag in b]  # type: ignore[union-attr]
    translation_maps = [(s.custom or {}).get(TRANSLATION) or {} for s in sups]
    for target in sorted(set.intersection(*(set(m) for m in translation_maps))):
        joined = _joined([m[target] for m in translation_maps])
        if joined is not None:
            view.translations[target] = joined
    view.slurp_annotation = _joined([slurp_annotation_of(s) for s in sups])
    return view


def ctc_min_frames(target: list[int]) -> int:
    """The fewest encoder frames a CTC alignment of ``target`` needs: one per token plus one blank between
    repeated tokens."""
    return len(target) + sum(1 for a, b in zip(target, target[1:], strict=False) if a == b)


def ctc_feasible(target: list[int], num_enc_frames: int) -> bool:
    """Whether CTC can align ``target`` to ``num_enc_frames`` frames (:func:`ctc_min_frames`)."""
    return ctc_min_frames(target) <= num_enc_frames


def available_tasks(tokenizer: Tokenizer, view: UtteranceView, allowed: tuple[str, ...] | list[str]) -> list[str]:
    """Decoder tasks this cut can train, in ``allowed`` order."""
    if view.transcript is None or view.language not in tokenizer.language_ids:
        return []
    tasks = []
    for task in allowed:
        if (
            task == "transcribe"
            or (task == "translate" and translation_targets(tokenizer, view))
            or (task == "slu" and view.labels.get("intent") in tokenizer.intent_ids)
        ):
            tasks.append(task)
    return tasks


def translation_targets(tokenizer: Tokenizer, view: UtteranceView) -> list[str]:
    return [lang for lang in view.translations if lang in tokenizer.language_ids and lang != view.language]


def decoder_answer(
    tokenizer: Tokenizer, view: UtteranceView, task: str, target_language: str | None, timestamps: bool
) -> list[int]:
    """Token ids the decoder must produce after the prompt (``<|eot|>`` excluded).

    transcribe: the transcript, or with timestamps ``<|t0|> text <|t1|>`` per supervision;
    translate: the translation into ``target_language``;
    slu: the SLURP annotation (``wake me up at [time : eight] o'clock``; built from the slot tags when the cut
    has no annotation; the plain transcript when it has neither) followed by the intent token."""
    assert view.transcript is not None
    if task == "transcribe" and timestamps:
        answer: list[int] = []
        for start, end, text in view.segments:
            answer += [tokenizer.timestamp_id(start), *tokenizer.encode(text), tokenizer.timestamp_id(end)]
        return answer
    if task == "transcribe":
        return tokenizer.encode(view.transcript)
    if task == "translate":
        assert target_language is not None
        return tokenizer.encode(view.translations[target_language])
    if task == "slu":
        intent = view.labels.get("intent")
        assert intent is not None
        return [*tokenizer.encode(view.slurp_annotation or view.transcript), tokenizer.intent_id(intent)]
    raise ValueError(f"unknown decoder task {task!r}")


def decoder_rows(prompt: list[int], answer: list[int], eot_id: int) -> tuple[list[int], list[int]]:
    """Teacher-forcing input ``prompt + answer`` and target (input shifted left + eot, IGNORE on the prompt)."""
    decoder_input = prompt + answer
    decoder_target = [IGNORE] * (len(prompt) - 1) + answer + [eot_id]
    return decoder_input, decoder_target


def vad_row(view: UtteranceView, num_enc_frames: int, subsampling_factor: int, frame_shift: float) -> torch.Tensor:
    """Speech (1) / non-speech (0) per encoder frame: 1 when the frame's receptive-field centre lies in a
    supervision (see :func:`encoder_frame_times`)."""
    centres = encoder_frame_times(num_enc_frames, subsampling_factor, frame_shift)
    speech = torch.zeros(num_enc_frames, dtype=torch.bool)
    for start, end in view.speech:
        speech |= (centres >= start) & (centres < end)
    return speech.long()


def slot_row(tokenizer: Tokenizer, ctc_ids: list[int], bio: list[str], vocab: LabelVocab) -> list[int] | None:
    """Slot tag id per CTC token: each piece gets its word's tag, ``B-x`` only on the word's first piece
    (later pieces of that word get ``I-x``). None when pieces and words cannot be matched up."""
    starts = tokenizer.word_starts(ctc_ids)
    if not starts or not starts[0] or sum(starts) != len(bio):
        return None
    row: list[int] = []
    word = -1
    for is_start in starts:
        word += int(is_start)
        tag = bio[word]
        if not is_start and tag.startswith("B-"):
            tag = "I-" + tag[2:]
        row.append(vocab.encode(tag))
    return row
