"""When each API key was last used: soft state beside the log, like liveness.

Writing an event (or a row) per request would put a write on every request's hot path.
Each API process notes its keys' uses in memory instead (``api.auth.KeyRing``) and
writes what it noted at most every ``FLUSH_S`` seconds, in one statement; a time only
ever moves forward, so processes writing the same key in any order agree. So a last use
is known to within ``FLUSH_S`` (and one lost in a crash of a process is its last few
seconds). Not rebuilt by replay: nothing decides from it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from store.health import DatabaseUnavailable
from store.migrations import Migration

log = logging.getLogger(__name__)

FLUSH_S = 5.0

KEY_USE_MIGRATIONS = [
    Migration(
        205,
        "soft state: when each API key was last used",
        """
        CREATE TABLE IF NOT EXISTS public.key_use (
            key_id uuid PRIMARY KEY,
            last_used_at timestamptz NOT NULL
        );
        """,
    ),
]

RECORD = (
    "INSERT INTO key_use (key_id, last_used_at) "
    "SELECT * FROM unnest(%s::uuid[], %s::timestamptz[]) "
    "ON CONFLICT (key_id) DO UPDATE "
    "SET last_used_at = GREATEST(key_use.last_used_at, EXCLUDED.last_used_at)"
)


class KeyUse:
    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self.pool = pool

    def record(self, uses: Mapping[UUID, datetime]) -> None:
        """Write the noted uses (one statement, however many keys)."""
        if not uses:
            return
        with self.pool.connection() as conn:
            conn.execute(RECORD, (list(uses), list(uses.values())))

    def last_used(self, key_id: UUID) -> datetime | None:
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT last_used_at FROM key_use WHERE key_id = %s", (key_id,)
            ).fetchone()
        return None if row is None else row[0]  # type: ignore[no-any-return]


class KeyUseWriter:
    """Writes the uses a process noted (``take``) every ``interval`` seconds, and once more
    when it stops. A write that fails (the database away) is dropped: the next use of each
    key notes it again."""

    def __init__(
        self,
        key_use: KeyUse,
        take: Callable[[], Mapping[UUID, datetime]],
        interval: float = FLUSH_S,
    ) -> None:
        self.key_use = key_use
        self.take = take
        self.interval = interval

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            self.write()
        self.write()

    def write(self) -> None:
        uses = self.take()
        try:
            self.key_use.record(uses)
        except DatabaseUnavailable:  # a known outage (the gate logs it once): nothing new
            log.debug("key uses not written: the database is away", extra={"keys": len(uses)})
        except (psycopg.Error, PoolTimeout) as e:
            log.warning(
                "key uses not written",
                extra={"action": "key_use_lost", "keys": len(uses), "error": type(e).__name__},
            )
