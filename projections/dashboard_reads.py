"""What the dashboard shows, read from the views (never from the events table).

The overview: tasks by state and the pending queue by type and priority come from
``task_counts`` (a few rows the tasks view keeps with each page: no scan of
``tasks_view``); the fleet by state and version label from ``fleet_view``; the most recent
failures from the newest entries of the ``(state, seq)`` index for ``failed``.

The task list, newest first (keyset pages down the ``seq`` indexes); the dead letters,
newest dead first (keyset pages down ``tasks_view_dead``, a partial index of the dead
tasks by when they died), with the ids a bulk re-drive of a filter takes; each schedule's
latest runs with their attempts (down ``tasks_view_schedule_seq``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from projections.redrive_reads import RedriveFilter

BY_STATE = "SELECT state, sum(n)::bigint AS n FROM task_counts GROUP BY state"
QUEUE = (
    "SELECT type, priority, n FROM task_counts WHERE state = 'pending' ORDER BY type, priority DESC"
)
FLEET = (
    "SELECT state, version_label, count(*) AS n FROM fleet_view "
    "WHERE state IN ('ready', 'draining', 'quarantined', 'probing') GROUP BY state, version_label "
    "ORDER BY state, version_label"
)
FAILURES = (
    "SELECT task_id, type, error, bot_id, finished_at FROM tasks_view "
    "WHERE state = 'failed' ORDER BY seq DESC LIMIT %s"
)
POSITIONS = "SELECT view, position FROM projection_positions ORDER BY view"
# Per live bot: its learned success rate over all types (weighted by samples) and the
# tasks it holds now (a few, newest first), from the performance and tasks views.
BOT_DETAILS = """
SELECT f.bot_id,
       (SELECT sum(p.success * p.samples) / nullif(sum(p.samples), 0)
        FROM bot_performance_view p WHERE p.bot_id = f.bot_id) AS success_rate,
       ARRAY(SELECT t.task_id FROM tasks_view t
             WHERE t.bot_id = f.bot_id AND t.state IN ('assigned', 'running')
             ORDER BY t.seq DESC LIMIT %s) AS current_tasks
FROM fleet_view f WHERE f.state IN ('ready', 'draining', 'quarantined', 'probing')
"""


LISTED = (
    "task_id, type, priority, state, bot_id, submitted_at, finished_at, error, error_kind, "
    "attempt, series, seq"
)
DEAD = f"{LISTED}, dead_reason"
LATEST_RUNS = """
SELECT s.id AS schedule_id, r.task_id, r.state, r.attempt, r.series, r.submitted_at
FROM unnest(%s::uuid[]) AS s(id),
LATERAL (SELECT task_id, state, attempt, series, submitted_at, seq FROM tasks_view
         WHERE schedule_id = s.id ORDER BY seq DESC LIMIT %s) r
ORDER BY s.id, r.seq DESC
"""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class ListedTasks:
    """Which tasks the task list shows."""

    state: str | None = None
    type: str | None = None


def newer_cursor(seq: int) -> str:
    return f"n{seq}"


def before_seq(cursor: str) -> int:
    digits = cursor[1:]
    if not cursor.startswith("n") or not digits.isdigit() or len(digits) > 19:
        raise ValueError("cursor is not one this server gave out")
    return int(digits)


def dead_cursor(finished_at: datetime, seq: int) -> str:
    """The place of a dead letter in newest-dead-first order: (finished_at, seq)."""
    return f"d{(finished_at - EPOCH) // MICROSECOND}.{seq}"


def before_dead(cursor: str) -> tuple[datetime, int]:
    micros, dot, seq = cursor[1:].partition(".")
    if not (
        cursor.startswith("d")
        and dot
        and micros.isdigit()
        and len(micros) <= 18
        and seq.isdigit()
        and len(seq) <= 19
    ):
        raise ValueError("cursor is not one this server gave out")
    try:
        return EPOCH + int(micros) * MICROSECOND, int(seq)
    except OverflowError:
        raise ValueError("cursor is not one this server gave out") from None


class DashboardReads:
    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self.pool = pool

    def overview(self, failures: int = 10) -> dict[str, Any]:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            by_state = {r["state"]: r["n"] for r in cur.execute(BY_STATE).fetchall()}
            queue = cur.execute(QUEUE).fetchall()
            fleet = cur.execute(FLEET).fetchall()
            failed = cur.execute(FAILURES, (failures,)).fetchall()
            positions = {r["view"]: r["position"] for r in cur.execute(POSITIONS).fetchall()}
        return {
            "tasks_by_state": by_state,
            "queue": queue,
            "fleet": fleet,
            "recent_failures": failed,
            "positions": positions,
        }

    def bot_details(self, tasks: int = 5) -> dict[Any, dict[str, Any]]:
        """Per live bot: ``success_rate`` (None before any outcome) and ``current_tasks``."""
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(BOT_DETAILS, (tasks,)).fetchall()
        return {r.pop("bot_id"): r for r in rows}

    def tasks(
        self, flt: ListedTasks, *, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of tasks, newest first; ValueError on a cursor this server did not give."""
        where: list[str] = ["true"]
        params: list[Any] = []
        if cursor:
            where.append("seq < %s")
            params.append(before_seq(cursor))
        for column, value in (("state", flt.state), ("type", flt.type)):
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        query = (
            f"SELECT {LISTED} FROM tasks_view WHERE {' AND '.join(where)} "
            "ORDER BY seq DESC LIMIT %s"
        )
        rows = self._page(query, [*params, limit + 1])
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, newer_cursor(rows[-1]["seq"]) if more else None

    def dead_letters(
        self, flt: RedriveFilter, *, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of dead tasks, the newest dead first; ValueError on a bad cursor."""
        where, params = flt.where()
        if cursor:
            where.append("(finished_at, seq) < (%s, %s)")
            params.extend(before_dead(cursor))
        query = (
            f"SELECT {DEAD} FROM tasks_view WHERE {' AND '.join(where)} "
            "ORDER BY finished_at DESC, seq DESC LIMIT %s"
        )
        rows = self._page(query, [*params, limit + 1])
        more = len(rows) > limit
        rows = rows[:limit]
        last = rows[-1] if rows else None
        return rows, dead_cursor(last["finished_at"], last["seq"]) if more and last else None

    def latest_runs(
        self, schedule_ids: Sequence[UUID], last: int
    ) -> dict[UUID, list[dict[str, Any]]]:
        """Per schedule, its ``last`` runs (tasks), newest first, each with its state and
        its attempt and series."""
        runs: dict[UUID, list[dict[str, Any]]] = {}
        for row in self._page(LATEST_RUNS, [list(schedule_ids), last]):
            runs.setdefault(row.pop("schedule_id"), []).append(row)
        return runs

    def _page(self, query: str, params: list[Any]) -> list[dict[str, Any]]:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(query, params).fetchall()
