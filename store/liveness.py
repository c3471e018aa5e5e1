"""Soft liveness: leases that holders renew by heartbeat. Not events, by design.

A heartbeat every second or two from every bot would flood the log with nothing worth
keeping; what the hive *decides* from a lapsed lease is an event (``Bot.Lost``). Times are
the database's ``now()``, so API and engine processes never disagree through clock skew.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg_pool import ConnectionPool

from store.migrations import Migration

LIVENESS_MIGRATIONS = [
    Migration(
        200,
        "soft state: leases",
        """
        CREATE TABLE IF NOT EXISTS public.leases (
            holder uuid PRIMARY KEY,
            expires_at timestamptz NOT NULL
        );
        CREATE INDEX IF NOT EXISTS leases_expires_at ON public.leases (expires_at);
        """,
    ),
]


class Liveness:
    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self.pool = pool

    def renew(self, holder: UUID, ttl_s: float, config_version: int | None = None) -> datetime:
        """Extend the lease; ``config_version``: the runtime configuration the holder says
        it runs (kept as it was when not said)."""
        with self.pool.connection() as conn:
            row = conn.execute(
                "INSERT INTO leases (holder, expires_at, config_version) "
                "VALUES (%s, now() + make_interval(secs => %s), %s) "
                "ON CONFLICT (holder) DO UPDATE SET expires_at = EXCLUDED.expires_at, "
                "config_version = COALESCE(EXCLUDED.config_version, leases.config_version) "
                "RETURNING expires_at",
                (holder, ttl_s, config_version),
            ).fetchone()
        assert row is not None
        return row[0]  # type: ignore[no-any-return]

    def forget(self, holder: UUID) -> None:
        with self.pool.connection() as conn:
            conn.execute("DELETE FROM leases WHERE holder = %s", (holder,))

    def lapsed(self, holders: list[UUID], grace_s: float) -> list[UUID]:
        """Of ``holders``: those whose lease ran out, or who never renewed within ``grace_s``
        of the database's ``now()`` minus their first sighting (callers pass only holders
        known for at least that long)."""
        if not holders:
            return []
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT h.holder FROM unnest(%s::uuid[]) AS h(holder) "
                "LEFT JOIN leases l ON l.holder = h.holder "
                "WHERE l.expires_at IS NULL OR l.expires_at < now()",
                (holders,),
            ).fetchall()
        return [r[0] for r in rows]
