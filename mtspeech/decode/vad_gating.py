"""Voice-activity gating: speech segments from frame-level speech probabilities, and decoding piece by piece.

The ``vad`` task gives one speech probability per encoder frame (40 ms). :func:`speech_segments` turns them into
frame ranges (threshold, then min-silence / min-speech smoothing, padding, and splitting of over-long runs);
each range is then decoded on its own and its times shifted back onto the input's clock. Where no
frame reaches the threshold there is no segment and so no text at all: a decoder is never asked to transcribe
noise, which is where attention decoders hallucinate. Inside a segment every mode sees only the segment's frames
(plus ``pad``), so no mode can place a word in the silence around it. ``ModelDecoder`` decodes the segments of
a batch together and joins each utterance's answers with their times.
"""

from __future__ import annotations

import torch

from mtspeech.decode.options import VadOptions


def segment_times(
    frames: list[tuple[int, int]], centres: torch.Tensor, frame_shift: float, duration: float
) -> list[tuple[float, float]]:
    """Encoder-frame ranges ``[start, end)`` -> ``(start, end)`` in seconds: a frame covers its receptive-field
    centre (``centres``, seconds) +- half an encoder frame shift; times are clipped to ``[0, duration]``."""
    times = []
    for start, end in frames:
        begin = max(0.0, float(centres[start]) - frame_shift / 2)
        finish = min(duration, float(centres[end - 1]) + frame_shift / 2)
        if finish > begin:
            times.append((begin, finish))
    return times


def _runs(mask: list[bool]) -> list[list[int]]:
    """``[start, end)`` of each run of True."""
    runs, start = [], None
    for i, value in enumerate([*mask, False]):
        if value and start is None:
            start = i
        elif not value and start is not None:
            runs.append([start, i])
            start = None
    return runs


def _split_long(start: int, end: int, probs: torch.Tensor, max_frames: int) -> list[tuple[int, int]]:
    """Cut a run longer than ``max_frames`` at its least speech-like frame in the second half of each window, so
    every piece is between ``max_frames / 2`` and ``max_frames`` long (the last may be shorter)."""
    pieces = []
    while end - start > max_frames:
        lo, hi = start + max_frames // 2, start + max_frames
        cut = lo + int(probs[lo:hi].argmin())
        pieces.append((start, cut))
        start = cut
    pieces.append((start, end))
    return pieces


def speech_segments(probs: torch.Tensor, options: VadOptions) -> list[tuple[int, int]]:
    """``[start, end)`` encoder-frame ranges of speech in ``probs`` ``(T,)`` (see :class:`VadOptions`)."""
    probs = probs.detach().float().cpu()
    frames = probs.numel()
    to_frames = lambda seconds: int(round(seconds / options.frame_shift))  # noqa: E731
    runs = _runs((probs >= options.threshold).tolist())
    merged: list[list[int]] = []
    for run in runs:  # bridge pauses shorter than min_silence
        if merged and run[0] - merged[-1][1] < to_frames(options.min_silence):
            merged[-1][1] = run[1]
        else:
            merged.append(run)
    kept = [r for r in merged if r[1] - r[0] >= max(1, to_frames(options.min_speech))]
    padded: list[list[int]] = []
    pad = to_frames(options.pad)
    for start, end in kept:
        start, end = max(0, start - pad), min(frames, end + pad)
        if padded and start <= padded[-1][1]:
            padded[-1][1] = max(padded[-1][1], end)
        else:
            padded.append([start, end])
    max_frames = max(2, int(options.max_segment / options.frame_shift))
    return [piece for start, end in padded for piece in _split_long(start, end, probs, max_frames)]
