"""What the dashboard's overview shows, read from the views (never from the events table).

Counts come from the views' indexes: tasks by state (the ``(state, seq)`` index), the
pending queue by type and priority, the fleet by state and version label, and the most
recent failures (the newest entries of the ``(state, seq)`` index for ``failed``).
"""

from __future__ import annotations

from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

BY_STATE = "SELECT state, count(*) AS n FROM tasks_view GROUP BY state"
QUEUE = (
    "SELECT type, priority, count(*) AS n FROM tasks_view WHERE state = 'pending' "
    "GROUP BY type, priority ORDER BY type, priority DESC"
)
FLEET = (
    "SELECT state, version_label, count(*) AS n FROM fleet_view "
    "WHERE state IN ('ready', 'draining', 'quarantined') GROUP BY state, version_label "
    "ORDER BY state, version_label"
)
FAILURES = (
    "SELECT task_id, type, error, bot_id, finished_at FROM tasks_view "
    "WHERE state = 'failed' ORDER BY seq DESC LIMIT %s"
)
POSITIONS = "SELECT view, position FROM projection_positions ORDER BY view"


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
