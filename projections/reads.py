"""Reading the views: tasks by id or by filter (keyset pages), and the fleet."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from projections.rows import BotRow, TaskFilter, TaskRow

TASK_COLUMNS = (
    "task_id, type, priority, capabilities, state, payload, result, error, bot_id, "
    "fencing_token, idempotency_key, submitted_by, submitted_at, assigned_at, started_at, "
    "finished_at, assignment, unroutable, seq, version, position, not_before, schedule_id, "
    "flagged_at"
)
CURSOR_PREFIX = "s"


def encode_cursor(seq: int) -> str:
    return f"{CURSOR_PREFIX}{seq}"


def decode_cursor(cursor: str) -> int:
    digits = cursor[len(CURSOR_PREFIX) :]
    if not cursor.startswith(CURSOR_PREFIX) or not digits.isdigit() or len(digits) > 19:
        raise ValueError("cursor is not one this server gave out")
    return int(digits)


class TaskReads:
    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self.pool = pool

    def get(self, task_id: UUID) -> TaskRow | None:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(f"SELECT {TASK_COLUMNS} FROM tasks_view WHERE task_id = %s", (task_id,))
            row = cur.fetchone()
        return TaskRow(**row) if row else None

    def list(
        self, flt: TaskFilter, *, limit: int, cursor: str | None
    ) -> tuple[list[TaskRow], str | None]:
        where: list[str] = ["seq > %s"]
        params: list[Any] = [decode_cursor(cursor) if cursor else 0]
        for column, value in (
            ("state", flt.state),
            ("type", flt.type),
            ("bot_id", flt.bot_id),
            ("schedule_id", flt.schedule_id),
        ):
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        query = (
            f"SELECT {TASK_COLUMNS} FROM tasks_view WHERE {' AND '.join(where)} "
            "ORDER BY seq LIMIT %s"
        )
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query, [*params, limit + 1])
            rows = [TaskRow(**r) for r in cur.fetchall()]
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1].seq) if more else None


FLEET_QUERY = """
SELECT f.bot_id, f.name, f.capabilities, f.max_concurrency, f.version_label, f.state,
       f.registered_at, f.lost_at, f.lost_reason, f.deregistered_at, f.pool, f.launch_id,
       f.state_reason, f.version, f.position, f.takes_messages,
       COALESCE(h.held, 0) AS held, l.config_version
FROM fleet_view f
LEFT JOIN leases l ON l.holder = f.bot_id
LEFT JOIN (
    SELECT bot_id, count(*) AS held FROM tasks_view
    WHERE state IN ('assigned', 'running') GROUP BY bot_id
) h ON h.bot_id = f.bot_id
"""


class FleetReads:
    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self.pool = pool

    def list(self) -> list[BotRow]:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(FLEET_QUERY + " ORDER BY f.registered_at, f.bot_id")
            return [BotRow(**r) for r in cur.fetchall()]

    def get(self, bot_id: UUID) -> BotRow | None:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(FLEET_QUERY + " WHERE f.bot_id = %s", (bot_id,))
            row = cur.fetchone()
        return BotRow(**row) if row else None
