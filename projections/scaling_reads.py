"""Reading the scaling view: each pool's desired size, its bots by state, its launches."""

from __future__ import annotations

from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

POOLS = """
SELECT p.pool, p.desired, p.reason, p.inputs, p.resized_at
FROM pools_view p WHERE p.pool = ANY(%s)
"""
BOTS = """
SELECT pool, state, count(*) AS n FROM fleet_view
WHERE pool = ANY(%s) AND state IN ('ready', 'draining', 'quarantined', 'probing')
GROUP BY pool, state
"""
LAUNCHES = """
SELECT launch_id, pool, launcher, state, bot_id, reason, exit_code, requested_at,
       registered_at, closed_at
FROM launches_view WHERE pool = %s ORDER BY requested_at DESC, launch_id LIMIT %s
"""


class ScalingReads:
    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self.pool = pool

    def pools(self, names: list[str]) -> dict[str, dict[str, Any]]:
        """Per pool name: desired, reason, inputs, resized_at and bots (state -> count)."""
        out: dict[str, dict[str, Any]] = {
            n: {"desired": 0, "reason": None, "inputs": None, "resized_at": None, "bots": {}}
            for n in names
        }
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            for row in cur.execute(POOLS, (names,)).fetchall():
                out[row.pop("pool")].update(row)
            for row in cur.execute(BOTS, (names,)).fetchall():
                out[row["pool"]]["bots"][row["state"]] = row["n"]
        return out

    def launches(self, pool: str, limit: int) -> list[dict[str, Any]]:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(LAUNCHES, (pool, limit)).fetchall()
