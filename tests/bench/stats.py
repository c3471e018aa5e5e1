"""Percentiles by nearest rank (no interpolation: every figure is a measured value)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    return {f"p{p}": round(percentile(seconds, p) * 1000, 2) for p in (50, 95, 99)}
