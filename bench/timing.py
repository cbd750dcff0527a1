"""Timing helpers of the serving benchmarks: interleaved best-of-N timings and rounded ratios."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def compare_ms(variants: dict[str, Callable[[np.ndarray], Any]], waves: Sequence[np.ndarray], repeats: int):
    """For each variant, the sum over the test files of its best time per file; the variants run interleaved
    (file by file, round by round) so a burst of load from elsewhere hits them alike."""
    totals = dict.fromkeys(variants, 0.0)
    for wave in waves:
        for fn in variants.values():
            fn(wave)  # warm-up
        best = {name: float("inf") for name in variants}
        for _ in range(repeats):
            for name, fn in variants.items():
                started = time.perf_counter()
                fn(wave)
                best[name] = min(best[name], (time.perf_counter() - started) * 1000)
        for name in variants:
            totals[name] += best[name]
    return {name: round(total, 2) for name, total in totals.items()}


def ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 3) if denominator else float("nan")
