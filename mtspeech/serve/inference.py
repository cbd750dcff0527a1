"""One inference path for the service and ``mtspeech analyze``: waveforms -> front end -> encoder ONCE -> every
requested task read off that one encoder output.

Service task names map to the model's tasks (whichever it has):

============  =====================================================================================
asr           ``ModelDecoder.decode_encoded`` (CTC and/or attention decoder), words CTC-aligned
language      the ``lid`` head, or the decoder's language-token probabilities after ``<|sot|>``
intent        the ``intent`` head, or the decoder's SLU answer (``<|slu|>`` prompt)
slots         the ``slots`` head over the transcript's pieces, or the decoder's SLU answer
translation   the decoder with a ``<|translate|>`` prompt to ``translate_to``
emotion ...   ``emotion``, ``accent``, ``speaker``, ``gender`` heads (label + probabilities)
vad           the ``vad`` head's frame probabilities as speech segments in seconds
============  =====================================================================================
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mtspeech.data.features import encoder_frame_times, pad_waveforms
from mtspeech.decode.decoding import ModelDecoder
from mtspeech.decode.options import CTC_MODES, DecodingOptions, VadOptions
from mtspeech.decode.result import DecodingResult
from mtspeech.errors import UserError
from mtspeech.model.package import LoadedModel
from mtspeech.serve import answers
from mtspeech.serve.decoding_defaults import decoding_options, default_decoding
from mtspeech.serve.quantize import quantize_model, resolve_engine
from mtspeech.serve.serving_model import serving_copy
from mtspeech.tasks.pooled_fused import FusedPooledHeads, fusable, fuse_pooled_heads

SERVICE_TASKS = ("asr", "language", "intent", "slots", "translation", "emotion", "accent", "speaker", "gender", "vad")
# Service task -> the pooled classifier head that answers it (and its label vocabulary).
CLASSIFIER_HEADS = {"language": "lid", "intent": "intent", "emotion": "emotion", "accent": "accent"}
CLASSIFIER_HEADS |= {"speaker": "speaker", "gender": "gender"}
MIN_ENCODER_FRAMES = 1


@dataclass
class _Batch:
    """One call's shared state: the encoder output and what several tasks reuse (language, transcript)."""

    enc: torch.Tensor
    enc_lens: torch.Tensor
    durations: list[float]
    layers: list[torch.Tensor] = field(default_factory=list)  # every encoder layer, when a head mixes them
    timings: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    language: list[dict[str, Any]] | None = None
    prompt_languages: list[str] | None = None
    transcripts: list[DecodingResult] | None = None
    slu: list[DecodingResult] | None = None
    pooled: dict[str, torch.Tensor] = field(default_factory=dict)  # head -> probabilities, from the fused heads

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] += (time.perf_counter() - started) * 1000


