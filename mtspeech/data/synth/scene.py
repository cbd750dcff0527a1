"""VAD scenes: utterances laid out with silence around and between them, then noise mixed in.

A scene is ``lead silence, utt_1, gap, utt_2, ..., utt_n, trail silence``. The utterances are already
trimmed to their speech (voices.trim_silence), so the speech segments of the scene are known to the
sample: they become the supervisions, and VAD targets are exact.

Noise (one kind per recording; ``snr_db`` compares the speech's mean power over its segments with the
noise's power):

- ``white``, ``pink``, ``brown``: stationary noise over the whole recording (power spectrum flat, 1/f,
  1/f^2; pink and brown made by shaping white noise in the frequency domain, high-passed at 20 Hz so
  brown noise has no DC drift);
- ``babble``: several *other* utterances of the same split, looped at random offsets and summed, at a low
  level; it is background, not labelled speech (the VAD target is the foreground talker);
- ``tone`` and ``click``: non-speech events (beeps, dual-tone chirps; clicks and double clicks) placed
  mostly in the silences; their ``snr_db`` is measured over the samples where the event sounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mtspeech.data.schema import NOISE_TYPES, SAMPLE_RATE

STATIONARY = ("white", "pink", "brown")
EVENTS = ("tone", "click")
PEAK_LIMIT = 0.97  # a mix louder than this is scaled down as a whole (levels inside it keep their ratios)
HEADROOM = 0.6  # espeak-ng peaks near full scale at high amplitude; leave room for noise


@dataclass(frozen=True)
class NoiseSpec:
    type: str  # one of schema.NOISE_TYPES
    snr_db: float | None = None  # None for "none"

    def __post_init__(self) -> None:
        if self.type not in NOISE_TYPES:
            raise ValueError(f"noise type must be one of {NOISE_TYPES}, got {self.type!r}")
        if (self.type == "none") != (self.snr_db is None):
            raise ValueError(f"noise {self.type!r}: snr_db must be given exactly when there is noise")

    def to_dict(self) -> dict[str, object]:
        return {"type": self.type} if self.snr_db is None else {"type": self.type, "snr_db": float(self.snr_db)}


@dataclass(frozen=True)
class Layout:
    lead: float  # seconds of silence before the first utterance
    gaps: tuple[float, ...]  # seconds between consecutive utterances (len = utterances - 1)
    trail: float  # seconds after the last


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0


def _unit_power(x: np.ndarray) -> np.ndarray:
    power = _power(x)
    return x / np.sqrt(power) if power > 0 else x


def colored_noise(kind: str, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-power white, pink (1/f) or brown (1/f^2) noise."""
    white = rng.standard_normal(num_samples)
    if kind == "white":
        return _unit_power(white).astype(np.float32)
    exponent = {"pink": 0.5, "brown": 1.0}[kind]  # amplitude slope: power slope is twice this
    spectrum = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(num_samples, d=1.0 / SAMPLE_RATE)
    shape = np.zeros_like(freqs)
    audible = freqs >= 20.0
    shape[audible] = freqs[audible] ** -exponent
    return _unit_power(np.fft.irfft(spectrum * shape, n=num_samples)).astype(np.float32)


