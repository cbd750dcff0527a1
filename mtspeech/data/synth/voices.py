"""Speech from espeak-ng: voices, speakers, emotional prosody and one rendering call per utterance.

Languages and accents
    English is spoken with seven espeak-ng accent voices (``schema.ACCENTS``; the voice name is the
    accent label); French, German, Spanish and Italian with ``fr-fr``, ``de``, ``es`` and ``it``.
    Voices are passed to espeak-ng by their *file* (``gmw/en-US``), resolved from ``espeak-ng --voices``:
    espeak-ng 1.51 silently drops the ``+variant`` of some names given as language codes
    (``en-gb+f3`` and ``fr-fr+f3`` sound exactly like ``en-gb`` and ``fr-fr``), never of file names.

Speakers
    A speaker is an espeak-ng voice variant (``+m3``, ``+f2``, ``+Annie``...: pitch, formants, roughness),
    the same variant across languages. :data:`HELD_OUT_SPEAKERS` never speak in ``train``.

Emotion -> prosody (centre of each class; every utterance draws Gaussian jitter around it, sd in the
last row, so neighbouring classes overlap the way real speakers do):

    ========  ===========  ===================  ============  =============  ==============  ===========
    emotion   pitch ``-p`` pitch range (SSML)   rate ``-s``   amplitude      word gap ``-g`` emphasis
    ========  ===========  ===================  ============  =============  ==============  ===========
    neutral   50           +0 %                 170 wpm       100            0               none
    happy     68           +70 %                188 wpm       118            0               none
    sad       34           -55 %                128 wpm       68             4 (40 ms)       none
    angry     44           +25 %                205 wpm       155            1 (10 ms)       strong, 60 %
    jitter sd 6            15 points            6 %           10             1               --
    ========  ===========  ===================  ============  =============  ==============  ===========

Strong emphasis lengthens the stressed syllables by about a quarter, so emphatic angry utterances last
about as long as neutral ones; the others are about 10 % shorter.

``-p``, ``-s``, ``-a`` and ``-g`` are espeak-ng options; the pitch range goes through
``<prosody range="...">`` and emphasis through ``<emphasis level="strong">`` with ``-m`` (SSML), both of
which espeak-ng honours (checked by comparing F0 statistics and output bytes with and without them).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from dataclasses import dataclass
from math import gcd
from xml.sax.saxutils import escape

import numpy as np
from scipy.ndimage import uniform_filter1d
from scipy.signal import resample_poly

from mtspeech.data.schema import ACCENTS, EMOTIONS, LANGUAGES, SAMPLE_RATE
from mtspeech.errors import UserError

INSTALL_HINT = "install espeak-ng: apt-get install espeak-ng"

# espeak-ng voice (its "Language" column) per language; English has one per accent.
LANGUAGE_VOICES: dict[str, tuple[str, ...]] = {
    "en": ACCENTS,
    "fr": ("fr-fr",),
    "de": ("de",),
    "es": ("es",),
    "it": ("it",),
}
assert set(LANGUAGE_VOICES) == set(LANGUAGES)


@dataclass(frozen=True)
class Speaker:
    label: str  # supervision.speaker
    variant: str  # espeak-ng variant file name under voices/!v
    gender: str  # "m" | "f"


SPEAKERS: tuple[Speaker, ...] = (
    *(Speaker(f"m{i}", f"m{i}", "m") for i in range(1, 8)),
    Speaker("andy", "Andy", "m"),
    *(Speaker(f"f{i}", f"f{i}", "f") for i in range(1, 6)),
    Speaker("annie", "Annie", "f"),
    Speaker("linda", "linda", "f"),
    Speaker("steph", "steph", "f"),
)
# Two men and two women who speak only in valid/test, so those splits measure unseen-speaker robustness.
HELD_OUT_SPEAKERS: tuple[str, ...] = ("m4", "m7", "f2", "linda")
SPEAKERS_BY_LABEL = {s.label: s for s in SPEAKERS}


@dataclass(frozen=True)
class Prosody:
    pitch: int  # espeak -p, 0..99
    pitch_range: int  # SSML <prosody range="+N%">, percent change of the voice's pitch range
    rate: int  # espeak -s, words per minute
    amplitude: int  # espeak -a, 0..200
    word_gap: int  # espeak -g, units of 10 ms
    emphasis: bool  # wrap in <emphasis level="strong">

    def ssml(self, text: str) -> str:
        body = escape(text)
        if self.emphasis:
            body = f'<emphasis level="strong">{body}</emphasis>'
        return f'<speak><prosody range="{self.pitch_range:+d}%">{body}</prosody></speak>'

    def options(self) -> list[str]:
        return ["-p", str(self.pitch), "-s", str(self.rate), "-a", str(self.amplitude), "-g", str(self.word_gap)]


# Class centres; keep in sync with the table in the module docstring and docs/corpus.md.
EMOTION_PROSODY: dict[str, Prosody] = {
    "neutral": Prosody(pitch=50, pitch_range=0, rate=170, amplitude=100, word_gap=0, emphasis=False),
    "happy": Prosody(pitch=68, pitch_range=70, rate=188, amplitude=118, word_gap=0, emphasis=False),
    "sad": Prosody(pitch=34, pitch_range=-55, rate=128, amplitude=68, word_gap=4, emphasis=False),
    "angry": Prosody(pitch=44, pitch_range=25, rate=205, amplitude=155, word_gap=1, emphasis=True),
}
assert set(EMOTION_PROSODY) == set(EMOTIONS)
PITCH_SD, RANGE_SD, RATE_SD_FRACTION, AMPLITUDE_SD, WORD_GAP_SD = 6.0, 15.0, 0.06, 10.0, 1.0
ANGRY_EMPHASIS_PROBABILITY = 0.6


def sample_prosody(emotion: str, rng: np.random.Generator) -> Prosody:
    """The emotion's prosody with per-utterance Gaussian jitter, clipped to what espeak-ng accepts."""
    centre = EMOTION_PROSODY[emotion]

    def jitter(value: float, sd: float, low: float, high: float) -> int:
        return int(round(float(np.clip(value + rng.normal(0.0, sd), low, high))))

    return Prosody(
        pitch=jitter(centre.pitch, PITCH_SD, 5, 95),
        pitch_range=jitter(centre.pitch_range, RANGE_SD, -90, 100),
        rate=jitter(centre.rate, centre.rate * RATE_SD_FRACTION, 90, 260),
        amplitude=jitter(centre.amplitude, AMPLITUDE_SD, 30, 175),
        word_gap=jitter(centre.word_gap, WORD_GAP_SD, 0, 10),
        emphasis=centre.emphasis and bool(rng.random() < ANGRY_EMPHASIS_PROBABILITY),
    )


