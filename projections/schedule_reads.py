"""Reading the schedules view: one schedule, a page of them, the scheduler's timetable, and
for the dashboard, each schedule's latest runs by state (the tasks view's schedule index)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from projections.reads import decode_cursor, encode_cursor
from projections.rows import ScheduleRow
from projections.schedules_view import COLUMNS

SELECT = f"SELECT {', '.join(COLUMNS)} FROM schedules_view"


@dataclass(frozen=True)
class Timetable:
    """What the scheduler needs to know of a schedule to know when to look at it."""

    version: int
    active: bool
    next_tick: datetime | None
    buffered: bool
    last_task_id: UUID | None


class ScheduleReads:
    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self.pool = pool

    def get(self, schedule_id: UUID) -> ScheduleRow | None:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(f"{SELECT} WHERE schedule_id = %s", (schedule_id,))
            row = cur.fetchone()
        return ScheduleRow(**row) if row else None

    def list(
        self, state: str | None, *, limit: int, cursor: str | None
    ) -> tuple[list[ScheduleRow], str | None]:
        """One keyset page, oldest first; ValueError on a bad cursor."""
        where: list[str] = ["seq > %s"]
        params: list[Any] = [decode_cursor(cursor) if cursor else 0]
        if state is not None:
            where.append("state = %s")
            params.append(state)
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                f"{SELECT} WHERE {' AND '.join(where)} ORDER BY seq LIMIT %s", [*params, limit + 1]
            )
            rows = [ScheduleRow(**r) for r in cur.fetchall()]
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1].seq) if more else None

    def timetable(self) -> dict[UUID, Timetable]:
        """Every schedule not deleted, with when it next needs looking at."""
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT schedule_id, version, state, next_tick, buffered_tick, last_task_id "
                "FROM schedules_view WHERE state <> 'deleted'"
            ).fetchall()
        return {
            schedule_id: Timetable(
                version, state == "active", next_tick, buffered is not None, last
            )
            for schedule_id, version, state, next_tick, buffered, last in rows
        }

    def runs_by_state(self, schedule_ids: Sequence[UUID], last: int) -> dict[UUID, dict[str, int]]:
        """Per schedule, its ``last`` runs (tasks) by state: bounded however long it ran."""
        runs: dict[UUID, dict[str, int]] = {}
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT s.id, r.state, count(*) FROM unnest(%s::uuid[]) AS s(id), "
                "LATERAL (SELECT state FROM tasks_view WHERE schedule_id = s.id "
                "ORDER BY seq DESC LIMIT %s) r GROUP BY s.id, r.state",
                (list(schedule_ids), last),
            ).fetchall()
        for schedule_id, state, n in rows:
            runs.setdefault(schedule_id, {})[state] = n
        return runs
