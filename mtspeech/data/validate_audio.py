"""Audio checks of ``mtspeech data validate``: is every recording there, readable, and what the manifest says?

Three depths: ``none`` (manifests only), ``header`` (default: each file's header is read, so a missing,
unreadable or mis-described file is found in milliseconds) and ``full`` (every recording is decoded as
training would, wav.scp-style pipes included, catching truncated files and NaN samples).

A rate other than 16 kHz or several channels are warnings, because loading resamples and averages channels
(:func:`mtspeech.data.features.load_waveform`); a manifest that disagrees with its file is an error,
because no resampling or downmix can fix times and lengths that are wrong.
"""

from __future__ import annotations

import io
import shlex
import shutil
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtspeech.data.importers.common import ProgressFn, no_progress
from mtspeech.data.schema import SAMPLE_RATE
from mtspeech.data.validate_report import Severity, ValidationReport

if TYPE_CHECKING:
    from lhotse import Recording

AUDIO_CHECKS = ("none", "header", "full")
# Lengths closer than this are the same (rounding of durations in manifests).
LENGTH_SLACK_S = 0.01

Finding = tuple[str, str, str, Severity]  # (field, message, kind, severity)


@dataclass(frozen=True)
class AudioRef:
    """A recording to check and the manifest line that describes it."""

    recording: Recording
    file: str
    line: int | None


@dataclass(frozen=True)
class _Header:
    rate: int
    channels: int
    frames: int


def _header_of_file(path: Path) -> _Header | str:
    """The file's header, or why it cannot be read. soundfile first (fast), then Lhotse's backends (ffmpeg)."""
    import soundfile

    try:
        info = soundfile.info(str(path))
        return _Header(int(info.samplerate), int(info.channels), int(info.frames))
    except Exception as first:  # libsndfile cannot read it: maybe mp3/m4a/opus that ffmpeg can
        try:
            from lhotse.audio.backend import info as lhotse_info

            with warnings.catch_warnings():  # audioread's imports warn about deprecated stdlib modules
                warnings.simplefilter("ignore", DeprecationWarning)
                info = lhotse_info(path)
            return _Header(int(info.samplerate), int(info.channels), int(info.frames))
        except Exception:  # every backend failed: report soundfile's reason, the clearest
            return f"cannot read audio {path}: {str(first).splitlines()[0] if str(first) else type(first).__name__}"


def _check_source(recording: Recording, k: int, source: Any, tolerance: float) -> list[Finding]:
    field = f"sources[{k}]"
    if source.type == "file":
        path = Path(str(source.source))
        if not path.is_file():
            return [(field, f"audio file not found: {path}", "missing_audio", "error")]
        header = _header_of_file(path)
    elif source.type == "memory":
        import soundfile

        try:
            info = soundfile.info(io.BytesIO(source.source))
            header = _Header(int(info.samplerate), int(info.channels), int(info.frames))
        except Exception as err:  # not decodable bytes
            header = f"in-memory audio cannot be read: {err}"
    elif source.type == "command":
        words = shlex.split(str(source.source))
        program = words[0] if words else ""
        if not program or shutil.which(program) is None:
            return [(field, f"pipe program {program!r} is not installed or not on PATH", "missing_audio", "error")]
        return []  # a pipe's header needs the pipe to run: the "full" check does that
    else:
        return []  # url / shar: not checkable offline
    if isinstance(header, str):
        return [(field, header, "unreadable_audio", "error")]
    return _compare(recording, source, header, field, tolerance)


def _compare(recording: Recording, source: Any, header: _Header, field: str, tolerance: float) -> list[Finding]:
    """The manifest against the file's header."""
    findings: list[Finding] = []
    if header.rate != recording.sampling_rate:
        findings.append(
            (
                "sampling_rate",
                f"the file is {header.rate} Hz but the manifest says {recording.sampling_rate} Hz: every time and "
                "length is wrong and resampling cannot fix it; re-import the audio",
                "sampling_rate",
                "error",
            )
        )
        return findings
    if max(source.channels) >= header.channels:
        findings.append(
            (
                f"{field}.channels",
                f"the manifest reads channel(s) {source.channels} but the file has {header.channels}: "
                "downmixing cannot fix it; re-import the audio",
                "channels",
                "error",
            )
        )
    file_s, manifest_s = header.frames / header.rate, recording.duration
    if manifest_s - file_s > tolerance:
        findings.append(
            (
                "duration",
                f"the manifest says {manifest_s:.3f} s but the file holds {file_s:.3f} s: audio past {file_s:.3f} s "
                "cannot be read (Lhotse refuses)",
                "audio_length",
                "error",
            )
        )
    elif abs(manifest_s - file_s) > LENGTH_SLACK_S:
        what = "is padded on load" if manifest_s > file_s else "is never used"
        findings.append(
            (
                "duration",
                f"the manifest says {manifest_s:.3f} s but the file holds {file_s:.3f} s: the difference {what}",
                "audio_length",
                "warning",
            )
        )
    return findings


