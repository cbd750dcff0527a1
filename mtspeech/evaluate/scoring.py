"""Every metric on one 0-100 higher-is-better scale, and their geometric mean as a single score.

Normalisation (metric names are ``task/metric``):

* error rates (``*/wer``, ``*/cer`` and the WER parts ``*/substitutions``, ``*/deletions``, ``*/insertions``,
  in percent of reference words): ``100 - min(rate, 100)``;
* boundary errors (``*_error_ms``): ``100 * max(0, 1 - error / tolerance)``, tolerance 500 ms by default
  (an onset 50 ms off scores 90; half a second or more scores 0);
* counts (``matched_segments``, ``missed_segments``, ``false_alarm_segments``): not scores, left out;
* everything else (accuracies, recalls, F1s, BLEU, chrF; already percent or 0-100): clamped to [0, 100].

The single score is the geometric mean of one *headline* metric per evaluated task (:data:`HEADLINE`), each
floored at ``epsilon`` (default 0.1 on the 0-100 scale) so that one task at exactly 0 does not make the whole
score 0 (the log of 0 is undefined) while still dragging it far down: a geometric mean rewards a model that is
decent at everything over one that is excellent at some tasks and useless at others.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

# One metric per task enters the geometric mean (the task's most common summary number).
HEADLINE: dict[str, str] = {
    "asr": "asr/wer",
    "st": "st/bleu",
    "intent": "intent/accuracy",
    "slots": "slots/slu_f1",
    "lid": "lid/accuracy",
    "vad": "vad/frame_f1",
    "emotion": "emotion/uar",
    "accent": "accent/accuracy",
    "speaker": "speaker/accuracy",
    "gender": "gender/accuracy",
}
COUNT_METRICS = ("matched_segments", "missed_segments", "false_alarm_segments")
ERROR_RATES = ("wer", "cer", "substitutions", "deletions", "insertions")
DEFAULT_EPSILON = 0.1
DEFAULT_BOUNDARY_TOLERANCE_MS = 500.0


def lower_is_better(name: str) -> bool:
    leaf = name.rsplit("/", 1)[-1]
    return leaf in ERROR_RATES or leaf.startswith(("wer_", "cer_")) or leaf.endswith("_error_ms")


def normalise_metric(name: str, value: float, *, tolerance_ms: float = DEFAULT_BOUNDARY_TOLERANCE_MS) -> float | None:
    """``value`` of metric ``name`` on the 0-100 higher-is-better scale; None for counts and NaN values."""
    leaf = name.rsplit("/", 1)[-1]
    if leaf in COUNT_METRICS or value is None or math.isnan(value):
        return None
    if leaf.endswith("_error_ms"):
        return 100.0 * max(0.0, 1.0 - value / tolerance_ms)
    if lower_is_better(name):
        return 100.0 - min(max(value, 0.0), 100.0)
    return min(max(value, 0.0), 100.0)


def normalise_all(
    metrics: Mapping[str, float], *, tolerance_ms: float = DEFAULT_BOUNDARY_TOLERANCE_MS
) -> dict[str, float]:
    """Every metric that has a normalised form (see :func:`normalise_metric`)."""
    out = {}
    for name, value in metrics.items():
        score = normalise_metric(name, value, tolerance_ms=tolerance_ms)
        if score is not None:
            out[name] = score
    return out


def geometric_mean(scores: Mapping[str, float] | list[float], *, epsilon: float = DEFAULT_EPSILON) -> float:
    """``exp(mean(log(max(s, epsilon))))`` over 0-100 scores; NaN for none."""
    values = list(scores.values()) if isinstance(scores, Mapping) else list(scores)
    if not values:
        return math.nan
    if epsilon <= 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon}")
    return math.exp(sum(math.log(max(v, epsilon)) for v in values) / len(values))


def headline_scores(normalised: Mapping[str, float]) -> dict[str, float]:
    """task -> normalised headline metric, for the tasks that were evaluated."""
    return {task: normalised[name] for task, name in HEADLINE.items() if name in normalised}
