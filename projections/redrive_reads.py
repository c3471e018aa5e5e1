"""What a bulk re-drive finds: finished tasks (failed, dead or cancelled) by a filter, from
the tasks view, oldest finish first and at most ``limit`` of them.

The view may be a moment behind the log: the hive re-drives only those of the ids it
finds that are still failed, dead or cancelled where the log stands
(``hive.tasks.redrive_found``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg_pool import ConnectionPool

from projections.recordset import given
from store.migrations import Migration

REDRIVE_MIGRATIONS = [
    Migration(
        215,
        "views: finished tasks by state and finish time, for a bulk re-drive",
        """
        CREATE INDEX IF NOT EXISTS tasks_view_state_finished
            ON public.tasks_view (state, finished_at, seq)
            WHERE state IN ('failed', 'dead', 'cancelled');
        """,
    ),
]


@dataclass(frozen=True)
class RedriveFilter:
    states: tuple[str, ...] = ("dead",)  # of failed, dead, cancelled
    type: str | None = None
    error_kind: str | None = None
    finished_since: datetime | None = None  # at or after
    finished_until: datetime | None = None  # before

    def where(self) -> tuple[list[str], list[Any]]:
        """Its conditions on ``tasks_view`` and their parameters."""
        where: list[str] = ["state = ANY(%s)"]
        params: list[Any] = [list(self.states)]
        given(
            where,
            params,
            (
                ("type = %s", self.type),
                ("error_kind = %s", self.error_kind),
                ("finished_at >= %s", self.finished_since),
                ("finished_at < %s", self.finished_until),
            ),
        )
        return where, params


class RedriveReads:
    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self.pool = pool

    def find(self, flt: RedriveFilter, limit: int) -> list[UUID]:
        where, params = flt.where()
        query = (
            f"SELECT task_id FROM tasks_view WHERE {' AND '.join(where)} "
            "ORDER BY finished_at, seq LIMIT %s"
        )
        with self.pool.connection() as conn:
            rows = conn.execute(query, [*params, limit]).fetchall()
        return [row[0] for row in rows]