class ModelAnalyzer:
    """The :class:`~mtspeech.serve.app.Analyzer` of a packaged model (see the module docstring).

    ``decoding``: how ``asr`` decodes (default :func:`default_decoding`); translation and decoder SLU use the
    same search settings with an ``attention_beam`` mode. ``quantize="int8"``: dynamic int8 quantisation of
    every ``nn.Linear`` (CPU only), packed for ``int8_engine`` (default ``auto``: see :mod:`mtspeech.serve.quantize`).
    ``vad``: how the ``vad`` answer smooths frame probabilities into segments. ``fuse_heads=False`` runs the
    pooled classifier heads one by one instead of fused (:mod:`mtspeech.tasks.pooled_fused`; for comparison).
    """

    def __init__(
        self,
        loaded: LoadedModel,
        decoding: DecodingOptions | None = None,
        name: str = "model",
        quantize: str | None = None,
        device: str | torch.device = "cpu",
        vad: VadOptions | None = None,
        int8_engine: str | None = None,
        fuse_heads: bool = True,
    ) -> None:
        if int8_engine is not None and quantize is None:
            raise UserError(
                f"an int8 engine ({int8_engine!r}, --int8-engine) needs int8 quantisation: add --quantize int8"
            )
        self.device = torch.device(device)
        model = loaded.model.to(self.device).eval()
        self.quantize_engine: str | None = None  # the int8 kernels' engine, resolved from int8_engine
        if quantize is not None:
            self.quantize_engine = resolve_engine(int8_engine or "auto")
            model = quantize_model(model, quantize, self.device, self.quantize_engine)
        else:  # the caller's model untouched: the same layers arranged as int8 has them (except the int8 patches)
            model = serving_copy(model)
        self.model = model
        fused_from = (model if quantize is None else loaded.model).tasks if fuse_heads else {}
        self._fusable = {name: task for name, task in fused_from.items() if fusable(task)}
        self._fused: dict[tuple[str, ...], FusedPooledHeads | None] = {}
        self.tokenizer = loaded.tokenizer
        self.vocabs = dict(loaded.vocabs)
        self.metadata = dict(loaded.metadata)
        self.decoder = ModelDecoder(model, self.tokenizer, self.vocabs, loaded.lm)
        self.decoding = decoding or default_decoding(model, loaded.lm)
        self.vad_options = vad or VadOptions()
        self.quantize = quantize
        self.name = name
        steps = self.metadata.get("trained_steps")
        self.version = str(self.metadata.get("version") or (f"step {steps}" if steps is not None else "untrained"))
        if quantize:
            self.version += f" ({quantize}, {self.quantize_engine})"
        self.tasks = self._available_tasks()
        if "asr" in self.tasks:  # a mode the model cannot run is a UserError now, not on every request
            self.decoder._check_model(self.decoding)
        self.default_tasks = tuple(t for t in self.tasks if t != "translation")
        self.translation_targets = tuple(self.tokenizer.languages) if "translation" in self.tasks else ()
        self._lock = threading.Lock()  # ModelDecoder flips train/eval mode: one call at a time per model

    # --- what this model can answer ------------------------------------------------------------------
    def _available_tasks(self) -> tuple[str, ...]:
        heads = self.model.tasks
        decoder = "decoder" in heads
        slu = decoder and bool(self.tokenizer.intents)
        offered = {
            "asr": "asr_ctc" in heads or decoder,
            "language": ("lid" in heads and "lid" in self.vocabs) or decoder,
            "intent": (("intent" in heads or "intent_text" in heads) and "intent" in self.vocabs) or slu,
            "slots": ("slots" in heads and "slot" in self.vocabs) or slu,
            "translation": decoder,
            "vad": "vad" in heads,
        }
        for task in ("emotion", "accent", "speaker", "gender"):
            offered[task] = task in heads and task in self.vocabs
        return tuple(t for t in SERVICE_TASKS if offered[t])

    def _head_of(self, task: str) -> tuple[str, str]:
        """``(head, label vocabulary)`` answering ``task``; intents come from the transcript-reading
        ``intent_text`` head when the model has one (docs/model.md), else from the pooled ``intent`` head."""
        if task == "intent" and "intent_text" in self.model.tasks:
            return "intent_text", "intent"
        head = CLASSIFIER_HEADS.get(task, task)
        return head, "slot" if task == "slots" else head

    def _has_head(self, task: str) -> bool:
        head, vocab = self._head_of(task)
        return head in self.model.tasks and vocab in self.vocabs

    # --- the one call -----------------------------------------------------------------------------------
    def analyze(
        self, waves: Sequence[np.ndarray], tasks: Sequence[str], translate_to: Sequence[str | None] | None = None
    ) -> list[dict[str, Any]]:
        """One answer dict per 16 kHz mono waveform: task -> answer, plus ``timings_ms`` of the whole batch."""
        unknown = [t for t in tasks if t not in self.tasks]
        if unknown:
            raise UserError(
                f"task(s) {', '.join(unknown)} not offered by this model; it answers: {', '.join(self.tasks)}"
            )
        if not waves:
            return []
        targets = list(translate_to) if translate_to is not None else [None] * len(waves)
        if len(targets) != len(waves):
            raise ValueError(f"{len(targets)} translation targets for {len(waves)} waveforms")
        for target in {t for t in targets if t is not None}:
            if target not in self.translation_targets:
                raise UserError(f"cannot translate to {target!r}; targets: {', '.join(self.translation_targets)}")
        with self._lock, torch.inference_mode():
            batch = self._encode(waves)
            self._run_pooled_heads(batch, tasks)
            results: list[dict[str, Any]] = [{} for _ in waves]
            for task in dict.fromkeys(tasks):
                with batch.timed(task):
                    per_row = self._answer(task, batch, targets)
                for row, answer in enumerate(per_row):
                    if answer is not None:
                        results[row][task] = answer
        timings = {name: round(ms, 2) for name, ms in batch.timings.items()}
        for result in results:
            result["timings_ms"] = dict(timings)
        return results

    def _encode(self, waves: Sequence[np.ndarray]) -> _Batch:
        padded, lengths = pad_waveforms([np.asarray(wave, dtype=np.float32) for wave in waves])
        sample_rate = self.model.frontend.sample_rate
        timings: dict[str, float] = defaultdict(float)
        started = time.perf_counter()
        features, feature_lens = self.model.features_from_audio(padded.to(self.device), lengths.to(self.device))
        timings["features"] = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        enc, enc_lens, layers = self.model.encode_layers(features, feature_lens)
        timings["encoder"] = (time.perf_counter() - started) * 1000
        short = [row for row, n in enumerate(enc_lens.tolist()) if n < MIN_ENCODER_FRAMES]
        if short:
            seconds = len(waves[short[0]]) / sample_rate
            raise UserError(f"audio {short[0]} lasts {seconds:.3f} s: too short for the encoder (at least 0.1 s)")
        durations = [len(w) / sample_rate for w in waves]
        return _Batch(enc, enc_lens, durations, layers, timings)

    def _answer(self, task: str, batch: _Batch, targets: list[str | None]) -> list[dict[str, Any] | None]:
        handlers: dict[str, Callable[[], list[dict[str, Any] | None]]] = {
            "asr": lambda: [answers.asr_answer(r) for r in self._transcripts(batch)],
            "language": lambda: list(self._language(batch)),
            "intent": lambda: self._intent(batch),
            "slots": lambda: self._slots(batch),
            "translation": lambda: self._translation(batch, targets),
            "vad": lambda: self._vad(batch),
        }
        if task in handlers:
            return handlers[task]()
        return self._classify(task, batch)

    # --- classifier heads -------------------------------------------------------------------------------
    def _run_pooled_heads(self, batch: _Batch, tasks: Sequence[str]) -> None:
        """The pooled classifier heads answering ``tasks``, all at once when two or more can be fused
        (:mod:`mtspeech.tasks.pooled_fused`); ``_classify`` reads their probabilities from ``batch.pooled``.
        Their weights are read when a set of heads is first asked for; an int8 model fuses its float heads (their
        products are too small for int8 to pay)."""
        heads = tuple(dict.fromkeys(self._head_of(t)[0] for t in tasks if t in CLASSIFIER_HEADS))
        if heads not in self._fused:  # one module (or None: fewer than two fusable) per set asked for together
            self._fused[heads] = fuse_pooled_heads(self._fusable, heads)
        fused = self._fused[heads]
        if fused is None:
            return
        with batch.timed("pooled_heads"):
            batch.pooled = {h: p.cpu() for h, p in fused.probabilities(batch.enc, batch.enc_lens).items()}

    def _classify(self, task: str, batch: _Batch, top: int = answers.MAX_LISTED_LABELS) -> list[dict[str, Any] | None]:
        head, vocab = self._head_of(task)
        inputs: dict[str, Any] = {}
        if head == "intent_text":  # reads the transcript the asr answer shows, as the slots head does
            inputs["tokens"] = [self.tokenizer.encode(r.text) if r.text else [] for r in self._transcripts(batch)]
        if head in batch.pooled:
            probs = batch.pooled[head]
        else:
            enc = self.model.task_input(head, batch.enc, batch.layers)
            probs = self.model.tasks[head].probabilities(enc, batch.enc_lens, **inputs).cpu()
        labels = self.vocabs[vocab].labels
        out: list[dict[str, Any] | None] = [answers.classifier_answer(row, labels, top) for row in probs]
        if task == "intent":  # 60-odd intents: the label, its confidence and the runners-up, not every class
            for answer in out:
                assert answer is not None
                answer["alternatives"] = dict(list(answer.pop("probabilities").items())[1:4])
        return out

    def _language(self, batch: _Batch) -> list[dict[str, Any]]:
        if batch.language is None:
            if self._has_head("language"):
                batch.language = [a for a in self._classify("language", batch) if a is not None]
                for answer in batch.language:
                    answer["source"] = "lid"
            else:
                batch.language = self._decoder_language(batch)
        return batch.language

    def _decoder_language(self, batch: _Batch) -> list[dict[str, Any]]:
        """Whisper's language detection: the decoder's next-token distribution after ``<|sot|>``, restricted to
        the language tokens."""
        codes = list(self.tokenizer.language_ids)
        ids = torch.tensor([self.tokenizer.language_ids[c] for c in codes], device=self.device)
        sot = torch.full((batch.enc.size(0), 1), self.tokenizer.sot_id, dtype=torch.long, device=self.device)
        logits = self.model.tasks["decoder"].logits(sot, batch.enc, batch.enc_lens)[:, -1].float()
        probs = logits[:, ids].softmax(dim=-1).cpu()
        out = []
        for row in probs:
            answer = answers.classifier_answer(row, codes, top=10)
            answer["source"] = "decoder"
            out.append(answer)
        return out

    def _prompt_languages(self, batch: _Batch) -> list[str]:
        """The spoken language of each row as a decoder prompt needs it (a language with a tokenizer token)."""
        if batch.prompt_languages is None:
            found = [a["label"] for a in self._language(batch)]
            if any(code not in self.tokenizer.language_ids for code in found) and "decoder" in self.model.tasks:
                detected = [a["label"] for a in self._decoder_language(batch)]
                found = [c if c in self.tokenizer.language_ids else d for c, d in zip(found, detected, strict=True)]
            batch.prompt_languages = found
        return batch.prompt_languages

    # --- decoder-based answers -----------------------------------------------------------------------------
    def _transcripts(self, batch: _Batch) -> list[DecodingResult]:
        if batch.transcripts is None:
            rows = list(range(batch.enc.size(0)))
            if self.decoding.mode in CTC_MODES:
                decoded = self.decoder.decode_encoded(batch.enc, batch.enc_lens, self.decoding)
            else:
                languages = self._prompt_languages(batch)
                by_row = self.decoder.decode_rows(
                    batch.enc, batch.enc_lens, rows, lambda r: self.decoding.replace(language=languages[r])
                )
                decoded = [by_row[r] for r in rows]
            batch.transcripts = decoded
        return batch.transcripts

    def _decoder_options(self, **changes: Any) -> DecodingOptions:
        base = self.decoding.replace(
            mode="attention_beam", timestamps=False, word_timestamps=False, lm_weight=0.0, lm_bonus=0.0
        )
        return base.replace(**changes)

    def _translation(self, batch: _Batch, targets: list[str | None]) -> list[dict[str, Any] | None]:
        languages = self._prompt_languages(batch)
        rows = [r for r, target in enumerate(targets) if target is not None]

        def options(row: int) -> DecodingOptions:
            return self._decoder_options(task="translate", language=languages[row], target_language=targets[row])

        found = self.decoder.decode_rows(batch.enc, batch.enc_lens, rows, options)
        out: list[dict[str, Any] | None] = [None] * len(targets)
        for row, result in found.items():
            out[row] = {
                "target": targets[row],
                "source_language": languages[row],
                "text": result.text,
                "confidence": answers.rounded(result.confidence),
            }
        return out

    def _slu(self, batch: _Batch) -> list[DecodingResult]:
        if batch.slu is None:
            languages = self._prompt_languages(batch)
            rows = list(range(batch.enc.size(0)))
            found = self.decoder.decode_rows(
                batch.enc, batch.enc_lens, rows, lambda r: self._decoder_options(task="slu", language=languages[r])
            )
            batch.slu = [found[r] for r in rows]
        return batch.slu

    def _intent(self, batch: _Batch) -> list[dict[str, Any] | None]:
        if self._has_head("intent"):
            return self._classify("intent", batch)
        return [
            {"label": r.intent, "confidence": answers.rounded(r.confidence), "source": "decoder"}
            for r in self._slu(batch)
        ]

    # --- slots and voice activity --------------------------------------------------------------------------
    def _slots(self, batch: _Batch) -> list[dict[str, Any] | None]:
        if not self._has_head("slots"):
            return [answers.slots_from_decoder(r) for r in self._slu(batch)]
        texts = [r.text for r in self._transcripts(batch)]
        head, tags = self.model.tasks["slots"], self.vocabs["slot"].labels
        return list(answers.slots_from_head(head, self.tokenizer, tags, texts, batch.enc, batch.enc_lens))

    def _vad(self, batch: _Batch) -> list[dict[str, Any] | None]:
        probs = self.model.tasks["vad"].frame_logits(batch.enc).float().sigmoid().cpu()
        factor, feature_shift = self.model.encoder.subsampling_factor, float(self.model.frontend.frame_shift)
        centres = encoder_frame_times(probs.size(1), factor, feature_shift)  # frame j's time does not depend on T
        shift = self.decoder.frame_shift
        return [
            answers.vad_answer(probs[row, :n], centres[:n], shift, batch.durations[row], self.vad_options)
            for row, n in enumerate(batch.enc_lens.tolist())
        ]


def load_analyzer(
    path: str | Path,
    *,
    mode: str | None = None,
    beam_size: int | None = None,
    max_tokens: int | None = None,
    lm_weight: float | None = None,
    **options: Any,
) -> ModelAnalyzer:
    """The :class:`ModelAnalyzer` of the model file at ``path``, named after the file unless ``name`` is given;
    ``mode``/``beam_size``/``max_tokens`` override :func:`default_decoding` (see :func:`decoding_options`)."""
    from mtspeech.model.package import load_model

    loaded = load_model(path)
    options.setdefault("name", Path(path).name)
    if "decoding" not in options:
        options["decoding"] = decoding_options(loaded.model, mode, beam_size, max_tokens, loaded.lm, lm_weight)
    return ModelAnalyzer(loaded, **options)
