"""``mtspeech corpus synth``: turn the sentence pool into a multilingual multi-task speech corpus.

Three stages, the last two in parallel worker processes:

1. plan (plan.py): sentences -> splits, speakers, accents, emotions, prosody, recordings, noise; all
   randomness is here, so the corpus depends on ``seed`` and ``size`` only, not on ``num_jobs``;
2. render: each utterance is spoken exactly once by espeak-ng (voices.py) and cached as 16-bit PCM;
3. mix: each recording is laid out with silences and noise (scene.py; babble reuses other cached
   utterances, which is why rendering is a stage of its own) and written as 16 kHz mono FLAC.

The main process then writes Lhotse manifests (one MonoCut per recording carrying all its supervisions),
``corpus.json`` and SUMMARY.md.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mtspeech import __version__
from mtspeech.data.corpus import INFO_FILE, TextRow, save_split, save_texts, write_info
from mtspeech.data.schema import (
    ACCENT,
    ACCENTS,
    BIO,
    CORPUS,
    EMOTION,
    EMOTIONS,
    EXACT_SEGMENTS,
    GENDERS,
    INTENT,
    LANGUAGES,
    NOISE,
    NOISE_TYPES,
    PROSODY_CONFLICT,
    SAMPLE_RATE,
    SENTENCE_ID,
    SLOTS,
    SLURP_ANNOTATION,
    SOURCE,
    SPLIT,
    SPLITS,
    TRANSLATION,
    TRANSLATION_TARGETS,
    spans_to_bio,
)
from mtspeech.data.synth.plan import SIZES, RecordingPlan, UtterancePlan, assign_splits, plan_corpus
from mtspeech.data.synth.scene import compose
from mtspeech.data.synth.sentence import Sentence
from mtspeech.data.synth.voices import (
    HELD_OUT_SPEAKERS,
    SPEAKERS,
    SPEAKERS_BY_LABEL,
    Espeak,
    Prosody,
    find_espeak,
    render,
)
from mtspeech.errors import UserError

CORPUS_NAME = "synth"
CACHE_DIR = ".synth-cache"  # rendered utterances, removed once the recordings are mixed
OWNED_ENTRIES = ("manifests", "audio", "plots", CACHE_DIR, INFO_FILE, "SUMMARY.md")  # what --overwrite replaces


def synthesize(
    out_dir: Path,
    size: str = "small",
    seed: int = 0,
    num_jobs: int | None = None,
    overwrite: bool = False,
    *,
    sentences: Sequence[Sentence] | None = None,
    show_progress: bool = True,
) -> Path:
    """Synthesise the corpus into ``out_dir`` and return it.

    ``sentences`` replaces the embedded sentence pool (tests, custom text); ``num_jobs`` defaults to
    every CPU core. Raises UserError for a bad size/jobs, a non-empty ``out_dir`` without ``overwrite``
    or a missing espeak-ng."""
    if size not in SIZES:
        raise UserError(f"--size must be one of {list(SIZES)}, got {size!r}")
    num_jobs = (os.cpu_count() or 1) if num_jobs is None else num_jobs
    if num_jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {num_jobs}")
    out_dir = Path(out_dir).expanduser().resolve()
    espeak = find_espeak()
    _prepare_out_dir(out_dir, overwrite)
    if sentences is None:
        from mtspeech.data.synth.pool import build_sentence_pool

        sentences = build_sentence_pool(seed)
    plans = plan_corpus(sentences, size, seed)
    cache = out_dir / CACHE_DIR
    cache.mkdir(parents=True)
    utterances = [u for plan in plans for u in plan.utterances]
    render_jobs = [
        (espeak, u.utt_id, u.language_voice, u.speaker, u.sentence.text, u.prosody, cache) for u in utterances
    ]
    mix_jobs = [(plan, out_dir, cache) for plan in plans]
    with _Runner(num_jobs, show_progress) as runner:
        runner.run("speaking (espeak-ng)", _render_job, render_jobs)
        mixed = dict(runner.run("mixing scenes", _mix_job, mix_jobs))
    shutil.rmtree(cache)

    split_stats = {}
    for split in SPLITS:
        split_plans = [p for p in plans if p.split == split]
        split_stats[split] = _write_manifests(out_dir, split, split_plans, mixed)
    unspoken = unspoken_train_rows(sentences, plans, seed)
    save_texts(out_dir, "train", unspoken)
    info = _corpus_info(size, seed, espeak, plans, split_stats)
    info["text_only"] = {"train": len(unspoken)}
    write_info(out_dir, info)

    from mtspeech.data.synth.summary import write_summary

    write_summary(out_dir)
    return out_dir


def unspoken_train_rows(sentences: Sequence[Sentence], plans: Sequence[RecordingPlan], seed: int) -> list[TextRow]:
    """The train-split sentences of the pool that no recording speaks, once per (language, text).

    The audio budget of a corpus size speaks only part of its split's sentences; the rest is still good text for
    the n-gram LM (``mtspeech lm``) and for heads that read transcripts (``intent_text``). Only the train split's:
    valid and test sentences must stay unseen, and the split assignment keeps every text in one split."""
    ordered = sorted(sentences, key=lambda s: s.sentence_id)  # as plan_corpus assigns them
    split_of = assign_splits(ordered, seed)
    seen = {(u.sentence.language, u.sentence.text) for plan in plans for u in plan.utterances}
    rows = []
    for s in ordered:
        if s.language not in LANGUAGES or split_of[s.sentence_id] != "train" or (s.language, s.text) in seen:
            continue
        seen.add((s.language, s.text))
        rows.append(TextRow(id=s.sentence_id, language=s.language, text=s.text, custom=sentence_labels(s)))
    return rows


def _prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError("--out exists and is not a directory", path=out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise UserError("--out is not empty; pass --overwrite to replace the corpus in it", path=out_dir)
        if not any((out_dir / name).exists() for name in (INFO_FILE, "manifests", CACHE_DIR)):
            raise UserError(
                "--out is not empty and holds no corpus (no corpus.json or manifests/); refusing to delete "
                "anything in it even with --overwrite: choose an empty or new directory",
                path=out_dir,
            )
        for name in OWNED_ENTRIES:
            path = out_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


class _Runner:
    """Runs jobs in a process pool (inline for one job) behind a rich progress bar."""

    def __init__(self, num_jobs: int, show_progress: bool) -> None:
        self.num_jobs, self.show_progress = num_jobs, show_progress

    def __enter__(self) -> _Runner:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        # The pool is forked before the progress bar starts its refresh thread.
        self.pool = multiprocessing.Pool(self.num_jobs) if self.num_jobs > 1 else None
        columns = (TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        self.progress = Progress(*columns, console=Console(stderr=True), disable=not self.show_progress)
        self.progress.start()
        return self

    def run(self, description: str, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> list[Any]:
        task = self.progress.add_task(description, total=len(jobs))
        results: Iterable[Any]
        if self.pool is None:
            results = map(fn, jobs)
        else:
            results = self.pool.imap(fn, jobs, chunksize=max(1, min(32, len(jobs) // (8 * self.num_jobs))))
        collected = []
        for result in results:
            collected.append(result)
            self.progress.advance(task)
        return collected

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()
        if self.pool is not None:
            if exc[0] is None:
                self.pool.close()
            else:
                self.pool.terminate()
            self.pool.join()


def _render_job(job: tuple[Espeak, str, str, str, str, Prosody, Path]) -> None:
    espeak, utt_id, language_voice, speaker, text, prosody, cache = job
    audio = render(espeak, language_voice, SPEAKERS_BY_LABEL[speaker], text, prosody)
    np.save(cache / f"{utt_id}.npy", (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16))


def _load_render(cache: Path, utt_id: str) -> np.ndarray:
    return np.load(cache / f"{utt_id}.npy").astype(np.float32) / 32767


def _audio_path(out_dir: Path, plan: RecordingPlan) -> Path:
    return out_dir / "audio" / plan.split / f"{plan.recording_id}.flac"


def _mix_job(job: tuple[RecordingPlan, Path, Path]) -> tuple[str, tuple[int, list[tuple[int, int]]]]:
    import soundfile as sf

    plan, out_dir, cache = job
    audio, segments = compose(
        [_load_render(cache, u.utt_id) for u in plan.utterances],
        plan.layout,
        plan.noise,
        np.random.default_rng(plan.mix_seed),
        babble_sources=[_load_render(cache, i) for i in plan.babble_ids],
        gain_db=plan.gain_db,
    )
    path = _audio_path(out_dir, plan)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return plan.recording_id, (audio.size, segments)


def supervision_custom(u: UtterancePlan) -> dict[str, Any]:
    """The task labels of one utterance, keyed per schema.py (absent key = no label)."""
    speaking = {EMOTION: u.emotion, PROSODY_CONFLICT: u.prosody_conflict, SENTENCE_ID: u.sentence.sentence_id}
    accent = {ACCENT: u.accent} if u.accent is not None else {}
    return speaking | sentence_labels(u.sentence) | accent


def sentence_labels(s: Sentence) -> dict[str, Any]:
    """The labels a sentence's words carry whoever speaks them (source, intent, slots, translations)."""
    custom: dict[str, Any] = {SOURCE: s.source}
    if s.intent is not None:
        custom[INTENT] = s.intent
    if s.intent is not None or s.slots:
        custom[SLOTS] = [span.to_dict() for span in s.slots]
        custom[BIO] = spans_to_bio(len(s.text.split()), list(s.slots))
    if s.translations:
        custom[TRANSLATION] = dict(sorted(s.translations.items()))
    if s.slurp_annotation is not None:
        custom[SLURP_ANNOTATION] = s.slurp_annotation
    return custom


