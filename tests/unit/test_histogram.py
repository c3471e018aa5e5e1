"""Percentiles read back from fixed buckets: ordered, and in the true sample's bucket."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from projections.histogram import BOUNDS, BUCKETS, PERCENTILES, bucket_of, bucket_range, quantile

durations = st.lists(
    st.floats(min_value=0, max_value=5000, allow_nan=False) | st.sampled_from(BOUNDS),
    min_size=1,
    max_size=300,
)


def counts_of(samples: list[float]) -> list[int]:
    counts = [0] * BUCKETS
    for s in samples:
        counts[bucket_of(s)] += 1
    return counts


def nearest_rank(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@given(durations)
def test_percentiles_are_ordered(samples: list[float]) -> None:
    p50, p95, p99 = (quantile(counts_of(samples), q) for q in PERCENTILES)
    assert p50 is not None and p95 is not None and p99 is not None
    assert p50 <= p95 <= p99


@given(durations, st.sampled_from((*PERCENTILES, 0.001, 0.25, 1.0)))
def test_an_estimate_lies_in_the_bucket_of_the_true_quantile(
    samples: list[float], q: float
) -> None:
    estimate = quantile(counts_of(samples), q)
    true = nearest_rank(samples, q)
    lower, upper = bucket_range(bucket_of(true))
    assert estimate is not None
    if math.isinf(upper):
        assert estimate == lower <= true  # past the last bound only a lower bound is known
    else:
        assert lower <= estimate <= upper
        assert abs(estimate - true) <= upper - lower


def test_the_error_bound_the_docs_give() -> None:
    """A bucket is at most 47% wider than its lower bound; the first is 1 ms wide."""
    widths = [BOUNDS[i] / BOUNDS[i - 1] - 1 for i in range(1, len(BOUNDS))]
    assert max(widths) <= 0.47 + 1e-9
    assert bucket_range(0) == (0.0, 0.001)
    assert len(BOUNDS) == 41 and BOUNDS[-1] == 3600.0


def test_a_bound_belongs_to_the_bucket_it_closes_and_negatives_count_as_zero() -> None:
    assert bucket_of(0.001) == 0
    assert bucket_of(0.0010001) == 1
    assert bucket_of(-3.0) == 0
    assert bucket_of(3600.0) == len(BOUNDS) - 1
    assert bucket_of(3600.5) == len(BOUNDS)


def test_interpolation_within_a_bucket() -> None:
    counts = [0] * BUCKETS
    counts[bucket_of(1.0)] = 4  # (0.681, 1.0]
    lower, upper = bucket_range(bucket_of(1.0))
    assert quantile(counts, 0.5) == pytest.approx(lower + (upper - lower) * 0.5)
    assert quantile(counts, 1.0) == upper
    assert quantile([0] * BUCKETS, 0.5) is None
    with pytest.raises(ValueError):
        quantile(counts, 0)


def test_one_sample_is_its_every_percentile() -> None:
    from projections.stage_reads import StageHistogram

    counts = [0] * BUCKETS
    counts[bucket_of(0.8405)] = 1
    one = StageHistogram("writing", "end_to_end", tuple(counts), 1, 0.8405)
    assert one.percentiles() == dict.fromkeys(PERCENTILES, 0.8405)
    two = StageHistogram("writing", "end_to_end", tuple(c * 2 for c in counts), 2, 1.681)
    assert two.percentiles() == {q: quantile(two.counts, q) for q in PERCENTILES}
