"""Reading the stages view: per task type, stage and whether the attempts were first ones
or retried, the histogram and its percentiles;
per type and minute, what finished.

Percentiles are computed here, at read time, from the bucket counts
(``projections/histogram.py`` says how, and how far off they can be).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg_pool import ConnectionPool

from projections.histogram import BUCKETS, PERCENTILES, quantile

HISTOGRAMS = """
SELECT t.type, t.stage, t.retried, t.count, t.sum_ms,
       coalesce(array_agg(h.bucket ORDER BY h.bucket) FILTER (WHERE h.bucket IS NOT NULL), '{}'),
       coalesce(array_agg(h.count ORDER BY h.bucket) FILTER (WHERE h.bucket IS NOT NULL), '{}')
FROM stage_totals t
LEFT JOIN stage_histograms h
    ON h.type = t.type AND h.stage = t.stage AND h.retried = t.retried
GROUP BY t.type, t.stage, t.retried, t.count, t.sum_ms
ORDER BY t.type, t.stage, t.retried
"""
MINUTES = """
SELECT type, minute, succeeded, failed, e2e_sum_ms FROM stage_minutes
WHERE minute >= %s ORDER BY minute, type
"""


@dataclass(frozen=True)
class StageHistogram:
    type: str
    stage: str
    counts: tuple[int, ...]  # per bucket of ``histogram.BOUNDS``, the overflow last
    count: int
    sum_s: float
    retried: bool = False  # the attempts after a task's first (a retry, a re-drive)

    def percentiles(self) -> dict[float, float | None]:
        """Estimated from the buckets; exact for a single sample (it is the sum)."""
        if self.count == 1:
            return dict.fromkeys(PERCENTILES, self.sum_s)
        return {q: quantile(self.counts, q) for q in PERCENTILES}


@dataclass(frozen=True)
class MinuteCount:
    type: str
    minute: datetime
    succeeded: int
    failed: int
    e2e_mean_s: float | None  # over the tasks that ended that minute


class StageReads:
    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self.pool = pool

    def histograms(self) -> list[StageHistogram]:
        with self.pool.connection() as conn:
            rows = conn.execute(HISTOGRAMS).fetchall()
        out = []
        for type_, stage, retried, count, sum_ms, buckets, counts in rows:
            dense = [0] * BUCKETS
            for b, n in zip(buckets, counts, strict=True):
                dense[b] = n
            out.append(StageHistogram(type_, stage, tuple(dense), count, sum_ms / 1000, retried))
        return out

    def minutes(self, last: int, now: datetime) -> list[MinuteCount]:
        """The minutes that had completions among the ``last`` ones up to ``now``, oldest
        first (a minute with none is not listed)."""
        since = now.replace(second=0, microsecond=0) - timedelta(minutes=last - 1)
        with self.pool.connection() as conn:
            rows = conn.execute(MINUTES, (since,)).fetchall()
        return [
            MinuteCount(t, m, ok, failed, (e2e_ms / 1000 / (ok + failed)) if ok + failed else None)
            for t, m, ok, failed, e2e_ms in rows
        ]
