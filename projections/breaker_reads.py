"""What the engine's circuit breakers start from: each live bot's breaker as the fleet
view has it, the tasks each bot holds, and how far the two views have read the log."""

from __future__ import annotations

from typing import Any

import psycopg

from projections.live_reads import positions

Rows = list[tuple[Any, ...]]


def breakers_and_holders(conn: psycopg.Connection[Any]) -> tuple[int, int, Rows, Rows]:
    """In the caller's snapshot: the fleet view's position, the tasks view's, the live
    bots' breakers (the cooldown only of a bot its breaker holds), and the held tasks,
    newest assignment first."""
    bots = conn.execute(
        "SELECT bot_id, version, state, "
        "CASE WHEN breaker = 'closed' THEN NULL ELSE breaker_cooldown_s END, breaker_probe_at, "
        "max_concurrency "
        "FROM fleet_view WHERE state IN ('ready', 'draining', 'quarantined', 'probing')"
    ).fetchall()
    held = conn.execute(
        "SELECT task_id, bot_id FROM tasks_view WHERE state IN ('assigned', 'running') "
        "AND bot_id IS NOT NULL ORDER BY assigned_at DESC"
    ).fetchall()
    return positions(conn, ("fleet",)), positions(conn, ("tasks",)), bots, held
