"""Every process's timings over a window: written per minute by each, read by any.

Soft state, like the processes' rows: each process upserts its current and just-ended
minute (``ProcessTimings.recent``) every few seconds from its beat thread, and deletes
rows older than an hour on the way. ``ProcessStats.window`` reads the minutes that overlap
a window (so ``5m`` counts the five whole minutes before this one, and this one so far),
adds them up per process and over the hive, and gives each view's lag as it is now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from projections.timings import Timing, merge
from store.migrations import Migration
from store.processes import Resources, resources_of

KEEP_S = 3600
GONE_AFTER_S = 3.0  # as ``store.processes``: a row not renewed since is a process gone

PROCESS_MINUTE_MIGRATIONS = [
    Migration(
        230,
        "soft state: each process's timings per minute (its last hour)",
        """
        CREATE TABLE IF NOT EXISTS public.process_minutes (
            process_id uuid NOT NULL,
            minute timestamptz NOT NULL,
            role text NOT NULL,
            host text NOT NULL,
            pid integer NOT NULL,
            timings jsonb NOT NULL,
            PRIMARY KEY (process_id, minute)
        );
        CREATE INDEX IF NOT EXISTS process_minutes_minute ON public.process_minutes (minute);
        """,
    ),
]

_UPSERT = (
    "INSERT INTO process_minutes (process_id, minute, role, host, pid, timings) "
    "VALUES (%s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (process_id, minute) DO UPDATE SET timings = EXCLUDED.timings"
)
_WINDOW = """
SELECT m.process_id, m.role, m.host, m.pid, m.timings, p.resources,
       p.seen_at >= now() - make_interval(secs => %(gone)s)
FROM process_minutes m LEFT JOIN processes p USING (process_id)
WHERE m.minute >= date_trunc('minute', now() - make_interval(secs => %(window)s))
ORDER BY m.process_id, m.minute
"""
_LAGS = """
SELECT view, GREATEST((SELECT coalesce(max(notification_id), 0) FROM hive_events) - position, 0)
FROM projection_positions ORDER BY view
"""


@dataclass(frozen=True)
class ProcessWindow:
    """One process's timings over a window, by name (``http:GET /v1/tasks:2xx``,
    ``loop:dispatcher``, ``save``, ``view:tasks``); ``resources`` as its last beat said,
    None once it is gone (its minutes still count)."""

    process_id: UUID
    role: str
    host: str
    pid: int
    resources: Resources | None
    timings: dict[str, Timing]


@dataclass(frozen=True)
class TimingsWindow:
    """Every process that counted anything in the window (those still alive first), the
    timings of all of them added up (``hive``), and each view's lag now (log positions it
    has still to apply)."""

    window_s: float
    processes: list[ProcessWindow]
    hive: dict[str, Timing]
    lags: dict[str, int]


class ProcessStats:
    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self.pool = pool

    def write(
        self,
        process_id: UUID,
        role: str,
        host: str,
        pid: int,
        minutes: dict[int, dict[str, Timing]],
    ) -> None:
        """Upsert these minutes (by minute number) of one process; forget the old ones."""
        rows = [
            (
                process_id,
                datetime.fromtimestamp(minute * 60, UTC),
                role,
                host,
                pid,
                Jsonb({name: t.to_json() for name, t in timings.items()}),
            )
            for minute, timings in sorted(minutes.items())
        ]
        with self.pool.connection() as conn:
            if rows:
                conn.cursor().executemany(_UPSERT, rows)
            conn.execute(
                "DELETE FROM process_minutes WHERE minute < now() - make_interval(secs => %s)",
                (KEEP_S,),
            )

    def window(self, seconds: float) -> TimingsWindow:
        """The minutes overlapping the last ``seconds``, added up (see the module)."""
        with self.pool.connection() as conn:
            rows = conn.execute(_WINDOW, {"gone": GONE_AFTER_S, "window": seconds}).fetchall()
            lags = {str(view): int(lag) for view, lag in conn.execute(_LAGS)}
        by_process: dict[UUID, list[Any]] = {}
        for row in rows:
            by_process.setdefault(row[0], []).append(row)
        processes = [_process(minutes) for minutes in by_process.values()]
        processes.sort(key=lambda p: (p.resources is None, p.role, str(p.process_id)))
        return TimingsWindow(seconds, processes, merge(p.timings for p in processes), lags)


def _process(minutes: list[Any]) -> ProcessWindow:
    process_id, role, host, pid, _, resources, alive = minutes[-1]
    timings = merge(
        {name: Timing.from_json(doc) for name, doc in row[4].items()} for row in minutes
    )
    return ProcessWindow(
        process_id, role, host, pid, resources_of(resources) if alive else None, timings
    )
