"""Reading what the bottleneck report needs from the views: the stages of a window per
type, bot and pool (``stage_window``), the pending tasks per type (``task_counts``) and
the bots' names (``fleet_view``). Each query is bounded by what the views keep: the window
table holds an hour, the counts a row per (state, type, priority)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg_pool import ConnectionPool

from projections.histogram import BUCKETS
from projections.stage_reads import StageHistogram

WINDOW = """
SELECT scope, key, type, stage, bucket, sum(count)::bigint, sum(sum_ms)::bigint
FROM stage_window WHERE minute >= %s
GROUP BY scope, key, type, stage, bucket
"""
PENDING = "SELECT type, sum(n)::bigint FROM task_counts WHERE state = 'pending' GROUP BY type"
NAMES = "SELECT bot_id::text, name, pool FROM fleet_view WHERE bot_id = ANY(%s::uuid[])"


@dataclass(frozen=True)
class WindowStage:
    """One stage of one type in one scope (``type``, ``bot`` or ``pool``, with its key)
    over a window."""

    scope: str
    key: str
    histogram: StageHistogram


class ProfileReads:
    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self.pool = pool

    def stages(self, since: datetime) -> list[WindowStage]:
        """The minutes from ``since`` (a minute's start) on, summed per scope, key, type
        and stage."""
        with self.pool.connection() as conn:
            rows = conn.execute(WINDOW, (since,)).fetchall()
        dense: dict[tuple[str, str, str, str], list[int]] = {}
        sums: dict[tuple[str, str, str, str], int] = {}
        for scope, key, type_, stage, bucket, count, sum_ms in rows:
            k = (scope, key, type_, stage)
            dense.setdefault(k, [0] * BUCKETS)[bucket] += count
            sums[k] = sums.get(k, 0) + sum_ms
        return [
            WindowStage(
                scope, key, StageHistogram(type_, stage, tuple(counts), sum(counts), sums[k] / 1000)
            )
            for k, counts in sorted(dense.items())
            for scope, key, type_, stage in [k]
        ]

    def pending(self) -> dict[str, int]:
        """Pending tasks per type, now."""
        with self.pool.connection() as conn:
            return dict(conn.execute(PENDING).fetchall())

    def bots(self, bot_ids: list[str]) -> dict[str, tuple[str, str | None]]:
        """Each of these bots' name and pool (a bot the fleet view has not seen yet is
        not in the answer)."""
        if not bot_ids:
            return {}
        with self.pool.connection() as conn:
            rows = conn.execute(NAMES, (bot_ids,)).fetchall()
        return {bot_id: (name, pool) for bot_id, name, pool in rows}
