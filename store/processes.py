"""Soft liveness of the hive's own processes (api and engine roles), as bots have leases.

Each process renews its row every ``BEAT_S``: its role, where it runs, which version of the
runtime configuration it has applied, which control loops it runs and which of them it
leads now. A row not renewed for ``GONE_AFTER_S`` is a process gone (killed, or cut off
from the database). Readiness and the dashboard read the hive's health from here, so
every process tells the same story: whether an engine runs, and which loops have a
leader. Times are the database's ``now()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg_pool import ConnectionPool

from store.migrations import Migration

BEAT_S = 0.5
GONE_AFTER_S = 3.0

PROCESS_MIGRATIONS = [
    Migration(
        201,
        "soft state: the hive's processes, and the config version each bot runs",
        """
        CREATE TABLE IF NOT EXISTS public.processes (
            process_id uuid PRIMARY KEY,
            role text NOT NULL,
            host text NOT NULL,
            pid integer NOT NULL,
            started_at timestamptz NOT NULL DEFAULT now(),
            seen_at timestamptz NOT NULL DEFAULT now(),
            config_version integer NOT NULL,
            runs text[] NOT NULL,
            leads text[] NOT NULL
        );
        CREATE INDEX IF NOT EXISTS processes_seen_at ON public.processes (seen_at);
        ALTER TABLE public.leases ADD COLUMN IF NOT EXISTS config_version integer;
        """,
    ),
]


@dataclass(frozen=True)
class ProcessRow:
    process_id: UUID
    role: str
    host: str
    pid: int
    started_at: datetime
    seen_at: datetime
    config_version: int
    runs: list[str]
    leads: list[str]


@dataclass(frozen=True)
class Beat:
    """What a process says of itself each time."""

    process_id: UUID
    role: str
    host: str
    pid: int
    config_version: int
    runs: list[str]
    leads: list[str]


class Processes:
    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self.pool = pool

    def beat(self, b: Beat) -> None:
        with self.pool.connection() as conn:
            conn.execute(
                "INSERT INTO processes "
                "(process_id, role, host, pid, config_version, runs, leads) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (process_id) DO UPDATE SET "
                "seen_at = now(), config_version = EXCLUDED.config_version, "
                "runs = EXCLUDED.runs, leads = EXCLUDED.leads",
                (b.process_id, b.role, b.host, b.pid, b.config_version, b.runs, b.leads),
            )

    def forget(self, process_id: UUID) -> None:
        with self.pool.connection() as conn:
            conn.execute("DELETE FROM processes WHERE process_id = %s", (process_id,))

    def live(self, within_s: float = GONE_AFTER_S) -> list[ProcessRow]:
        """The processes heard from within ``within_s``, oldest first; older rows (a
        killed process leaves one) are cleared on the way."""
        with self.pool.connection() as conn:
            conn.execute(
                "DELETE FROM processes WHERE seen_at < now() - make_interval(secs => %s)",
                (max(within_s * 20, 60.0),),
            )
            rows = conn.execute(
                "SELECT process_id, role, host, pid, started_at, seen_at, config_version, "
                "runs, leads FROM processes "
                "WHERE seen_at >= now() - make_interval(secs => %s) ORDER BY started_at",
                (within_s,),
            ).fetchall()
        return [ProcessRow(*r) for r in rows]


def health_of(processes: list[ProcessRow]) -> dict[str, str]:
    """The hive's checks from its processes: an engine runs, and every loop that the
    engines run has a leader."""
    engines = [p for p in processes if p.role in ("all", "engine")]
    checks = {"engine": "ok" if engines else "no engine process is running"}
    led = {loop for p in engines for loop in p.leads}
    for loop in sorted({loop for p in engines for loop in p.runs}):
        checks[f"leader:{loop}"] = "ok" if loop in led else "no leader"
    return checks