def babble(sources: Sequence[np.ndarray], num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-power babble: each source looped from a random offset over the whole recording, then summed."""
    mix = np.zeros(num_samples, dtype=np.float64)
    for source in sources:
        if source.size == 0:
            continue
        pause = np.zeros(int(rng.uniform(0.05, 0.4) * SAMPLE_RATE))  # talkers pause between sentences
        loop = np.concatenate([_unit_power(source), pause])
        reps = int(np.ceil((num_samples + loop.size) / loop.size))
        offset = int(rng.integers(0, loop.size))
        mix += np.tile(loop, reps)[offset : offset + num_samples]
    return _unit_power(mix).astype(np.float32)


def _event_start(length: int, total: int, silences: Sequence[tuple[int, int]], rng: np.random.Generator) -> int:
    """Where an event of ``length`` samples starts: inside a silence that can hold it (70 % of the time
    when one exists), otherwise anywhere, speech included (a beep over speech is still not speech)."""
    fitting = [(a, b) for a, b in silences if b - a > length]
    if fitting and rng.random() < 0.7:
        a, b = fitting[int(rng.integers(len(fitting)))]
        return int(rng.integers(a, b - length))
    return int(rng.integers(0, max(1, total - length)))


def _tone(rng: np.random.Generator) -> np.ndarray:
    duration = rng.uniform(0.08, 0.5)
    t = np.arange(int(duration * SAMPLE_RATE)) / SAMPLE_RATE
    freqs = [rng.uniform(300, 3000)] if rng.random() < 0.6 else list(rng.uniform(600, 1700, size=2))  # beep | DTMF
    wave = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f in freqs)
    ramp = min(int(0.01 * SAMPLE_RATE), t.size // 2)
    envelope = np.ones_like(t)
    envelope[:ramp] = np.linspace(0, 1, ramp)
    envelope[t.size - ramp :] = np.linspace(1, 0, ramp)
    return np.asarray(wave * envelope)


def _click(rng: np.random.Generator) -> np.ndarray:
    """A 1-8 ms decaying noise burst; a third of the time a double click 30-120 ms apart."""
    length = int(rng.uniform(0.001, 0.008) * SAMPLE_RATE)
    burst = rng.standard_normal(length) * np.exp(-np.linspace(0, 6, length))
    if rng.random() < 1 / 3:
        gap = np.zeros(int(rng.uniform(0.03, 0.12) * SAMPLE_RATE))
        burst = np.concatenate([burst, gap, 0.7 * burst])
    return burst


def events(
    kind: str, num_samples: int, silences: Sequence[tuple[int, int]], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Tones or clicks placed in the recording: (signal, mask of the samples where an event sounds),
    the signal scaled to unit power over that mask."""
    count = int(rng.integers(1, 4)) if kind == "tone" else int(rng.integers(3, 12))
    signal = np.zeros(num_samples, dtype=np.float64)
    for _ in range(count):
        event = _tone(rng) if kind == "tone" else _click(rng)
        event = event[:num_samples] * rng.uniform(0.5, 1.0)  # events of one recording vary in level
        start = _event_start(event.size, num_samples, silences, rng)
        signal[start : start + event.size] += event[: num_samples - start]
    active = np.abs(signal) > 1e-6
    power = _power(signal[active])
    return (signal / np.sqrt(power) if power > 0 else signal).astype(np.float32), active


def compose(
    utterances: Sequence[np.ndarray],
    layout: Layout,
    noise: NoiseSpec,
    rng: np.random.Generator,
    babble_sources: Sequence[np.ndarray] = (),
    gain_db: float = 0.0,
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Lay the utterances out, add the noise, and return (float32 audio, speech segments as
    [start, end) sample indices)."""
    if len(layout.gaps) != max(0, len(utterances) - 1):
        raise ValueError(f"{len(utterances)} utterances need {len(utterances) - 1} gaps, got {len(layout.gaps)}")
    pauses = [layout.lead, *layout.gaps]
    segments: list[tuple[int, int]] = []
    cursor = 0
    for pause, utterance in zip(pauses, utterances, strict=True):
        cursor += int(round(pause * SAMPLE_RATE))
        segments.append((cursor, cursor + utterance.size))
        cursor += utterance.size
    total = cursor + int(round(layout.trail * SAMPLE_RATE))
    speech = np.zeros(total, dtype=np.float64)
    for (start, end), utterance in zip(segments, utterances, strict=True):
        speech[start:end] = utterance
    speech_power = _power(np.concatenate([speech[a:b] for a, b in segments]))

    mix = speech.copy()
    if noise.snr_db is not None and speech_power > 0:
        noise_gain = np.sqrt(speech_power / 10 ** (noise.snr_db / 10))
        if noise.type in STATIONARY:
            mix += noise_gain * colored_noise(noise.type, total, rng)
        elif noise.type == "babble":
            if not babble_sources:
                raise ValueError("babble noise needs at least one source utterance")
            mix += noise_gain * babble(babble_sources, total, rng)
        else:
            silences = list(
                zip([0, *[end for _, end in segments]], [start for start, _ in segments] + [total], strict=True)
            )
            signal, _ = events(noise.type, total, silences, rng)
            mix += noise_gain * signal

    mix *= HEADROOM * 10 ** (gain_db / 20)
    peak = float(np.abs(mix).max()) if mix.size else 0.0
    if peak > PEAK_LIMIT:
        mix *= PEAK_LIMIT / peak
    return mix.astype(np.float32), segments
