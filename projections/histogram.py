"""Latency histograms with fixed buckets, and percentiles read back from them.

The stages view keeps counts per bucket instead of samples, so it stays the same size
however many tasks run, and a rebuild from zero gives the same integers. The bounds are
log-spaced, six per decade from 1 ms, plus 1 h as the last: a bucket is about 47% wider
than its lower bound wherever it lies, so the relative error is the same at every scale.

A percentile is found by rank: the bucket holding the ``ceil(q * n)``-th smallest sample
(the sample the nearest-rank method returns), then interpolated linearly within that
bucket by how far into it the rank falls. Estimate and true sample lie in the same bucket,
so the error is at most that bucket's width: under 0.47 of its lower bound (under 1 ms in
the first bucket, which starts at 0). Past the last bound only "at least 1 h" is known:
the estimate is 1 h, a lower bound.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence

# Upper bounds (seconds, inclusive, like Prometheus' ``le``); one more bucket counts the rest.
BOUNDS: tuple[float, ...] = (
    *(float(f"{10 ** (k / 6 - 3):.3g}") for k in range(40)),
    3600.0,
)
BUCKETS = len(BOUNDS) + 1  # the last one is the overflow (> 1 h)
PERCENTILES = (0.5, 0.95, 0.99)


def bucket_of(seconds: float) -> int:
    """The bucket a duration falls in; a negative one (clocks apart) counts as zero."""
    return bisect_left(BOUNDS, max(seconds, 0.0))


def bucket_range(bucket: int) -> tuple[float, float]:
    """A bucket's (lower, upper) bounds in seconds; the overflow's upper bound is infinite."""
    lower = 0.0 if bucket == 0 else BOUNDS[bucket - 1]
    upper = BOUNDS[bucket] if bucket < len(BOUNDS) else math.inf
    return lower, upper


def quantile(counts: Sequence[int], q: float) -> float | None:
    """The ``q``-quantile (0 < q <= 1) of the samples counted per bucket; None if none."""
    if not 0 < q <= 1:
        raise ValueError("q must be in (0, 1]")
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    below = 0
    for bucket, n in enumerate(counts):
        if n and below + n >= rank:
            lower, upper = bucket_range(bucket)
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - below) / n
        below += n
    raise AssertionError("unreachable: the ranks add up to the total")
