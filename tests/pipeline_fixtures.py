"""Small on-disk Lhotse cuts with every kind of label (and every kind of missing label) for the pipeline tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from lhotse import CutSet, MonoCut, MultiCut, Recording, SupervisionSegment

SR = 16000

# (cut id, duration s, sampling rate, channels, exact_segments, supervisions as (start, dur, fields))
FIXTURE_SPEC: list[tuple[str, float, int, int, bool, list[tuple[float, float, dict[str, Any]]]]] = [
    (
        "en-alarm",
        2.0,
        SR,
        1,
        True,
        [
            (
                0.3,
                1.2,
                dict(
                    text="wake me up at eight o'clock",
                    language="en",
                    speaker="f3",
                    gender="f",
                    custom={
                        "intent": "alarm_set",
                        "slots": [{"type": "time", "start": 4, "end": 5, "value": "eight"}],
                        "slurp_annotation": "wake me up at [time : eight] o'clock",
                        "translation": {"fr": "réveille-moi à huit heures", "de": "weck mich um acht uhr"},
                        "emotion": "neutral",
                        "accent": "en-gb",
                    },
                ),
            )
        ],
    ),
    (
        "en-weather",
        1.6,
        SR,
        1,
        True,
        [
            (
                0.2,
                1.2,
                dict(
                    text="what's the weather like in paris",
                    language="en",
                    speaker="m1",
                    gender="m",
                    custom={
                        "intent": "weather_query",
                        "bio": ["O", "O", "O", "O", "O", "B-place_name"],
                        "emotion": "happy",
                    },
                ),
            )
        ],
    ),
    (
        "fr-plain",
        1.2,
        SR,
        1,
        False,
        [(0.0, 1.2, dict(text="bonjour à tous les élèves", language="fr", speaker="m1", custom={"emotion": "sad"}))],
    ),
    (
        "fr-two-segments",
        2.4,
        SR,
        1,
        True,
        [
            (0.2, 0.6, dict(text="il fait beau", language="fr", speaker="f3", gender="f")),
            (1.2, 0.8, dict(text="aujourd'hui à paris", language="fr", speaker="f3", gender="f")),
        ],
    ),
    ("noise-only", 1.0, SR, 1, True, []),
    ("no-text", 1.4, SR, 1, False, [(0.1, 1.0, dict(text=None, language=None))]),
    (
        "mixed-languages",
        2.2,
        SR,
        1,
        True,
        [
            (0.1, 0.8, dict(text="good morning", language="en", speaker="m1")),
            (1.1, 0.9, dict(text="bonjour", language="fr", speaker="m1")),
        ],
    ),
    (
        "en-stereo-22k",
        1.5,
        22050,
        2,
        True,
        [
            (
                0.25,
                1.0,
                dict(
                    text="turn the lights off",
                    language="en",
                    speaker="f2",
                    gender="f",
                    custom={"translation": {"es": "apaga las luces"}, "accent": "en-gb-scotland"},
                ),
            )
        ],
    ),
]


def _write_audio(path: Path, duration: float, sr: int, channels: int, speech: list[tuple[float, float]], seed: int):
    rng = np.random.default_rng(seed)
    n = int(round(duration * sr))
    t = np.arange(n) / sr
    wave = 0.003 * rng.standard_normal(n)
    for start, dur in speech:
        inside = (t >= start) & (t < start + dur)
        wave[inside] += 0.3 * np.sin(2 * np.pi * (180 + 40 * seed) * t[inside]) * np.sin(np.pi * 3 * t[inside]) ** 2
    data = np.stack([wave, 0.5 * wave], axis=1) if channels == 2 else wave
    sf.write(path, data.astype(np.float32), sr, subtype="PCM_16")


def make_fixture_cuts(directory: Path) -> CutSet:
    """Eight cuts (two languages, 16 kHz mono + one 22.05 kHz stereo) written under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    cuts = []
    for seed, (cut_id, duration, sr, channels, exact, sups) in enumerate(FIXTURE_SPEC):
        path = directory / f"{cut_id}.wav"
        _write_audio(path, duration, sr, channels, [(s, d) for s, d, _ in sups], seed)
        recording = Recording.from_file(path, recording_id=cut_id)
        segments = [
            SupervisionSegment(
                id=f"{cut_id}-{i}",
                recording_id=cut_id,
                start=start,
                duration=dur,
                channel=list(range(channels)) if channels > 1 else 0,
                **fields,
            )
            for i, (start, dur, fields) in enumerate(sups)
        ]
        cut_type = MultiCut if channels > 1 else MonoCut
        cuts.append(
            cut_type(
                id=cut_id,
                start=0.0,
                duration=recording.duration,
                channel=list(range(channels)) if channels > 1 else 0,
                recording=recording,
                supervisions=segments,
                custom={"exact_segments": exact, "split": "train", "corpus": "fixture"},
            )
        )
    return CutSet.from_cuts(cuts)


def make_duration_cuts(path: Path, name: str, num_cuts: int, seed: int, low: float = 0.5, high: float = 12.0) -> CutSet:
    """``num_cuts`` audio-less cuts of corpus ``name`` with durations ~ U[low, high], written to ``path`` and
    reopened lazily (as training reads manifests); for sampler tests, which never load audio."""
    from lhotse.testing.dummies import dummy_cut

    rng = np.random.default_rng(seed)
    cuts = []
    for i in range(num_cuts):
        cut = dummy_cut(i, duration=round(float(rng.uniform(low, high)), 3))
        cut.id = f"{name}-{i:05d}"
        cut.custom = {"corpus": name, "split": "train"}
        cuts.append(cut)
    CutSet.from_cuts(cuts).to_file(path)
    return CutSet.from_jsonl_lazy(path)
