"""Import a Kaldi data directory: ``wav.scp`` + ``text`` (+ ``utt2spk``, ``segments``, ``utt2lang``,
``utt2gender``, ``spk2gender``).

Without ``segments`` every wav.scp entry is one utterance; with it, wav.scp entries are recordings and the
segments are the utterances. ``wav.scp`` entries ending in ``|`` are shell pipes (``sox ... - |``,
``ffmpeg ... - |``): they become Lhotse command-backed audio sources, run once here to read rate and length.

lhotse.kaldi.load_kaldi_data_dir is not used: it needs one sampling rate for the whole directory, asserts
instead of naming the bad line, and can only measure pipes with kaldi_native_io.
"""

from __future__ import annotations

import io
import math
import re
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mtspeech.data.importers.common import (
    END_TOLERANCE_S,
    ImportSummary,
    ProblemLog,
    ProgressFn,
    check_output,
    cut_custom,
    iter_lines,
    make_cut,
    no_progress,
    probe_recordings,
    recording_channel,
    resolve_audio_path,
    write_corpus,
)
from mtspeech.data.validate_labels import normalize_gender, normalize_language
from mtspeech.errors import UserError

if TYPE_CHECKING:
    from lhotse import Recording

PIPE_TIMEOUT_S = 300
_ARK_OFFSET = re.compile(r"\.ark:\d+$")


@dataclass(frozen=True)
class _Entry:
    line: int
    value: str


@dataclass(frozen=True)
class _Segment:
    line: int
    recording_id: str
    start: float
    end: float | None  # None: Kaldi's -1, "until the end of the recording"


def _read_table(path: Path, log: ProblemLog, *, allow_empty: bool = False) -> dict[str, _Entry]:
    """``key value...`` lines of a Kaldi table; duplicate keys and missing values are problems."""
    table: dict[str, _Entry] = {}
    for line_no, line in iter_lines(path, log):
        key, *rest = line.split(maxsplit=1)  # Kaldi tables separate the key by spaces or tabs
        value = " ".join(rest[0].split()) if rest else ""
        if key in table:
            log.add(path, line_no, f"duplicate key {key!r} (first at line {table[key].line})")
            continue
        if not value and not allow_empty:
            log.add(path, line_no, f"{key!r} has no value")
        table[key] = _Entry(line_no, value)
    return table


def _read_segments(path: Path, recordings: dict[str, _Entry], log: ProblemLog) -> dict[str, _Segment]:
    segments: dict[str, _Segment] = {}
    for utt, entry in _read_table(path, log).items():
        fields = entry.value.split()
        if len(fields) != 3:
            log.add(path, entry.line, f"expected '<utt> <recording> <start> <end>', got {utt} {entry.value!r}")
            continue
        rec_id, start_text, end_text = fields
        try:
            start, end = float(start_text), float(end_text)
            if not (math.isfinite(start) and math.isfinite(end)):
                raise ValueError
        except ValueError:
            log.add(path, entry.line, f"start/end must be seconds, got {start_text!r} {end_text!r}")
            continue
        if rec_id not in recordings:
            log.add(path, entry.line, f"utterance {utt!r} refers to recording {rec_id!r}, which is not in wav.scp")
        elif start < 0 or (end != -1 and end <= start):
            log.add(path, entry.line, f"segment [{start}, {end}] of {utt!r} is empty or starts before 0")
        else:
            segments[utt] = _Segment(entry.line, rec_id, start, None if end == -1 else end)
    return segments


