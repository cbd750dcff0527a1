"""Reading each evaluation task off one encoded batch (see :mod:`mtspeech.evaluate.predict` for the table).

:class:`TaskReader` holds the model parts and the decoding settings; :class:`EncodedBatch` holds one batch's
encoder output and what several tasks share, so the language-ID head runs once even when it also chooses
decoder prompts, and one SLU decoding answers both intent and slots.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from mtspeech.data.features import encoder_frame_times
from mtspeech.data.schema import SlotSpan
from mtspeech.decode.decoding import ModelDecoder
from mtspeech.decode.lm import TokenNgramLM
from mtspeech.decode.options import CTC_MODES, DecodingOptions, VadOptions
from mtspeech.decode.result import DecodingResult
from mtspeech.decode.vad_gating import segment_times, speech_segments
from mtspeech.evaluate.records import Prediction, Reference
from mtspeech.serve.answers import slots_from_head

if TYPE_CHECKING:
    from mtspeech.data.tokenizer import Tokenizer
    from mtspeech.evaluate.predict import PredictOptions
    from mtspeech.model.model import MultiTaskModel

# Pooled classifier task -> the Prediction field it fills.
CLASSIFIER_FIELDS = {"lid": "language", "emotion": "emotion", "accent": "accent", "speaker": "speaker"}
CLASSIFIER_FIELDS["gender"] = "gender"


@dataclass
class EncodedBatch:
    """One batch after the encoder, and what several tasks share (labels, prompt languages, SLU answers)."""

    enc: torch.Tensor
    enc_lens: torch.Tensor
    references: list[Reference]
    predictions: list[Prediction]
    durations: list[float] = field(default_factory=list)
    layers: list[torch.Tensor] = field(default_factory=list)  # every encoder layer, when a head mixes them
    labels: dict[str, list[str]] = field(default_factory=dict)
    prompt_languages: list[str] | None = None
    slu: list[DecodingResult] | None = None


class TaskReader:
    """Predicts each task of ``sources`` (evaluation task -> what answers it) on an :class:`EncodedBatch`."""

    def __init__(
        self,
        model: MultiTaskModel,
        tokenizer: Tokenizer,
        vocabs: Mapping[str, Any],
        sources: Mapping[str, str],
        decoding: DecodingOptions | None,
        options: PredictOptions,
        lm: TokenNgramLM | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.vocabs = dict(vocabs)
        self.sources = dict(sources)
        self.decoding = decoding
        self.options = options
        self.decoder = ModelDecoder(model, tokenizer, self.vocabs, lm)

    def read(self, task: str, batch: EncodedBatch) -> None:
        """Fill ``task``'s field of every prediction in ``batch``."""
        handlers: dict[str, Callable[[EncodedBatch], None]] = {
            "asr": self._asr,
            "st": self._translation,
            "intent": self._intent,
            "slots": self._slots,
            "vad": self._vad,
        }
        handler = handlers.get(task)
        if handler is not None:
            handler(batch)
        else:
            labels = self._classify(task, batch)
            for prediction, label in zip(batch.predictions, labels, strict=True):
                setattr(prediction, CLASSIFIER_FIELDS[task], label)

    # --- heads ----------------------------------------------------------------------------------------
    def _classify(self, task: str, batch: EncodedBatch, head: str | None = None) -> list[str]:
        """Labels of ``task`` (a label vocabulary) from ``head`` (default: the head of the same name)."""
        if task in batch.labels:
            return batch.labels[task]
        labels = self.vocabs[task].labels
        inputs: dict[str, Any] = {}
        if head == "intent_text":  # reads the ASR transcript, as the slots head does
            if any(p.text is None for p in batch.predictions):
                self._asr(batch)
            inputs["tokens"] = [self.tokenizer.encode(p.text) if p.text else [] for p in batch.predictions]
        # A head may have more outputs than its vocabulary has labels (a one-label vocabulary gets two outputs).
        name = head or task
        enc = self.model.task_input(name, batch.enc, batch.layers)
        probs = self.model.tasks[name].probabilities(enc, batch.enc_lens, **inputs)[:, : len(labels)]
        batch.labels[task] = [labels[i] for i in probs.argmax(dim=-1).tolist()]
        return batch.labels[task]

    def _vad(self, batch: EncodedBatch) -> None:
        """Speech segments: threshold and min-speech/min-silence smoothing, no padding (padding is for decoding,
        it would count as false alarms here). Frame ``j`` spans its receptive-field centre +- half a frame."""
        probs = self.model.tasks["vad"].frame_logits(batch.enc).float().sigmoid().cpu()
        factor, feature_shift = self.model.encoder.subsampling_factor, float(self.model.frontend.frame_shift)
        shift = self.decoder.frame_shift
        options = VadOptions(pad=0.0, frame_shift=shift)
        centres = encoder_frame_times(probs.size(1), factor, feature_shift)  # frame j's time does not depend on T
        for row, (prediction, duration) in enumerate(zip(batch.predictions, batch.durations, strict=True)):
            n = int(batch.enc_lens[row])
            frames = speech_segments(probs[row, :n], options)
            times = segment_times(frames, centres[:n], shift, duration)
            prediction.speech_segments = [(round(begin, 4), round(end, 4)) for begin, end in times]

    # --- decoder ----------------------------------------------------------------------------------------
    def _prompt_languages(self, batch: EncodedBatch) -> list[str]:
        """Each row's spoken language for a decoder prompt (see the module docstring), always a tokenizer language."""
        if batch.prompt_languages is None:
            known = self.tokenizer.language_ids
            detected: list[str | None] = [None] * len(batch.references)
            if self.options.language == "auto" and "lid" in self.model.tasks and "lid" in self.vocabs:
                detected = list(self._classify("lid", batch))
            references = [ref.language for ref in batch.references]
            common = Counter(code for code in references if code in known).most_common(1)
            fallback = common[0][0] if common else self.tokenizer.languages[0]
            batch.prompt_languages = [
                d if d in known else (r if r in known else fallback) for d, r in zip(detected, references, strict=True)
            ]
        return batch.prompt_languages

    def _asr(self, batch: EncodedBatch) -> None:
        assert self.decoding is not None
        rows = range(len(batch.predictions))
        if self.decoding.mode in CTC_MODES:
            found = self.decoder.decode_rows(
                batch.enc, batch.enc_lens, rows, lambda row: self.decoding
            )  # CTC needs no prompt
        else:
            languages = self._prompt_languages(batch)
            found = self.decoder.decode_rows(
                batch.enc, batch.enc_lens, rows, lambda row: self.decoding.replace(language=languages[row])
            )
        for row, prediction in enumerate(batch.predictions):
            prediction.text = found[row].text

    def _decoder_options(self, **changes: Any) -> DecodingOptions:
        """Translation and SLU: attention beam search with the ASR search settings."""
        values: dict[str, Any] = {"mode": "attention_beam", "beam_size": self.options.beam_size}
        if self.options.max_tokens is not None:
            values["max_tokens"] = self.options.max_tokens
        if self.options.vad_gating:
            values["vad"] = VadOptions()
        return DecodingOptions.from_dict({**values, **changes})

    def _translation(self, batch: EncodedBatch) -> None:
        """One decoding per (row, reference target language): BLEU needs a hypothesis for every reference."""
        languages = self._prompt_languages(batch)
        known = self.tokenizer.language_ids
        jobs = [
            (row, target)
            for row, ref in enumerate(batch.references)
            for target in sorted(ref.translation)
            if target in known and target != languages[row]
        ]
        for target in sorted({t for _, t in jobs}):
            rows = [row for row, t in jobs if t == target]
            found = self.decoder.decode_rows(
                batch.enc,
                batch.enc_lens,
                rows,
                lambda row, t=target: self._decoder_options(
                    task="translate", language=languages[row], target_language=t
                ),
            )
            for row, result in found.items():
                batch.predictions[row].translation[target] = result.text

    def _slu(self, batch: EncodedBatch) -> list[DecodingResult]:
        if batch.slu is None:
            languages = self._prompt_languages(batch)
            rows = range(len(batch.predictions))
            found = self.decoder.decode_rows(
                batch.enc, batch.enc_lens, rows, lambda row: self._decoder_options(task="slu", language=languages[row])
            )
            batch.slu = [found[row] for row in rows]
        return batch.slu

    def _intent(self, batch: EncodedBatch) -> None:
        head = {"intent head": "intent", "intent_text head": "intent_text"}.get(self.sources["intent"])
        if head is not None:
            intents: list[str | None] = list(self._classify("intent", batch, head))
        else:
            intents = [result.intent for result in self._slu(batch)]
        for prediction, intent in zip(batch.predictions, intents, strict=True):
            prediction.intent = intent

    def _slots(self, batch: EncodedBatch) -> None:
        if self.sources["slots"] != "slots head":
            for prediction, result in zip(batch.predictions, self._slu(batch), strict=True):
                spans = result.slots
                prediction.slots = [SlotSpan(s["type"], int(s["start"]), int(s["end"]), s["value"]) for s in spans]
            return
        if any(p.text is None for p in batch.predictions):
            self._asr(batch)  # the head tags the transcript's pieces
        texts = [p.text or "" for p in batch.predictions]
        head, tags = self.model.tasks["slots"], self.vocabs["slot"].labels
        found = slots_from_head(head, self.tokenizer, tags, texts, batch.enc, batch.enc_lens)
        for prediction, answer in zip(batch.predictions, found, strict=True):
            prediction.slots = [
                SlotSpan(s["type"], int(s["start_word"]), int(s["end_word"]), s["value"]) for s in answer["spans"]
            ]