def _write_manifests(
    out_dir: Path, split: str, plans: list[RecordingPlan], mixed: dict[str, tuple[int, list[tuple[int, int]]]]
) -> dict[str, float]:
    from lhotse import AudioSource, CutSet, MonoCut, Recording, RecordingSet, SupervisionSegment, SupervisionSet

    recordings, supervisions, cuts = [], [], []
    speech_samples = 0
    for plan in plans:
        num_samples, segments = mixed[plan.recording_id]
        recording = Recording(
            id=plan.recording_id,
            sources=[AudioSource(type="file", channels=[0], source=str(_audio_path(out_dir, plan)))],
            sampling_rate=SAMPLE_RATE,
            num_samples=num_samples,
            duration=num_samples / SAMPLE_RATE,
        )
        segs = [
            SupervisionSegment(
                id=u.utt_id,
                recording_id=plan.recording_id,
                start=start / SAMPLE_RATE,
                duration=(end - start) / SAMPLE_RATE,
                channel=0,
                text=u.sentence.text,
                language=u.sentence.language,
                speaker=u.speaker,
                gender=u.gender,
                custom=supervision_custom(u),
            )
            for u, (start, end) in zip(plan.utterances, segments, strict=True)
        ]
        speech_samples += sum(end - start for start, end in segments)
        cut_custom = {EXACT_SEGMENTS: True, NOISE: plan.noise.to_dict(), SPLIT: split, CORPUS: CORPUS_NAME}
        cut = MonoCut(
            id=plan.recording_id,
            start=0.0,
            duration=recording.duration,
            channel=0,
            recording=recording,
            supervisions=segs,
            custom=cut_custom,
        )
        recordings.append(recording)
        supervisions.extend(segs)
        cuts.append(cut)
    save_split(
        out_dir,
        split,
        RecordingSet.from_recordings(recordings),
        SupervisionSet.from_segments(supervisions),
        CutSet.from_cuts(cuts),
    )
    return {
        "recordings": len(recordings),
        "utterances": len(supervisions),
        "hours": round(sum(r.duration for r in recordings) / 3600, 4),
        "speech_hours": round(speech_samples / SAMPLE_RATE / 3600, 4),
    }


def _corpus_info(
    size: str, seed: int, espeak: Espeak, plans: list[RecordingPlan], split_stats: dict[str, dict[str, float]]
) -> dict[str, Any]:
    utterances = [u for p in plans for u in p.utterances]
    return {
        "name": CORPUS_NAME,
        "origin": f"synthesised by mtspeech {__version__} with {espeak.version}",
        "version": __version__,
        "size": size,
        "seed": seed,
        "sample_rate": SAMPLE_RATE,
        "exact_segments": True,
        "splits": split_stats,
        "speakers_held_out": list(HELD_OUT_SPEAKERS),
        "labels": {
            "language": list(LANGUAGES),
            "gender": list(GENDERS),
            "emotion": list(EMOTIONS),
            "accent": list(ACCENTS),
            "intent": sorted({u.sentence.intent for u in utterances if u.sentence.intent}),
            "speaker": [s.label for s in SPEAKERS],
            "noise": list(NOISE_TYPES),
            "translation": list(TRANSLATION_TARGETS),
        },
        "attribution": "SLURP (Bastianelli et al., 2020), CC BY 4.0 (English SLU text)",
    }
