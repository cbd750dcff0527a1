"""Collation: a batch of Lhotse cuts -> one multi-task :class:`~mtspeech.data.batch.Batch`.

Features are computed here, in the DataLoader workers, by the same :class:`LogMelFrontend` the model carries
for serving (pass ``frontend=None`` to read precomputed 80-dim features stored with the cuts instead). The model
therefore always receives ``(B, T, 80)`` log-mels; serving feeds raw audio through ``model.frontend``.

Every random choice (decoder task, translation target, timestamps) comes from an RNG seeded with
``(seed, epoch, cut.id)``: a batch is a pure function of its cuts, whatever the worker count, and a resumed run
rebuilds exactly the same targets. Repeated or speed-perturbed cuts carry distinct ids (``_repeat3``, ``_sp1.1``)
and so draw fresh choices.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from mtspeech.data.batch import IGNORE, Batch
from mtspeech.data.features import (
    NUM_MEL_BINS,
    LogMelFrontend,
    load_waveform,
    pad_waveforms,
    subsampled_length,
)
from mtspeech.data.labels import CLASS_TASKS, SLOT_TASK, LabelVocab
from mtspeech.data.targets import (
    UtteranceView,
    available_tasks,
    ctc_feasible,
    decoder_answer,
    decoder_rows,
    slot_row,
    translation_targets,
    utterance_view,
    vad_row,
)
from mtspeech.data.tokenizer import TASKS, Tokenizer

__all__ = ["MultiTaskCollator", "pad_rows", "subsampled_length"]

logger = logging.getLogger(__name__)


def pad_rows(rows: Sequence[Sequence[int]], pad_value: int, min_width: int = 1) -> torch.Tensor:
    """``(B, max(len, min_width))`` long tensor of ``rows`` right-padded with ``pad_value``."""
    width = max([min_width, *(len(r) for r in rows)])
    out = torch.full((len(rows), width), pad_value, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.as_tensor(list(row), dtype=torch.long)
    return out


class MultiTaskCollator:
    """Turn a CutSet into a :class:`Batch` with every label the cuts carry (see :mod:`mtspeech.data.targets`).

    Args:
        tokenizer: text tokenizer (CTC targets and decoder prompts/targets).
        vocabs: task -> :class:`LabelVocab`; class targets are produced for the keys in ``CLASS_TASKS`` present,
            slot targets when ``"slot"`` is present.
        frontend: computes features from audio; None reads precomputed features (``cut.load_features()``).
        subsampling_factor: the encoder's conv subsampling (see :data:`SUBSAMPLING_LAYOUTS`); sets VAD target
            length and the CTC feasibility check.
        decoder_tasks: tasks the decoder may be trained on; () disables decoder targets.
        task_weights: relative weight of each decoder task when a cut supports several (default all 1).
        timestamp_prob: probability that a transcribe target of a cut with exact segments uses timestamps.
        seed: base of the per-cut RNG.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        vocabs: Mapping[str, LabelVocab],
        frontend: LogMelFrontend | None,
        subsampling_factor: int = 4,
        decoder_tasks: Sequence[str] = TASKS,
        task_weights: Mapping[str, float] | None = None,
        timestamp_prob: float = 0.0,
        seed: int = 0,
    ) -> None:
        unknown = [t for t in decoder_tasks if t not in TASKS]
        if unknown:
            raise ValueError(f"decoder_tasks must be among {TASKS}, got {unknown}")
        subsampled_length(1, subsampling_factor)  # validates the factor
        self.tokenizer = tokenizer
        self.vocabs = dict(vocabs)
        self.frontend = frontend
        self.subsampling_factor = subsampling_factor
        self.decoder_tasks = tuple(decoder_tasks)
        self.task_weights = {t: float((task_weights or {}).get(t, 1.0)) for t in self.decoder_tasks}
        negative = {t: w for t, w in self.task_weights.items() if w < 0}
        if negative:
            raise ValueError(f"decoder task weights must be >= 0, got {negative}")
        if not 0.0 <= timestamp_prob <= 1.0:
            raise ValueError(f"timestamp_prob must be in [0, 1], got {timestamp_prob}")
        self.timestamp_prob = timestamp_prob
        self.seed = seed
        self.epoch = 0
        self.class_tasks = tuple(t for t in CLASS_TASKS if t in self.vocabs)
        self.frame_shift = frontend.frame_shift if frontend is not None else 0.01
        self.skipped: Counter[str] = Counter()  # reason -> number of cuts whose target was masked for it

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def cut_rng(self, cut_id: str) -> random.Random:
        return random.Random(f"{self.seed}:{self.epoch}:{cut_id}")

    def _skip(self, reason: str, cut_id: str) -> None:
        if reason not in self.skipped:
            logger.warning("collation: %s (first seen on cut %s); such targets are masked", reason, cut_id)
        self.skipped[reason] += 1

    # --- audio ----------------------------------------------------------------------------------
    @torch.no_grad()
    def features(self, cuts: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.frontend is not None:
            waves = [load_waveform(cut, self.frontend.sample_rate) for cut in cuts]
            padded, lengths = pad_waveforms(waves)
            return self.frontend(padded, lengths)
        mats = []
        for cut in cuts:
            if not cut.has_features:
                raise ValueError(f"cut {cut.id} has no precomputed features; pass a LogMelFrontend to the collator")
            mat = np.asarray(cut.load_features(), dtype=np.float32)
            if mat.ndim != 2 or mat.shape[1] != NUM_MEL_BINS:
                raise ValueError(f"cut {cut.id}: precomputed features have shape {mat.shape}, need (T, {NUM_MEL_BINS})")
            mats.append(torch.from_numpy(mat))
        lengths = torch.tensor([m.shape[0] for m in mats], dtype=torch.long)
        return torch.nn.utils.rnn.pad_sequence(mats, batch_first=True), lengths

    # --- batch ----------------------------------------------------------------------------------
    def __call__(self, cuts: Iterable[Any]) -> Batch:
        cuts = list(cuts)
        if not cuts:
            raise ValueError("cannot collate an empty batch of cuts")
        features, feature_lens = self.features(cuts)
        enc_lens = [int(subsampled_length(int(n), self.subsampling_factor)) for n in feature_lens]
        for cut, n_enc in zip(cuts, enc_lens, strict=True):
            if n_enc < 1:
                raise ValueError(
                    f"cut {cut.id} ({cut.duration:.3f} s) is too short for x{self.subsampling_factor} subsampling;"
                    " filter such cuts out (make_train_sampler's min_duration)"
                )
        views = [utterance_view(cut, self.class_tasks) for cut in cuts]

        ctc_rows, ctc_mask, slot_rows = self._ctc_and_slots(cuts, views, enc_lens)
        dec_inputs, dec_targets, dec_tasks = self._decoder(cuts, views)
        class_targets = {
            task: torch.tensor([self.vocabs[task].encode(v.labels.get(task)) for v in views], dtype=torch.long)
            for task in self.class_tasks
        }
        vad = torch.full((len(cuts), max(enc_lens)), IGNORE, dtype=torch.long)
        for row, (view, n_enc) in enumerate(zip(views, enc_lens, strict=True)):
            if view.exact_segments:
                vad[row, :n_enc] = vad_row(view, n_enc, self.subsampling_factor, self.frame_shift)

        ctc_targets = pad_rows(ctc_rows, self.tokenizer.blank_id)
        return Batch(
            features=features,
            feature_lens=feature_lens,
            ids=[cut.id for cut in cuts],
            ctc_targets=ctc_targets,
            ctc_target_lens=torch.tensor([len(r) for r in ctc_rows], dtype=torch.long),
            ctc_mask=torch.tensor(ctc_mask, dtype=torch.bool),
            decoder_input=pad_rows(dec_inputs, self.tokenizer.pad_id),
            decoder_target=pad_rows(dec_targets, IGNORE),
            decoder_task=dec_tasks,
            class_targets=class_targets,
            vad_targets=vad,
            slot_targets=None if slot_rows is None else pad_rows(slot_rows, IGNORE, ctc_targets.size(1)),
        )

    def _ctc_and_slots(
        self, cuts: Sequence[Any], views: Sequence[UtteranceView], enc_lens: Sequence[int]
    ) -> tuple[list[list[int]], list[bool], list[list[int]] | None]:
        slot_vocab = self.vocabs.get(SLOT_TASK)
        ctc_rows: list[list[int]] = []
        mask: list[bool] = []
        slot_rows: list[list[int]] = []
        for cut, view, n_enc in zip(cuts, views, enc_lens, strict=True):
            ids = self.tokenizer.encode(view.transcript) if view.transcript else []
            if ids and not ctc_feasible(ids, n_enc):
                self._skip("transcript has more CTC tokens than encoder frames", cut.id)
                ids = []
            ctc_rows.append(ids)
            mask.append(bool(ids))
            slots = None
            if ids and view.bio is not None and slot_vocab is not None:
                slots = slot_row(self.tokenizer, ids, view.bio, slot_vocab)
                if slots is None:
                    self._skip("slot tags do not line up with the transcript's words", cut.id)
            slot_rows.append(slots if slots is not None else [])
        return ctc_rows, mask, (slot_rows if slot_vocab is not None else None)

    def _decoder(
        self, cuts: Sequence[Any], views: Sequence[UtteranceView]
    ) -> tuple[list[list[int]], list[list[int]], list[str]]:
        inputs: list[list[int]] = []
        targets: list[list[int]] = []
        tasks: list[str] = []
        tok = self.tokenizer
        for cut, view in zip(cuts, views, strict=True):
            # A task weighted 0 is never drawn; a cut whose only tasks all weigh 0 gets no decoder target.
            options = [t for t in available_tasks(tok, view, self.decoder_tasks) if self.task_weights[t] > 0]
            if not options:
                if view.transcript and view.language not in tok.language_ids and self.decoder_tasks:
                    self._skip(f"language {view.language!r} has no tokenizer token", cut.id)
                inputs.append([])
                targets.append([])
                tasks.append("")
                continue
            rng = self.cut_rng(cut.id)
            task = rng.choices(options, weights=[self.task_weights[t] for t in options])[0]
            target_language = rng.choice(translation_targets(tok, view)) if task == "translate" else None
            timestamps = (
                task == "transcribe"
                and view.exact_segments
                and self.timestamp_prob > 0
                and rng.random() < self.timestamp_prob
                and cut.duration <= tok.max_timestamp
            )
            assert view.language is not None
            prompt = tok.prompt(task, view.language, target_language, timestamps=timestamps)
            answer = decoder_answer(tok, view, task, target_language, timestamps)
            dec_in, dec_tgt = decoder_rows(prompt, answer, tok.eot_id)
            inputs.append(dec_in)
            targets.append(dec_tgt)
            tasks.append(task)
        return inputs, targets, tasks
