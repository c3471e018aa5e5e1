"""The drain: a backlog of no-op tasks done by a fleet of bot processes launched at once,
timed from the database (server-side timestamps): `make bench`'s throughput figure."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import psycopg

from tests.e2e.harness import Bot, Hive, start_bot
from tests.waiting import wait_for

Launch = Callable[..., Bot]  # as ``start_bot``: (hive, key, name, *arguments) -> Bot


def drain(
    hive: Hive,
    client: httpx.Client,
    enrol: str,
    tasks: int,
    bots: int,
    concurrency: int,
    launch: Launch = start_bot,
) -> dict[str, Any]:
    """``tasks`` no-op tasks (payload ``{"n": i}``) submitted, then ``bots`` bots launched
    with ``launch`` (by default `apiary bot`) do them all."""
    for start in range(0, tasks, 1000):
        batch = [
            {"type": "noop", "payload": {"n": i}} for i in range(start, min(tasks, start + 1000))
        ]
        client.post("/v1/tasks/batch", json={"tasks": batch}).raise_for_status()
    with psycopg.connect(hive.db_url, autocommit=True) as conn:
        launched_at = conn.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]
    launched = time.perf_counter()
    fleet = [
        launch(
            hive,
            enrol,
            f"drain-{i}",
            "--capabilities",
            "noop",
            "--max-concurrency",
            str(concurrency),
        )
        for i in range(bots)
    ]
    with psycopg.connect(hive.db_url) as conn:

        def done() -> bool:
            row = conn.execute(
                "SELECT count(*) FROM tasks_view WHERE type = 'noop' AND state = 'succeeded'"
            ).fetchone()
            return bool(row and row[0] >= tasks)

        wait_for(done, timeout=600, what="the drain", interval=0.05)
        wall = time.perf_counter() - launched
        span, startup = conn.execute(
            "SELECT extract(epoch FROM max(finished_at) - min(assigned_at)), "
            "extract(epoch FROM min(assigned_at) - %s) FROM tasks_view WHERE type = 'noop'",
            (launched_at,),
        ).fetchone()  # type: ignore[misc]
        # The views the drain's events go to (a view with nothing to apply moves its stored
        # position up to a second late, by design: projections/runner.py's IDLE_FLUSH_S).
        last = conn.execute(
            "SELECT max(notification_id) FROM hive_events WHERE topic LIKE 'domain.tasks:%%'"
        ).fetchone()[0]  # type: ignore[index]

        def views_caught_up() -> bool:
            row = conn.execute(
                "SELECT min(position) FROM projection_positions "
                "WHERE view IN ('tasks', 'stages', 'performance')"
            ).fetchone()
            return bool(row and row[0] >= last)

        wait_for(views_caught_up, timeout=120, what="the views caught up", interval=0.01)
        lag = conn.execute(
            "SELECT extract(epoch FROM clock_timestamp() - max(finished_at)) FROM tasks_view"
        ).fetchone()[0]  # type: ignore[index]
    return {
        "fleet": fleet,
        "tasks": tasks,
        "wall_s": wall,
        "span_s": float(span),
        "per_s_span": tasks / float(span),
        "per_s_wall": tasks / wall,
        "startup_s": float(startup),  # launching the bots -> the first assignment
        "views_lag_s": float(lag),  # the last finish -> the task views have applied it
    }
