"""Counting what the views hold, for the metrics scrape: tasks by state and type, the
queue by type and priority, bots by state and pool, each view's position, and retries and
dead letters by type and error kind.

Each query reads a view, never the log, and none grows with the tasks: tasks and the
queue come from ``task_counts`` (kept by the tasks view, one row per state, type and
priority), retries from ``retry_counts`` (kept by the tasks view too, one row per type and
error kind), the fleet and the positions are small.
"""

from __future__ import annotations

from typing import Any

from psycopg_pool import ConnectionPool

TASKS = "SELECT state, type, sum(n)::bigint FROM task_counts GROUP BY 1, 2 ORDER BY 1, 2"
QUEUE = "SELECT type, priority, n FROM task_counts WHERE state = 'pending' ORDER BY 1, 2"
BOTS = "SELECT state, coalesce(pool, ''), count(*) FROM fleet_view GROUP BY 1, 2 ORDER BY 1, 2"
POSITIONS = "SELECT view, position FROM projection_positions ORDER BY view"
RETRIES = "SELECT type, error_kind, retries, dead_letters FROM retry_counts ORDER BY 1, 2"


class MetricReads:
    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self.pool = pool

    def counts(self) -> dict[str, list[tuple[Any, ...]]]:
        """``tasks`` (state, type, n), ``queue`` (type, priority, n), ``bots`` (state, pool,
        n), ``positions`` (view, position) and ``retries`` (type, error kind, retries, dead
        letters), read on one connection."""
        with self.pool.connection() as conn:
            return {
                name: conn.execute(sql).fetchall()
                for name, sql in (
                    ("tasks", TASKS),
                    ("queue", QUEUE),
                    ("bots", BOTS),
                    ("positions", POSITIONS),
                    ("retries", RETRIES),
                )
            }
