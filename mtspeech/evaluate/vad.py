"""Voice-activity metrics: frame precision / recall / F1 on a 10 ms grid and segment boundary errors.

Both sides are turned into 10 ms frames: frame ``i`` covers ``[i, i + 1) * 10 ms`` and is speech when its centre
lies inside a segment. Frame counts are summed over the corpus before P/R/F1 (speech is the positive class).

Boundary error: in each utterance, reference and predicted segments are paired one-to-one so that the total
overlap is largest (Hungarian assignment; pairs that do not overlap are not pairs). For every pair, the absolute
onset error ``|start_ref - start_pred|`` and offset error ``|end_ref - end_pred|`` are taken; the report gives their
means over all pairs of the corpus (milliseconds) and counts the unpaired segments (missed / false alarms).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

FRAME_SHIFT = 0.01  # seconds

Interval = tuple[float, float]


def segments_to_frames(segments: Sequence[Interval], duration: float, frame_shift: float = FRAME_SHIFT) -> np.ndarray:
    """Boolean speech mask with ``ceil(duration / frame_shift)`` frames."""
    num_frames = max(0, math.ceil(duration / frame_shift - 1e-9))
    centres = (np.arange(num_frames) + 0.5) * frame_shift
    mask = np.zeros(num_frames, dtype=bool)
    for start, end in segments:
        mask |= (centres >= start) & (centres < end)
    return mask


@dataclass
class VadCounts:
    """Frame confusion counts and boundary errors accumulated over utterances."""

    true_positive: int = 0
    false_positive: int = 0
    false_negative: int = 0
    true_negative: int = 0
    onset_errors: list[float] | None = None
    offset_errors: list[float] | None = None
    missed_segments: int = 0
    false_alarm_segments: int = 0

    def __post_init__(self) -> None:
        self.onset_errors = [] if self.onset_errors is None else self.onset_errors
        self.offset_errors = [] if self.offset_errors is None else self.offset_errors

    def add(self, reference: Sequence[Interval], predicted: Sequence[Interval], duration: float | None) -> None:
        """Score one utterance; without a duration the frames run to the last segment end."""
        if duration is None:
            duration = max([end for _, end in [*reference, *predicted]], default=0.0)
        ref = segments_to_frames(reference, duration)
        pred = segments_to_frames(predicted, duration)
        self.true_positive += int(np.sum(ref & pred))
        self.false_positive += int(np.sum(~ref & pred))
        self.false_negative += int(np.sum(ref & ~pred))
        self.true_negative += int(np.sum(~ref & ~pred))
        pairs = match_segments(reference, predicted)
        for i, j in pairs:
            self.onset_errors.append(abs(reference[i][0] - predicted[j][0]))
            self.offset_errors.append(abs(reference[i][1] - predicted[j][1]))
        self.missed_segments += len(reference) - len(pairs)
        self.false_alarm_segments += len(predicted) - len(pairs)

    def metrics(self) -> dict[str, float]:
        """Precision / recall / F1 (percent), mean boundary errors (ms) and segment counts."""
        tp, fp, fn = self.true_positive, self.false_positive, self.false_negative
        precision = 100.0 * tp / (tp + fp) if tp + fp else math.nan
        recall = 100.0 * tp / (tp + fn) if tp + fn else math.nan
        f1 = 100.0 * 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 100.0
        onset = 1000.0 * float(np.mean(self.onset_errors)) if self.onset_errors else math.nan
        offset = 1000.0 * float(np.mean(self.offset_errors)) if self.offset_errors else math.nan
        return {
            "frame_precision": precision,
            "frame_recall": recall,
            "frame_f1": f1,
            "onset_error_ms": onset,
            "offset_error_ms": offset,
            "boundary_error_ms": (onset + offset) / 2,
            "matched_segments": float(len(self.onset_errors)),
            "missed_segments": float(self.missed_segments),
            "false_alarm_segments": float(self.false_alarm_segments),
        }


def match_segments(reference: Sequence[Interval], predicted: Sequence[Interval]) -> list[tuple[int, int]]:
    """One-to-one pairs ``(reference index, predicted index)`` of largest total overlap; only overlapping pairs."""
    if not reference or not predicted:
        return []
    overlap = np.array(
        [
            [max(0.0, min(r_end, p_end) - max(r_start, p_start)) for p_start, p_end in predicted]
            for r_start, r_end in reference
        ]
    )
    rows, cols = linear_sum_assignment(-overlap)
    return [(int(i), int(j)) for i, j in zip(rows, cols, strict=True) if overlap[i, j] > 0]


def vad_metrics(
    references: Sequence[Sequence[Interval]],
    predictions: Sequence[Sequence[Interval]],
    durations: Sequence[float | None],
) -> dict[str, float]:
    """Corpus VAD metrics over parallel lists (see the module docstring)."""
    if not len(references) == len(predictions) == len(durations):
        raise ValueError("references, predictions and durations must have the same length")
    counts = VadCounts()
    for ref, pred, duration in zip(references, predictions, durations, strict=True):
        counts.add(ref, pred, duration)
    return counts.metrics()