def _target_format(recording: Recording) -> list[Finding]:
    """Differences from the model's input that loading fixes (warnings)."""
    findings: list[Finding] = []
    rate = recording.sampling_rate
    if rate != SAMPLE_RATE:
        how = (
            f"upsampled to {SAMPLE_RATE} Hz on load (fixed; the band above {rate // 2} Hz stays empty)"
            if rate < SAMPLE_RATE
            else f"resampled to {SAMPLE_RATE} Hz on load (fixed; resampling once beforehand saves CPU every epoch)"
        )
        findings.append(("sampling_rate", f"{rate} Hz audio is {how}", "sampling_rate", "warning"))
    channels = len(recording.channel_ids)
    if channels > 1:
        message = f"{channels} channels are averaged to mono on load (fixed)"
        findings.append(("channels", message, "channels", "warning"))
    return findings


def _decode(recording: Recording) -> list[Finding]:
    """Decode the whole recording as training would; catches truncated files, failing pipes, NaN samples."""
    import numpy as np

    try:
        audio = recording.load_audio()
    except Exception as err:  # any decoder/pipe failure means training would crash on this recording
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        return [("sources", f"decoding the audio failed: {message}", "unreadable_audio", "error")]
    if not np.isfinite(audio).all():
        return [("sources", "the audio holds NaN or infinite samples", "unreadable_audio", "error")]
    return []


def check_recording(recording: Recording, mode: str) -> list[Finding]:
    """Every audio finding of one recording at depth ``mode`` (``header`` or ``full``)."""
    from lhotse.audio.utils import get_audio_duration_mismatch_tolerance

    tolerance = get_audio_duration_mismatch_tolerance()
    findings = [f for k, s in enumerate(recording.sources) for f in _check_source(recording, k, s, tolerance)]
    if mode == "full" and not any(severity == "error" for *_, severity in findings):
        findings += _decode(recording)
    return findings


def check_audio(
    refs: Sequence[AudioRef], report: ValidationReport, mode: str = "header", progress: ProgressFn = no_progress
) -> None:
    """Check each recording once, in a few threads (header reads wait on the disk, not the CPU).

    Format warnings that loading fixes (rate, channels) are reported once per manifest and kind, at the first
    recording, with a count: a whole 8 kHz corpus is one warning, not thousands."""
    if mode not in AUDIO_CHECKS:
        raise ValueError(f"audio check must be one of {AUDIO_CHECKS}, got {mode!r}")
    format_findings: dict[tuple[str, str, str], tuple[AudioRef, int]] = {}
    for ref in refs:
        for field, message, _, _ in _target_format(ref.recording):
            first, count = format_findings.get((ref.file, field, message), (ref, 0))
            format_findings[(ref.file, field, message)] = (first, count + 1)
    for (_, field, message), (first, count) in format_findings.items():
        more = f" (recording {first.recording.id!r}" + (f" and {count - 1} more)" if count > 1 else ")")
        report.add(first.file, first.line, field, message + more, kind=field, severity="warning")
    if mode == "none" or not refs:
        return
    stage = "decoding audio" if mode == "full" else "reading audio headers"
    progress(stage, 0, len(refs))
    with ThreadPoolExecutor(max_workers=8 if len(refs) >= 16 else 1) as pool:
        results = pool.map(lambda ref: check_recording(ref.recording, mode), refs)
        for done, (ref, findings) in enumerate(zip(refs, results, strict=True), start=1):
            for field, message, kind, severity in findings:
                message = f"recording {ref.recording.id!r}: {message}"
                report.add(ref.file, ref.line, field, message, kind=kind, severity=severity)
            progress(stage, done, len(refs))
