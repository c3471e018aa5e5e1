"""Snapshots of the views for the in-memory models (``runtime/models.py``).

Each returns the view's position together with the rows a model starts from. They run in
the caller's transaction, which the model opens REPEATABLE READ, so rows and position are
one consistent moment of the view.
"""

from __future__ import annotations

from typing import Any

import psycopg

Rows = list[tuple[Any, ...]]


def positions(conn: psycopg.Connection[Any], views: tuple[str, ...]) -> int:
    """The lowest position of ``views`` (0 for a view that never ran)."""
    found = dict(
        conn.execute(
            "SELECT view, position FROM projection_positions WHERE view = ANY(%s)", (list(views),)
        ).fetchall()
    )
    return min(int(found.get(v, 0)) for v in views)


def live_tasks_and_bots(conn: psycopg.Connection[Any]) -> tuple[int, Rows, Rows]:
    """Unfinished tasks (oldest first) and live bots, from the tasks and fleet views."""
    tasks = conn.execute(
        "SELECT task_id, priority, seq, capabilities, state, bot_id, fencing_token, "
        "version, submitted_at, not_before, type, unroutable IS NOT NULL, "
        "COALESCE(started_at, assigned_at), (retry->>'timeout_s')::float8 "
        "FROM tasks_view WHERE state IN ('pending', 'assigned', 'running') ORDER BY seq"
    ).fetchall()
    bots = conn.execute(
        "SELECT bot_id, capabilities, max_concurrency, version, state, pool, takes_messages "
        "FROM fleet_view WHERE state IN ('ready', 'draining', 'quarantined', 'probing')"
    ).fetchall()
    return positions(conn, ("tasks", "fleet")), tasks, bots


def unfinished_messages(conn: psycopg.Connection[Any]) -> tuple[int, Rows]:
    """Messages not acknowledged or dead, oldest first, from the messages view."""
    rows = conn.execute(
        "SELECT message_id, seq, to_capability, after_id, expires_at, version, state, "
        "bot_id, visible_until FROM messages_view "
        "WHERE state IN ('waiting', 'routed', 'delivered') ORDER BY seq"
    ).fetchall()
    return positions(conn, ("messages",)), rows


def pools_and_open_launches(conn: psycopg.Connection[Any]) -> tuple[int, Rows, Rows]:
    """Every pool's desired size and the launches not closed, from the scaling view."""
    pools = conn.execute("SELECT pool_id, pool, desired, resized_at, version FROM pools_view")
    launches = conn.execute(
        "SELECT launch_id, pool, launcher, state, bot_id, requested_at, version "
        "FROM launches_view WHERE state IN ('requested', 'registered', 'stopping')"
    )
    return positions(conn, ("scaling",)), pools.fetchall(), launches.fetchall()


def learned_performance(
    conn: psycopg.Connection[Any],
) -> tuple[int, Rows, Rows, float | None]:
    """The runs in flight, the learned records and the alpha in force (None: no config
    version seen yet), from the performance view."""
    runs = conn.execute("SELECT task_id, type, bot_id, started_at FROM bot_performance_runs")
    records = conn.execute(
        "SELECT bot_id, type, success, duration_s, samples FROM bot_performance_view"
    )
    alpha = conn.execute("SELECT alpha FROM bot_performance_alpha").fetchone()
    return (
        positions(conn, ("performance",)),
        runs.fetchall(),
        records.fetchall(),
        None if alpha is None else float(alpha[0]),
    )


def log_head(conn: psycopg.Connection[Any]) -> int:
    """The log's last position (0 for an empty log): where a model that needs no snapshot
    starts following."""
    row = conn.execute("SELECT COALESCE(max(notification_id), 0) FROM hive_events").fetchone()
    return int(row[0]) if row else 0