def _probe_pipe(rec_id: str, command: str) -> Recording | str:
    """Run a wav.scp pipe once and read its output's header (rate, channels, length)."""
    import soundfile
    from lhotse import Recording
    from lhotse.audio import AudioSource

    try:
        proc = subprocess.run(command, shell=True, capture_output=True, timeout=PIPE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return f"pipe did not finish within {PIPE_TIMEOUT_S} s: {command}"
    if proc.returncode != 0 or not proc.stdout:
        stderr = proc.stderr.decode(errors="replace").strip().splitlines()
        return f"pipe failed (exit {proc.returncode}): {command}" + (f": {stderr[-1]}" if stderr else "")
    try:
        info = soundfile.info(io.BytesIO(proc.stdout))
    except Exception as err:  # soundfile raises LibsndfileError/RuntimeError for non-audio output
        return f"pipe output is not audio soundfile can read ({err}): {command}"
    source = AudioSource(type="command", channels=list(range(info.channels)), source=command)
    return Recording(
        id=rec_id,
        sources=[source],
        sampling_rate=info.samplerate,
        num_samples=info.frames,
        duration=info.frames / info.samplerate,
    )


def _probe_wav_scp(
    wav_scp: Path, entries: dict[str, _Entry], bases: Sequence[Path], log: ProblemLog, progress: ProgressFn
) -> dict[str, Recording]:
    """Recordings for the wav.scp entries, every unreadable, missing or unsupported one logged with its line."""
    files: list[tuple[str, Path]] = []
    pipes: list[tuple[str, str]] = []
    for rec_id, entry in entries.items():
        if entry.value.endswith("|"):
            command = entry.value[:-1].strip()
            program = shlex.split(command)[0] if command else ""
            if not program or shutil.which(program) is None:
                log.add(wav_scp, entry.line, f"pipe program {program!r} of {rec_id!r} is not installed or not on PATH")
            else:
                pipes.append((rec_id, command))
        elif _ARK_OFFSET.search(entry.value):
            log.add(wav_scp, entry.line, f"{rec_id!r}: audio inside .ark archives is not supported; dump it to wav")
        elif (path := resolve_audio_path(entry.value, bases)) is None:
            log.add(wav_scp, entry.line, f"audio file of {rec_id!r} not found: {entry.value}")
        else:
            files.append((rec_id, path))
    probed = probe_recordings(files, progress)
    for done, (rec_id, command) in enumerate(pipes, start=1):
        probed[rec_id] = _probe_pipe(rec_id, command)
        progress("running wav.scp pipes", done, len(pipes))
    recordings: dict[str, Recording] = {}
    for rec_id, result in probed.items():
        if isinstance(result, str):
            log.add(wav_scp, entries[rec_id].line, result)
        else:
            recordings[rec_id] = result
    return recordings


@dataclass(frozen=True)
class _Utterances:
    source: Path  # segments when present, else wav.scp
    lines: dict[str, int]  # utterance id -> its line in ``source``


def _speaker_labels(
    data_dir: Path, utterances: _Utterances, log: ProblemLog
) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Speaker, gender and language per utterance from utt2spk, spk2gender/utt2gender and utt2lang."""
    speakers: dict[str, str] = {}
    genders: dict[str, str] = {}
    languages: dict[str, str] = {}
    if (data_dir / "utt2spk").is_file():
        speakers = {u: e.value for u, e in _utterance_table(data_dir / "utt2spk", utterances, log, True).items()}
    spk2gender_path = data_dir / "spk2gender"
    if spk2gender_path.is_file():
        speaker_genders: dict[str, str] = {}
        for spk, entry in _read_table(spk2gender_path, log).items():
            try:
                speaker_genders[spk] = normalize_gender(entry.value)
            except ValueError as err:
                log.add(spk2gender_path, entry.line, str(err))
        genders.update({utt: speaker_genders[spk] for utt, spk in speakers.items() if spk in speaker_genders})
    for name, normalize, target in (
        ("utt2gender", normalize_gender, genders),
        ("utt2lang", normalize_language, languages),
    ):
        path = data_dir / name
        if path.is_file():
            for utt, entry in _utterance_table(path, utterances, log, False).items():
                try:
                    target[utt] = normalize(entry.value)
                except ValueError as err:
                    log.add(path, entry.line, str(err))
    return speakers, genders, languages


def _utterance_table(path: Path, utterances: _Utterances, log: ProblemLog, complete: bool) -> dict[str, _Entry]:
    """A per-utterance table; keys that are not utterances are problems, and so are utterances it lacks
    when it must be ``complete`` (utt2spk, as Kaldi requires)."""
    table = _read_table(path, log)
    for key, entry in table.items():
        if key not in utterances.lines:
            log.add(path, entry.line, f"utterance {key!r} is not in {utterances.source.name}")
    if complete:
        for utt, line in utterances.lines.items():
            if utt not in table:
                log.add(utterances.source, line, f"utterance {utt!r} has no entry in {path.name}")
    return {key: entry for key, entry in table.items() if key in utterances.lines}


def import_kaldi(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    split: str = "train",
    name: str | None = None,
    audio_root: str | Path | None = None,
    overwrite: bool = False,
    progress: ProgressFn = no_progress,
) -> ImportSummary:
    """Import a Kaldi data directory as split ``split`` of the corpus at ``out_dir``.

    Relative wav.scp paths are resolved against ``audio_root`` (default: the current directory, as in Kaldi).
    """
    from lhotse import RecordingSet, SupervisionSegment, SupervisionSet
    from lhotse.cut import CutSet

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    for required in ("wav.scp", "text"):
        if not (data_dir / required).is_file():
            raise UserError(f"not a Kaldi data directory: {required} is missing", path=data_dir)
    check_output(out_dir, split, overwrite)
    log = ProblemLog(f"Kaldi data dir {data_dir}")
    wav_scp, text_path, segments_path = data_dir / "wav.scp", data_dir / "text", data_dir / "segments"
    wav_entries = _read_table(wav_scp, log)
    segments = _read_segments(segments_path, wav_entries, log) if segments_path.is_file() else None
    if segments is not None:
        utterances = _Utterances(segments_path, {u: seg.line for u, seg in segments.items()})
    else:
        utterances = _Utterances(wav_scp, {u: e.line for u, e in wav_entries.items()})
    texts = _read_table(text_path, log, allow_empty=True)
    for utt, entry in texts.items():
        if utt not in utterances.lines:
            log.add(text_path, entry.line, f"utterance {utt!r} is in text but not in {utterances.source.name}")
        elif not entry.value:
            log.add(text_path, entry.line, f"utterance {utt!r} has an empty transcript")
    for utt, line in utterances.lines.items():
        if utt not in texts:
            log.add(utterances.source, line, f"utterance {utt!r} has no transcript in {text_path.name}")
    speakers, genders, languages = _speaker_labels(data_dir, utterances, log)

    used = {s.recording_id for s in segments.values()} if segments is not None else set(wav_entries)
    bases = [Path(audio_root).absolute()] if audio_root is not None else [Path.cwd()]
    recordings = _probe_wav_scp(wav_scp, {r: e for r, e in wav_entries.items() if r in used}, bases, log, progress)

    name = name or out_dir.absolute().name
    supervisions, cuts = [], []
    for utt in utterances.lines:
        if segments is not None:
            seg = segments[utt]
            rec_id, start, end, where = seg.recording_id, seg.start, seg.end, (segments_path, seg.line)
        else:
            rec_id, start, end, where = utt, 0.0, None, (wav_scp, wav_entries[utt].line)
        if rec_id not in recordings or utt not in texts:
            continue  # already reported
        recording = recordings[rec_id]
        end = recording.duration if end is None else end
        if end > recording.duration + END_TOLERANCE_S:
            log.add(
                *where, f"segment of {utt!r} ends at {end} s, after the end of {rec_id!r} ({recording.duration:.3f} s)"
            )
            continue
        end = min(end, recording.duration)
        sup = SupervisionSegment(
            id=utt,
            recording_id=rec_id,
            start=start,
            duration=round(end - start, 6),
            channel=recording_channel(recording),
            text=texts[utt].value,
            language=languages.get(utt),
            speaker=speakers.get(utt),
            gender=genders.get(utt),
        )
        supervisions.append(sup)
        cuts.append(make_cut(utt, recording, start, sup.duration, [sup], cut_custom(name, split, exact_segments=False)))
    log.raise_if_any()
    return write_corpus(
        out_dir,
        split,
        RecordingSet.from_recordings(recordings[r] for r in sorted(recordings)),
        SupervisionSet.from_segments(supervisions),
        CutSet.from_cuts(cuts),
        name=name,
        source_format="kaldi",
        source=data_dir,
        options={"audio_root": None if audio_root is None else str(Path(audio_root).absolute())},
        warnings=log.warnings,
    )
