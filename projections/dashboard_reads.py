"""What the dashboard's overview shows, read from the views (never from the events table).

Tasks by state and the pending queue by type and priority come from ``task_counts`` (a
few rows the tasks view keeps with each page: no scan of ``tasks_view``); the fleet by
state and version label from ``fleet_view``; the most recent failures from the newest
entries of the ``(state, seq)`` index for ``failed``.
"""

from __future__ import annotations

from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

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
