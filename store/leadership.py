"""One leader per control loop across engines: a session-level PostgreSQL advisory lock.

The lock lives as long as the connection that took it: kill -9 the leader and PostgreSQL
releases it when the connection closes, so another engine takes over. Every decision a
leader makes is still safe to repeat (aggregate versions guard each write), so a brief
overlap during a hand-over costs work, never correctness.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading

import psycopg

log = logging.getLogger(__name__)


def lock_key(name: str) -> int:
    return int.from_bytes(
        hashlib.sha256(f"apiary:{name}".encode()).digest()[:8], "big", signed=True
    )


def application_name(loop: str) -> str:
    """How a leadership connection shows in pg_stat_activity: which loop, which process."""
    return f"apiary-lead {loop} {os.getpid()}"


class Leadership:
    def __init__(self, conninfo: str, name: str) -> None:
        self.conninfo = conninfo
        self.name = name
        self.key = lock_key(name)
        self._conn: psycopg.Connection | None = None  # type: ignore[type-arg]
        self._lock = threading.Lock()
        self._leading = False

    def held(self) -> bool:
        """Take the lead if free; True while we hold it (checks the connection is alive)."""
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(
                        self.conninfo,
                        autocommit=True,
                        connect_timeout=5,
                        application_name=application_name(self.name),
                    )
                    self._leading = False
                if self._leading:
                    self._conn.execute("SELECT 1")
                    return True
                row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
                self._leading = bool(row and row[0])
                if self._leading:
                    log.info("took the lead", extra={"action": "leader_elected", "loop": self.name})
                return self._leading
            except psycopg.Error:
                self._drop()
                return False

    @property
    def leading(self) -> bool:
        """Whether it held the lead when last asked (no round trip)."""
        return self._leading

    def release(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._leading = False
