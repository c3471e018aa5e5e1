"""Reading the views: tasks and bots, by id or by filter (keyset pages)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from domain.bots import LIVE_STATES
from projections.recordset import given
from projections.rows import BOTS_ALL, BOTS_LIVE, BotFilter, BotRow, TaskFilter, TaskRow

TASK_COLUMNS = (
    "task_id, type, priority, capabilities, state, payload, result, error, bot_id, "
    "fencing_token, idempotency_key, submitted_by, submitted_at, assigned_at, started_at, "
    "finished_at, assignment, unroutable, seq, version, position, not_before, schedule_id, "
    "flagged_at, attempt, series, error_kind, dead_reason, retry"
)
CURSOR_PREFIX = "s"


def encode_cursor(seq: int, prefix: str = CURSOR_PREFIX) -> str:
    return f"{prefix}{seq}"


def decode_cursor(cursor: str, prefix: str = CURSOR_PREFIX) -> int:
    digits = cursor[len(prefix) :]
    if not cursor.startswith(prefix) or not digits.isdigit() or len(digits) > 19:
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
        given(
            where,
            params,
            (
                ("state = %s", flt.state),
                ("type = %s", flt.type),
                ("bot_id = %s", flt.bot_id),
                ("schedule_id = %s", flt.schedule_id),
                ("error_kind = %s", flt.error_kind),
                ("finished_at >= %s", flt.finished_since),
                ("finished_at < %s", flt.finished_until),
            ),
        )
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
       f.state_reason, f.version, f.position, f.takes_messages, f.state_by, f.breaker,
       f.breaker_evidence, f.breaker_cooldown_s, f.breaker_probe_at,
       COALESCE(h.held, 0) AS held, l.config_version
FROM fleet_view f
LEFT JOIN leases l ON l.holder = f.bot_id
LEFT JOIN (
    SELECT bot_id, count(*) AS held FROM tasks_view
    WHERE state IN ('assigned', 'running') GROUP BY bot_id
) h ON h.bot_id = f.bot_id
"""


# Live: registered, neither lost nor deregistered, and its lease current. The lease too, so
# that the bots of a hive killed a moment ago are not shown beside their successors while
# the reaper has not yet marked them lost.
LIVE_BOT = "f.state = ANY(%s) AND l.expires_at > now()"
LIVE_BOT_STATES = sorted(str(s) for s in LIVE_STATES)
BOT_ORDER = "f.registered_at, f.bot_id"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def encode_bot_cursor(row: BotRow) -> str:
    """The place of ``row`` in registration order: (registered_at, bot_id)."""
    return f"r{(row.registered_at - EPOCH) // MICROSECOND}.{row.bot_id.hex}"


def decode_bot_cursor(cursor: str) -> tuple[datetime, UUID]:
    micros, dot, bot = cursor[1:].partition(".")
    if not (cursor.startswith("r") and dot and micros.isdigit() and len(micros) <= 18):
        raise ValueError("cursor is not one this server gave out")
    try:
        return EPOCH + int(micros) * MICROSECOND, UUID(hex=bot)
    except (ValueError, OverflowError):
        raise ValueError("cursor is not one this server gave out") from None


class FleetReads:
    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self.pool = pool

    def list(
        self, flt: BotFilter, *, limit: int, cursor: str | None
    ) -> tuple[list[BotRow], str | None]:
        """One keyset page in registration order, and the cursor of the next; ValueError
        on a bad cursor."""
        where: list[str] = []
        params: list[Any] = []
        if cursor is not None:
            where.append("(f.registered_at, f.bot_id) > (%s, %s)")
            params.extend(decode_bot_cursor(cursor))
        if flt.state == BOTS_LIVE:
            where.append(LIVE_BOT)
            params.append(LIVE_BOT_STATES)
        elif flt.state != BOTS_ALL:
            where.append("f.state = %s")
            params.append(flt.state)
        given(
            where,
            params,
            (
                ("%s = ANY(f.capabilities)", flt.capability),
                ("f.pool = %s", flt.pool),
                ("f.name = %s", flt.name),
            ),
        )
        query = FLEET_QUERY + (f" WHERE {' AND '.join(where)}" if where else "")
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(f"{query} ORDER BY {BOT_ORDER} LIMIT %s", [*params, limit + 1])
            rows = [BotRow(**r) for r in cur.fetchall()]
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, encode_bot_cursor(rows[-1]) if more else None

    def get(self, bot_id: UUID) -> BotRow | None:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(FLEET_QUERY + " WHERE f.bot_id = %s", (bot_id,))
            row = cur.fetchone()
        return BotRow(**row) if row else None