@dataclass(frozen=True)
class Espeak:
    """A checked espeak-ng installation: the executable and the voice files mtspeech speaks with."""

    executable: str
    version: str
    voice_files: dict[str, str]  # espeak language voice ("en-gb-scotland") -> voice file ("gmw/en-GB-scotland")

    def voice(self, language_voice: str, speaker: Speaker) -> str:
        """The ``-v`` argument for a language voice spoken by ``speaker``."""
        return f"{self.voice_files[language_voice]}+{speaker.variant}"


def _run(args: list[str]) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as err:
        raise UserError(f"`{' '.join(args)}` failed ({err}); {INSTALL_HINT}") from None
    return done.stdout


@functools.cache
def find_espeak() -> Espeak:
    """Locate espeak-ng and resolve every voice and variant the corpus needs, or raise a UserError."""
    executable = shutil.which("espeak-ng")
    if executable is None:
        raise UserError(f"espeak-ng was not found on PATH; {INSTALL_HINT}")
    version = _run([executable, "--version"]).split("Data at")[0].strip()
    voice_files: dict[str, str] = {}
    for line in _run([executable, "--voices"]).splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5:  # Pty Language Age/Gender VoiceName File [Other Languages]
            voice_files.setdefault(cols[1].lower(), cols[4])
    variants = {line.split()[4].removeprefix("!v/") for line in _run([executable, "--voices=variant"]).splitlines()[1:]}
    wanted = [v for voices in LANGUAGE_VOICES.values() for v in voices]
    missing = [v for v in wanted if v not in voice_files] + [s.variant for s in SPEAKERS if s.variant not in variants]
    if missing:
        raise UserError(f"{version} lacks the voices/variants {missing}; {INSTALL_HINT} (1.51 or newer)")
    return Espeak(executable, version, {v: voice_files[v] for v in wanted})


def parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Mono 16-bit PCM from a WAV byte string; espeak-ng's ``--stdout`` header carries a placeholder
    data size (it streams), so the samples are simply everything after the ``data`` chunk header."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("espeak-ng did not return a WAV stream")
    fmt = data.find(b"fmt ")
    channels = int.from_bytes(data[fmt + 10 : fmt + 12], "little")
    sample_rate = int.from_bytes(data[fmt + 12 : fmt + 16], "little")
    bits = int.from_bytes(data[fmt + 22 : fmt + 24], "little")
    if channels != 1 or bits != 16:
        raise ValueError(f"expected mono 16-bit PCM from espeak-ng, got {channels} channels, {bits} bits")
    start = data.find(b"data", fmt) + 8
    payload = data[start : start + (len(data) - start) // 2 * 2]
    return np.frombuffer(payload, dtype="<i2").astype(np.float32) / 32768.0, sample_rate


def trim_silence(audio: np.ndarray, sample_rate: int, threshold_db: float = -40.0) -> np.ndarray:
    """Cut espeak-ng's leading/trailing silence and decaying tail: keep from the first to the last
    5 ms frame whose RMS is within ``threshold_db`` of the loudest, with 3 ms fades so the cut is silent."""
    window = max(1, int(0.005 * sample_rate))
    envelope = np.sqrt(np.maximum(uniform_filter1d(audio.astype(np.float64) ** 2, window), 0.0))
    loud = np.flatnonzero(envelope > envelope.max() * 10 ** (threshold_db / 20))
    if loud.size == 0:
        return audio[:0]
    trimmed = audio[loud[0] : loud[-1] + 1].copy()
    fade = min(int(0.003 * sample_rate), trimmed.size // 2)
    if fade > 0:
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        trimmed[:fade] *= ramp
        trimmed[-fade:] *= ramp[::-1]
    return trimmed


def render(espeak: Espeak, language_voice: str, speaker: Speaker, text: str, prosody: Prosody) -> np.ndarray:
    """Speak ``text`` once: float32 mono at 16 kHz, trimmed to the speech itself.

    espeak-ng writes 22.05 kHz WAV to stdout (no temp file); ``resample_poly`` brings it to 16 kHz."""
    args = [espeak.executable, "-m", "-v", espeak.voice(language_voice, speaker), *prosody.options()]
    done = subprocess.run([*args, "--stdout", prosody.ssml(text)], capture_output=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"espeak-ng failed on {text!r}: {done.stderr.decode(errors='replace').strip()}")
    audio, sample_rate = parse_wav(done.stdout)
    if sample_rate != SAMPLE_RATE:
        common = gcd(sample_rate, SAMPLE_RATE)
        audio = resample_poly(audio, SAMPLE_RATE // common, sample_rate // common).astype(np.float32)
    speech = trim_silence(audio, SAMPLE_RATE)
    if speech.size < int(0.1 * SAMPLE_RATE):
        raise RuntimeError(f"espeak-ng produced no speech for {text!r} with voice {language_voice}")
    return speech
