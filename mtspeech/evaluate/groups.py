"""The fairness check: every metric again on subsets of utterances grouped by a reference attribute.

Dimensions: ``language`` (spoken language), ``accent``, ``gender``, ``noise`` (noise level from the SNR, see
:func:`noise_level`), ``noise_type`` and ``speaker``. An utterance without the attribute (e.g. no accent label
for French) is left out of that dimension. Groups with fewer than ``min_group_size`` utterances are skipped
(listed in the report) because a metric over three utterances says more about chance than about the model.
For each dimension the report gives the *gap*: best minus worst group on each headline metric (0-100 scale).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mtspeech.evaluate.compute import compute_metrics
from mtspeech.evaluate.records import UtteranceResult
from mtspeech.evaluate.scoring import geometric_mean, headline_scores, normalise_all

# (name, lower bound in dB) from the cleanest down; the first bound the SNR reaches names its level.
NOISE_LEVELS: tuple[tuple[str, float], ...] = (
    ("snr 20+ dB", 20.0),
    ("snr 10-20 dB", 10.0),
    ("snr 0-10 dB", 0.0),
    ("snr <0 dB", -math.inf),
)
CLEAN = "clean"
UNKNOWN_SNR = "noisy, snr unknown"
NOISE_ORDER = (CLEAN, *(name for name, _ in NOISE_LEVELS), UNKNOWN_SNR)


def noise_level(noise_type: str | None, snr_db: float | None) -> str | None:
    """``clean`` for no added noise, else the SNR band; None when the recording conditions are unknown."""
    if noise_type == "none" or (noise_type is None and snr_db is None):
        return CLEAN if noise_type == "none" else None
    if snr_db is None:
        return UNKNOWN_SNR
    return next(name for name, bound in NOISE_LEVELS if snr_db >= bound)


DIMENSIONS: dict[str, Callable[[UtteranceResult], str | None]] = {
    "language": lambda r: r.reference.language,
    "accent": lambda r: r.reference.accent,
    "gender": lambda r: r.reference.gender,
    "noise": lambda r: noise_level(r.reference.noise_type, r.reference.snr_db),
    "noise_type": lambda r: r.reference.noise_type,
    "speaker": lambda r: r.reference.speaker,
}
DEFAULT_DIMENSIONS = ("language", "accent", "gender", "noise")


@dataclass
class GroupResult:
    """Metrics of one group of utterances."""

    size: int
    metrics: dict[str, float]
    normalised: dict[str, float]
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "metrics": self.metrics, "normalised": self.normalised, "score": self.score}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> GroupResult:
        return GroupResult(int(data["size"]), dict(data["metrics"]), dict(data["normalised"]), data["score"])


@dataclass
class Breakdown:
    """One dimension: its groups (in display order), skipped small groups and the per-metric gaps."""

    groups: dict[str, GroupResult] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # group -> size, below min_group_size
    gaps: dict[str, dict[str, Any]] = field(default_factory=dict)  # headline metric -> {best, worst, gap}

    def to_dict(self) -> dict[str, Any]:
        return {"groups": {k: g.to_dict() for k, g in self.groups.items()}, "skipped": self.skipped, "gaps": self.gaps}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Breakdown:
        groups = {k: GroupResult.from_dict(g) for k, g in data.get("groups", {}).items()}
        return Breakdown(groups, dict(data.get("skipped", {})), dict(data.get("gaps", {})))


def group_records(records: Sequence[UtteranceResult], dimension: str) -> dict[str, list[UtteranceResult]]:
    """Records per group value of ``dimension`` (records without the attribute are left out)."""
    if dimension not in DIMENSIONS:
        raise ValueError(f"unknown group dimension {dimension!r}; known: {', '.join(DIMENSIONS)}")
    key = DIMENSIONS[dimension]
    groups: dict[str, list[UtteranceResult]] = {}
    for record in records:
        value = key(record)
        if value is not None:
            groups.setdefault(str(value), []).append(record)
    order = NOISE_ORDER if dimension == "noise" else ()
    return dict(sorted(groups.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0])))


def breakdown(
    records: Sequence[UtteranceResult],
    dimensions: Sequence[str] = DEFAULT_DIMENSIONS,
    *,
    min_group_size: int = 1,
    epsilon: float = 0.1,
    tolerance_ms: float = 500.0,
) -> dict[str, Breakdown]:
    """Metrics per group for every dimension that has at least one group (see the module docstring)."""
    out: dict[str, Breakdown] = {}
    for dimension in dimensions:
        result = Breakdown()
        for value, members in group_records(records, dimension).items():
            if len(members) < min_group_size:
                result.skipped[value] = len(members)
                continue
            metrics = compute_metrics(members, confusions=False).metrics
            normalised = normalise_all(metrics, tolerance_ms=tolerance_ms)
            score = geometric_mean(headline_scores(normalised), epsilon=epsilon)
            result.groups[value] = GroupResult(len(members), metrics, normalised, score)
        result.gaps = group_gaps(result.groups)
        if result.groups or result.skipped:
            out[dimension] = result
    return out


def group_gaps(groups: dict[str, GroupResult]) -> dict[str, dict[str, Any]]:
    """For each headline metric (and the overall score) present in two or more groups: best and worst group and
    the gap between them on the 0-100 scale."""
    per_metric: dict[str, dict[str, float]] = {}
    for name, group in groups.items():
        for task, value in headline_scores(group.normalised).items():
            per_metric.setdefault(task, {})[name] = value
        if not math.isnan(group.score):
            per_metric.setdefault("score", {})[name] = group.score
    gaps = {}
    for metric, values in per_metric.items():
        if len(values) < 2:
            continue
        best = max(values, key=values.__getitem__)
        worst = min(values, key=values.__getitem__)
        gaps[metric] = {"best": best, "worst": worst, "gap": values[best] - values[worst]}
    return gaps
