"""Reading the incidents view: a page of incidents, one with its timeline, the counts
``/metrics`` shows, what the detector starts from, and how far each view has read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from projections.live_reads import positions
from projections.reads import decode_cursor, encode_cursor
from projections.recordset import given

COLUMNS = (
    "incident_id",
    "seq",
    "rule",
    "subject",
    "episode",
    "state",
    "severity",
    "summary",
    "evidence",
    "total",
    "note",
    "opened_at",
    "updated_at",
    "acknowledged_at",
    "acknowledged_by",
    "resolved_at",
    "resolved_by",
    "resolution",
    "version",
    "position",
)
SELECT = f"SELECT {', '.join(COLUMNS)} FROM incidents_view"
CURSOR_PREFIX = "i"


@dataclass(frozen=True)
class IncidentRow:
    incident_id: UUID
    seq: int
    rule: str
    subject: str
    episode: int
    state: str
    severity: str
    summary: str
    evidence: list[dict[str, Any]]
    total: int
    note: str | None
    opened_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str | None
    version: int
    position: int


@dataclass(frozen=True)
class TimelineRow:
    version: int
    position: int
    event: str
    actor: str
    at: datetime
    detail: dict[str, Any]


@dataclass(frozen=True)
class IncidentFilter:
    state: str | None = None
    rule: str | None = None
    severity: str | None = None


class IncidentReads:
    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self.pool = pool

    def get(self, incident_id: UUID) -> IncidentRow | None:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(f"{SELECT} WHERE incident_id = %s", (incident_id,)).fetchone()
        return IncidentRow(**row) if row else None

    def timeline(self, incident_id: UUID) -> list[TimelineRow]:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(
                "SELECT version, position, event, actor, at, detail FROM incident_timeline "
                "WHERE incident_id = %s ORDER BY version",
                (incident_id,),
            ).fetchall()
        return [TimelineRow(**r) for r in rows]

    def page(
        self, f: IncidentFilter, *, limit: int, cursor: str | None
    ) -> tuple[list[IncidentRow], str | None]:
        """One keyset page, newest first; ValueError on a bad cursor."""
        where: list[str] = ["TRUE"]
        params: list[Any] = []
        before = decode_cursor(cursor, CURSOR_PREFIX) if cursor else None
        given(
            where,
            params,
            [
                ("seq < %s", before),
                ("state = %s", f.state),
                ("rule = %s", f.rule),
                ("severity = %s", f.severity),
            ],
        )
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                f"{SELECT} WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT %s",
                [*params, limit + 1],
            )
            rows = [IncidentRow(**r) for r in cur.fetchall()]
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1].seq, CURSOR_PREFIX) if more else None

    def counts(self) -> list[tuple[str, str, str, int]]:
        """(rule, severity, state, how many): every incident ever opened."""
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT rule, severity, state, count(*) FROM incidents_view "
                "GROUP BY rule, severity, state ORDER BY rule, severity, state"
            ).fetchall()
        return [(r, s, st, int(n)) for r, s, st, n in rows]

    def view_positions(self) -> dict[str, int]:
        """How far each view has read the log."""
        with self.pool.connection() as conn:
            rows = conn.execute("SELECT view, position FROM projection_positions").fetchall()
        return {view: int(position) for view, position in rows}


Rows = list[tuple[Any, ...]]


@dataclass(frozen=True)
class DetectorStart:
    """What the detector starts from, in one snapshot."""

    tasks_position: int
    incidents_position: int
    unfinished: Rows  # (task_id, type) of the tasks not finished
    unresolved: Rows  # (incident_id, rule, subject, severity, summary, total, opened_at,
    #                    updated_at, version) of the incidents not resolved
    episodes: Rows  # (rule, subject, the latest episode)


def detector_start(conn: psycopg.Connection[Any]) -> DetectorStart:
    """In the caller's snapshot: the tasks and incidents views' positions, the unfinished
    tasks' types, the incidents not resolved and each (rule, subject)'s latest episode."""
    unfinished = conn.execute(
        "SELECT task_id, type FROM tasks_view WHERE state IN ('pending', 'assigned', 'running')"
    ).fetchall()
    unresolved = conn.execute(
        "SELECT incident_id, rule, subject, severity, summary, total, opened_at, updated_at, "
        "version FROM incidents_view WHERE state <> 'resolved'"
    ).fetchall()
    episodes = conn.execute(
        "SELECT rule, subject, max(episode) FROM incidents_view GROUP BY rule, subject"
    ).fetchall()
    return DetectorStart(
        positions(conn, ("tasks",)),
        positions(conn, ("incidents",)),
        unfinished,
        unresolved,
        episodes,
    )
