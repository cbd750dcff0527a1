"""Turn whatever a client uploads into 16 kHz mono float32, or a clear 4xx error saying why not.

Decoding goes through soundfile (libsndfile: WAV, FLAC, OGG/Vorbis/Opus, MP3 on libsndfile >= 1.1) and falls
back to the ``ffmpeg`` binary for anything libsndfile cannot read, so one code path serves the API, the
``mtspeech analyze`` command and the tests.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass
from math import gcd

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

SAMPLE_RATE = 16000

# Content types we accept as audio; application/octet-stream (and a missing type) means "sniff the bytes".
AUDIO_TYPES = {
    "audio/wav",
    "audio/x-wav",
    "audio/wave",
    "audio/vnd.wave",
    "audio/flac",
    "audio/x-flac",
    "audio/ogg",
    "audio/opus",
    "audio/mpeg",
    "audio/mp3",
    "audio/webm",
    "video/webm",  # browsers' MediaRecorder labels microphone recordings this way
    "audio/mp4",
    "audio/x-m4a",
}
SNIFFED_TYPES = {"", "application/octet-stream", "multipart/form-data"}


class AudioError(Exception):
    """Bad audio input with the HTTP status it deserves (413 too large, 415 wrong type, 422 undecodable/empty)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class AudioLimits:
    max_bytes: int = 25 * 1024 * 1024
    max_seconds: float = 120.0
    min_seconds: float = 0.1  # the encoder needs ~70 ms to produce one frame; shorter clips cannot be analysed


@dataclass(frozen=True)
class DecodedAudio:
    samples: np.ndarray  # (n,) float32 at SAMPLE_RATE, mono
    source_rate: int
    source_channels: int

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def sniff_format(data: bytes) -> str | None:
    """The container named by the first bytes, or None when they match nothing we know."""
    head = data[:16]
    if head[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    if data[4:8] == b"ftyp":
        return "mp4"
    return None


def check_content_type(content_type: str | None) -> None:
    """415 for a declared type that is not audio (text, images, JSON...)."""
    base = (content_type or "").split(";")[0].strip().lower()
    if base in SNIFFED_TYPES or base in AUDIO_TYPES:
        return
    raise AudioError(
        415,
        f"unsupported content type {base!r}; send audio (wav, flac, ogg, mp3, webm) as the request body or as a "
        "multipart file field named 'file'",
    )


def decode_audio(data: bytes, content_type: str | None = None, limits: AudioLimits = AudioLimits()) -> DecodedAudio:
    """Validate and decode one upload; every failure is an :class:`AudioError` with a message for the caller."""
    check_content_type(content_type)
    if not data:
        raise AudioError(422, "the audio is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise AudioError(413, f"the audio is {len(data)} bytes; the limit is {limits.max_bytes} bytes")
    kind = sniff_format(data)
    if kind is None and (content_type or "").split(";")[0].strip().lower() in SNIFFED_TYPES:
        raise AudioError(415, "the body is not a recognised audio file (expected wav, flac, ogg, mp3, webm or mp4)")
    samples, rate = _read(data, kind)
    if samples.size == 0:
        raise AudioError(422, "the audio decodes to zero samples")
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    duration = samples.shape[0] / rate
    if duration > limits.max_seconds:
        raise AudioError(413, f"the audio lasts {duration:.1f} s; the limit is {limits.max_seconds:g} s")
    if duration < limits.min_seconds:
        raise AudioError(422, f"the audio lasts {duration:.3f} s; at least {limits.min_seconds:g} s is needed")
    mono = samples if samples.ndim == 1 else samples.mean(axis=1)
    if not np.all(np.isfinite(mono)):
        raise AudioError(422, "the audio contains NaN or infinite samples")
    return DecodedAudio(resample(mono.astype(np.float32), rate), rate, channels)


def resample(samples: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling (scipy) to ``target``; a no-op at the target rate."""
    if rate == target:
        return samples.astype(np.float32, copy=False)
    g = gcd(rate, target)
    return resample_poly(samples, target // g, rate // g).astype(np.float32)


def _read(data: bytes, kind: str | None) -> tuple[np.ndarray, int]:
    if kind in (None, "wav", "flac", "ogg", "mp3"):
        try:
            samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
            return samples, int(rate)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
            pass  # libsndfile could not read it: give ffmpeg a try before giving up
    return _read_with_ffmpeg(data)


def _read_with_ffmpeg(data: bytes) -> tuple[np.ndarray, int]:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AudioError(422, "the audio could not be decoded (and ffmpeg, which reads more formats, is not installed)")
    cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", "pipe:0"]
    cmd += ["-f", "f32le", "-ac", "1", "-ar", str(SAMPLE_RATE), "pipe:1"]
    try:
        proc = subprocess.run(cmd, input=data, capture_output=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        raise AudioError(422, "decoding the audio took too long (over 60 s)") from None
    if proc.returncode != 0:
        reason = proc.stderr.decode(errors="replace").strip().splitlines()
        raise AudioError(422, f"the audio could not be decoded: {reason[-1] if reason else 'unknown format'}")
    samples = np.frombuffer(proc.stdout, dtype=np.float32).copy()
    return samples, SAMPLE_RATE
