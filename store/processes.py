"""Soft liveness of the hive's own processes (api and engine roles), as bots have leases.

Each process renews its row every ``BEAT_S``: its role, where it runs, which version of the
runtime configuration it has applied, which control loops it runs and which of them it
leads now. A row not renewed for ``GONE_AFTER_S`` is a process gone (killed, or cut off
from the database). Readiness and the dashboard read the hive's health from here, so
every process tells the same story: whether an engine runs, and which loops have a
leader. Times are the database's ``now()``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb
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
    Migration(
        231,
        "soft state: what each process uses (CPU, memory, threads, pools), on its beat",
        "ALTER TABLE public.processes ADD COLUMN IF NOT EXISTS resources jsonb;",
    ),
]


@dataclass(frozen=True)
class PoolUse:
    """One connection pool of a process, as psycopg_pool counts it: connections open
    (``size``) and idle (``available``), its ceiling, clients waiting now; and since it
    opened, requests served, those that had to wait, and their total wait."""

    name: str
    size: int
    available: int
    max_size: int
    waiting: int
    requests: int
    queued: int
    wait_ms: int


@dataclass(frozen=True)
class Resources:
    """What a process uses, sampled at its beat: CPU seconds since it started and its
    share of one core since the last beat (1.0: a core's worth), resident memory, Python
    threads, and each of its connection pools."""

    cpu_s: float
    cpu_share: float
    rss_bytes: int
    threads: int
    pools: tuple[PoolUse, ...]

    @property
    def connections(self) -> int:
        """Connections its pools hold open."""
        return sum(p.size for p in self.pools)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Resources:
        pools = tuple(PoolUse(**p) for p in doc["pools"])
        return cls(doc["cpu_s"], doc["cpu_share"], doc["rss_bytes"], doc["threads"], pools)


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
    resources: Resources | None = None  # None: a process that has not sampled them yet


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
    resources: Resources | None = None


class Processes:
    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self.pool = pool

    def beat(self, b: Beat) -> None:
        with self.pool.connection() as conn:
            conn.execute(
                "INSERT INTO processes "
                "(process_id, role, host, pid, config_version, runs, leads, resources) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (process_id) DO UPDATE SET "
                "seen_at = now(), config_version = EXCLUDED.config_version, "
                "runs = EXCLUDED.runs, leads = EXCLUDED.leads, resources = EXCLUDED.resources",
                (
                    b.process_id,
                    b.role,
                    b.host,
                    b.pid,
                    b.config_version,
                    b.runs,
                    b.leads,
                    None if b.resources is None else Jsonb(b.resources.to_json()),
                ),
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
                "runs, leads, resources FROM processes "
                "WHERE seen_at >= now() - make_interval(secs => %s) ORDER BY started_at",
                (within_s,),
            ).fetchall()
        return [
            ProcessRow(id_, role, host, pid, started, seen, version, runs, leads, resources_of(r))
            for id_, role, host, pid, started, seen, version, runs, leads, r in rows
        ]


def resources_of(doc: dict[str, Any] | None) -> Resources | None:
    return None if doc is None else Resources.from_json(doc)


def health_of(processes: list[ProcessRow]) -> dict[str, str]:
    """The hive's checks from its processes: an engine runs, and every loop that the
    engines run has a leader."""
    engines = [p for p in processes if p.role in ("all", "engine")]
    checks = {"engine": "ok" if engines else "no engine process is running"}
    led = {loop for p in engines for loop in p.leads}
    for loop in sorted({loop for p in engines for loop in p.runs}):
        checks[f"leader:{loop}"] = "ok" if loop in led else "no leader"
    return checks
