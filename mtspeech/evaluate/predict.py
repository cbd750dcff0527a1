"""Run a packaged model over a CutSet: one :class:`UtteranceResult` per cut, every task the model was trained for.

Cuts are sorted by duration and packed into batches of at most ``batch_duration`` seconds of *padded* audio
(a finite test set sorted by length pads less than any bucketing estimate), so short utterances are never
padded to the length of long ones. Per batch the model's own front end computes the log-mels and the encoder
runs ONCE; every task is then read off that one encoder output:

==========  ======================================================================================
asr         ``ModelDecoder.decode_encoded`` in the chosen mode (CTC, attention, rescoring, joint)
st          the decoder with a ``<|translate|>`` prompt, once per translation target the reference has
intent      the ``intent`` head, else the decoder's SLU answer (``<|slu|>`` prompt)
slots       the ``slots`` head over the ASR transcript's pieces, else the decoder's SLU answer
lid, ...    the pooled heads (``lid``, ``emotion``, ``accent``, ``speaker``, ``gender``): argmax label
vad         the ``vad`` head's frame probabilities, smoothed into speech segments (no padding)
==========  ======================================================================================

A decoder task counts only when the model's training config enabled it (``data.decoder_tasks`` in the
model metadata): an untrained prompt would decode noise and be scored as if it were a capability. The
language of a decoder prompt is the ``lid`` head's answer when the model has one, else the reference
language (the decoder is never trained to predict the language token itself).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from mtspeech.data.features import load_waveform, pad_waveforms, subsampled_length
from mtspeech.data.tokenizer import TASKS as DECODER_TASKS
from mtspeech.decode.options import MODES, DecodingOptions, VadOptions
from mtspeech.errors import UserError
from mtspeech.evaluate.predict_tasks import CLASSIFIER_FIELDS, EncodedBatch, TaskReader
from mtspeech.evaluate.records import Prediction, UtteranceResult, reference_from_cut
from mtspeech.model.package import LoadedModel

logger = logging.getLogger(__name__)

# Evaluation task names (mtspeech.evaluate.scoring.HEADLINE) in report order.
EVAL_TASKS = ("asr", "st", "intent", "slots", "lid", "vad", "emotion", "accent", "speaker", "gender")
AUTO = "auto"
FUSION_MODES = ("ctc_prefix_beam", "attention_rescoring")  # the modes whose CTC search can fuse the n-gram LM


@dataclass
class PredictOptions:
    """How :class:`Predictor` runs a model over a test set (CLI flags of ``mtspeech evaluate``)."""

    decoding: str = AUTO  # ASR decoding mode, one of mtspeech.decode.MODES; auto: see resolve_decoding
    beam_size: int = 5
    max_tokens: int | None = None  # answer tokens at most (None: the decoding default)
    language: Literal["auto", "reference"] = "auto"  # decoder prompt language: lid head (else reference) / reference
    vad_gating: bool = False  # decode only the speech segments found by the model's vad head
    lm_weight: float | None = None  # n-gram LM fusion: None = the weight tuned into the model's LM (0 without one)
    batch_duration: float = 60.0  # seconds of padded audio per batch
    max_utterances: int | None = None  # the first N cuts of the split
    tasks: tuple[str, ...] | None = None  # evaluation tasks to predict (EVAL_TASKS); None: all the model can
    device: str = "cpu"
    num_workers: int = 0  # DataLoader workers reading audio
    progress: bool = False

    def __post_init__(self) -> None:
        if self.decoding != AUTO and self.decoding not in MODES:
            raise UserError(f"decoding must be '{AUTO}' or one of {', '.join(MODES)}, got {self.decoding!r}")
        if self.beam_size < 1:
            raise UserError(f"beam size must be >= 1, got {self.beam_size}")
        if self.batch_duration <= 0:
            raise UserError(f"batch duration must be > 0 seconds, got {self.batch_duration}")
        if self.max_utterances is not None and self.max_utterances < 1:
            raise UserError(f"max utterances must be >= 1, got {self.max_utterances}")
        if self.language not in ("auto", "reference"):
            raise UserError(f"language must be 'auto' or 'reference', got {self.language!r}")
        unknown = [t for t in self.tasks or () if t not in EVAL_TASKS]
        if unknown:
            raise UserError(f"unknown evaluation task(s) {', '.join(unknown)}; known: {', '.join(EVAL_TASKS)}")


def trained_decoder_tasks(loaded: LoadedModel) -> tuple[str, ...]:
    """Decoder prompt tasks the model was trained on (metadata ``train_config.data``; all when unrecorded)."""
    if "decoder" not in loaded.model.tasks:
        return ()
    data = (loaded.metadata.get("train_config") or {}).get("data") or {}
    tasks = data.get("decoder_tasks") or list(DECODER_TASKS)
    weights = data.get("decoder_task_weights") or {}
    return tuple(t for t in tasks if t in DECODER_TASKS and float(weights.get(t, 1.0)) > 0)


def prediction_sources(loaded: LoadedModel) -> dict[str, str]:
    """Evaluation task -> what answers it in this model (only tasks the model was trained for)."""
    heads, vocabs = loaded.model.tasks, loaded.vocabs
    decoder = trained_decoder_tasks(loaded)
    slu = "slu" in decoder and bool(loaded.tokenizer.intents)
    sources: dict[str, str] = {}
    if "asr_ctc" in heads or "transcribe" in decoder:
        parts = ["asr_ctc"] if "asr_ctc" in heads else []
        sources["asr"] = " + ".join([*parts, "decoder"] if "transcribe" in decoder else parts)
    if "translate" in decoder:
        sources["st"] = "decoder (translate)"
    if "intent_text" in heads and "intent" in vocabs:
        sources["intent"] = "intent_text head"
    elif "intent" in heads and "intent" in vocabs:
        sources["intent"] = "intent head"
    elif slu:
        sources["intent"] = "decoder (slu)"
    if "slots" in heads and "slot" in vocabs:
        sources["slots"] = "slots head"
    elif slu:
        sources["slots"] = "decoder (slu)"
    if "vad" in heads:
        sources["vad"] = "vad head"
    for task in CLASSIFIER_FIELDS:
        if task in heads and task in vocabs:
            sources[task] = f"{task} head"
    return {task: sources[task] for task in EVAL_TASKS if task in sources}


def resolve_decoding(loaded: LoadedModel, options: PredictOptions) -> DecodingOptions | None:
    """The ASR decoding options; None when the model cannot transcribe. ``auto`` picks the serving default:
    CTC prefix beam + attention rescoring with both heads, else CTC prefix beam, else attention beam search."""
    heads = loaded.model.tasks
    transcribing_decoder = "transcribe" in trained_decoder_tasks(loaded)
    if "asr_ctc" not in heads and not transcribing_decoder:
        return None
    mode = options.decoding
    if mode == AUTO:
        if "asr_ctc" in heads and transcribing_decoder:
            mode = "attention_rescoring"
        else:
            mode = "ctc_prefix_beam" if "asr_ctc" in heads else "attention_beam"
    values: dict[str, Any] = {"mode": mode, "beam_size": options.beam_size, "nbest": options.beam_size}
    values |= lm_fusion_values(loaded, mode, options.lm_weight)
    if options.max_tokens is not None:
        values["max_tokens"] = options.max_tokens
    if options.vad_gating:
        values["vad"] = VadOptions()
    return DecodingOptions.from_dict(values)


def lm_fusion_values(loaded: LoadedModel, mode: str, weight: float | None = None) -> dict[str, float]:
    """``lm_weight`` / ``lm_bonus`` decoding values: the ones ``mtspeech lm`` tuned into the model's LM, or
    ``weight`` when given (with the tuned bonus); nothing for a model without an LM or a mode that cannot fuse."""
    lm = getattr(loaded, "lm", None)
    if weight is not None and weight > 0 and lm is None:
        raise UserError("an LM weight needs a model file with an n-gram LM (add one: mtspeech lm --model M --data D)")
    if lm is None or mode not in FUSION_MODES:
        return {}
    values = lm.tuned_fusion()
    if weight is not None:
        values["lm_weight"] = weight
    return values


def make_batches(cuts: Sequence[Any], batch_duration: float) -> list[list[Any]]:
    """Cuts sorted longest first, packed so that ``len(batch) * longest cut <= batch_duration`` (one cut longer
    than that is a batch of its own). Longest first: an out-of-memory batch shows up at once, not at the end."""
    ordered = sorted(cuts, key=lambda c: (-float(c.duration), c.id))
    batches: list[list[Any]] = []
    for cut in ordered:
        if batches and (len(batches[-1]) + 1) * float(batches[-1][0].duration) <= batch_duration:
            batches[-1].append(cut)
        else:
            batches.append([cut])
    return batches


@dataclass
class Timings:
    """Seconds spent per stage over all batches (``audio`` is reading files, not part of the model's latency)."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    utterances: int = 0
    audio_seconds: float = 0.0

    @property
    def model_seconds(self) -> float:
        """Front end + encoder + every task: the inference latency of the model on this audio."""
        return sum(v for k, v in self.seconds.items() if k != "audio")

    def to_dict(self) -> dict[str, Any]:
        return {
            "utterances": self.utterances,
            "audio_seconds": round(self.audio_seconds, 3),
            "model_seconds": round(self.model_seconds, 4),
            "stages": {k: round(v, 4) for k, v in sorted(self.seconds.items())},
        }


class _BatchDataset(torch.utils.data.Dataset):
    """Batch index -> (cuts, waveforms); audio is read here so DataLoader workers can overlap it with decoding."""

    def __init__(self, batches: list[list[Any]], sample_rate: int) -> None:
        self.batches = batches
        self.sample_rate = sample_rate

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> tuple[list[Any], list[np.ndarray]]:
        cuts = self.batches[index]
        return cuts, [load_waveform(cut, self.sample_rate) for cut in cuts]


def _as_is(item: Any) -> Any:
    return item


class Predictor:
    """Runs one :class:`LoadedModel` over cuts; see the module docstring. ``timings`` accumulate across calls."""

    def __init__(self, loaded: LoadedModel, options: PredictOptions | None = None) -> None:
        self.options = options or PredictOptions()
        self.device = torch.device(self.options.device)
        self.model = loaded.model.to(self.device).eval()
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        self.vocabs = dict(loaded.vocabs)
        available = prediction_sources(loaded)
        wanted = self.options.tasks
        self.sources = {t: s for t, s in available.items() if wanted is None or t in wanted}
        if wanted is not None and not self.sources:
            raise UserError(
                f"the model predicts none of the requested tasks ({', '.join(wanted)}); "
                f"it predicts: {', '.join(available) or 'nothing'}"
            )
        # The slots head tags the ASR transcript, so it needs ASR decoding even when ASR itself is not asked for.
        needs_asr = "asr" in self.sources or self.sources.get("slots") == "slots head"
        self.decoding = resolve_decoding(loaded, self.options) if needs_asr else None
        self.reader = TaskReader(
            self.model, self.tokenizer, self.vocabs, self.sources, self.decoding, self.options, loaded.lm
        )
        if self.decoding is not None:
            self.reader.decoder._check_model(
                self.decoding
            )  # a mode the model cannot run fails before any audio is read
        self.timings = Timings()
        self.skipped_short = 0

    def describe(self) -> dict[str, Any]:
        """What this predictor runs (report metadata)."""
        info: dict[str, Any] = {"tasks": dict(self.sources), "prompt_language": self.options.language}
        if self.decoding is not None:
            info["decoding"] = self.decoding.mode
            info["beam_size"] = self.decoding.beam_size
            if self.decoding.lm_weight > 0:
                info["lm_weight"], info["lm_bonus"] = self.decoding.lm_weight, self.decoding.lm_bonus
            info["vad_gating"] = self.decoding.vad is not None
        return info

    # --- whole test sets ----------------------------------------------------------------------------
    def predict(self, cuts: Sequence[Any]) -> list[UtteranceResult]:
        """One result per cut, in the order of ``cuts``."""
        cuts = list(cuts)
        if not cuts:
            raise UserError("no cuts to evaluate")
        dataset = _BatchDataset(make_batches(cuts, self.options.batch_duration), self.model.frontend.sample_rate)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=None, shuffle=False, num_workers=self.options.num_workers, collate_fn=_as_is
        )
        found: dict[str, UtteranceResult] = {}
        with _progress(len(cuts), self.options.progress) as advance:
            started = time.perf_counter()
            for batch_cuts, waves in loader:
                self.timings.seconds["audio"] += time.perf_counter() - started
                for result in self.predict_batch(batch_cuts, waves):
                    found[result.id] = result
                advance(len(batch_cuts))
                started = time.perf_counter()
        if self.skipped_short:
            logger.warning("%d cut(s) too short for the encoder got empty predictions", self.skipped_short)
        return [found[cut.id] for cut in cuts]

    # --- one batch ----------------------------------------------------------------------------------
    @torch.inference_mode()
    def predict_batch(self, cuts: Sequence[Any], waves: Sequence[np.ndarray]) -> list[UtteranceResult]:
        """Predictions for ``cuts`` from their 16 kHz mono ``waves``: front end and encoder once, then every task."""
        references = [reference_from_cut(cut) for cut in cuts]
        results = [
            UtteranceResult(cut.id, ref, Prediction(), float(cut.duration))
            for cut, ref in zip(cuts, references, strict=True)
        ]
        self.timings.utterances += len(cuts)
        self.timings.audio_seconds += sum(float(c.duration) for c in cuts)
        frames = self.model.frontend.num_frames(torch.tensor([len(w) for w in waves]))
        usable = [row for row, n in enumerate(frames.tolist()) if self._encoder_frames(int(n)) >= 1]
        self.skipped_short += len(cuts) - len(usable)
        if not usable:
            return results
        with self._timed("features"):
            padded, lengths = pad_waveforms([waves[row] for row in usable])
            features, feature_lens = self.model.features_from_audio(padded.to(self.device), lengths.to(self.device))
        with self._timed("encoder"):
            enc, enc_lens, layers = self.model.encode_layers(features, feature_lens)
        batch = EncodedBatch(
            enc,
            enc_lens,
            [references[r] for r in usable],
            [results[r].prediction for r in usable],
            durations=[float(cuts[r].duration) for r in usable],
            layers=layers,
        )
        for task in self.sources:
            with self._timed(task):
                self.reader.read(task, batch)
        return results

    def _encoder_frames(self, feature_frames: int) -> int:
        return int(subsampled_length(feature_frames, self.model.encoder.subsampling_factor))

    @contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        """Wall time of ``stage``; on a GPU the queue is drained first so asynchronous kernels are counted."""
        self._synchronize()
        started = time.perf_counter()
        try:
            yield
        finally:
            self._synchronize()
            self.timings.seconds[stage] += time.perf_counter() - started

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


@contextmanager
def _progress(total: int, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr counting utterances (a no-op when disabled)."""
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("decoding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("decoding", total=total)
        yield lambda n: bar.advance(task, n)


def select_cuts(cuts: Any, max_utterances: int | None) -> list[Any]:
    """The first ``max_utterances`` cuts (all when None), in corpus order."""
    selected = []
    for cut in cuts:
        if max_utterances is not None and len(selected) >= max_utterances:
            break
        selected.append(cut)
    return selected


def predict_cuts(loaded: LoadedModel, cuts: Any, options: PredictOptions | None = None) -> list[UtteranceResult]:
    """Predictions of ``loaded`` for ``cuts`` (the first ``options.max_utterances``), references filled in."""
    options = options or PredictOptions()
    return Predictor(loaded, options).predict(select_cuts(cuts, options.max_utterances))
