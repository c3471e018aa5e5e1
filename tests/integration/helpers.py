"""Shared moves of the integration tests: a hive on a test database, view snapshots."""

from __future__ import annotations

from typing import Any

import psycopg

from api.bootstrap import open_hive
from api.settings import Settings
from domain.hive import Hive

VIEW_TABLES = (
    "tasks_view",
    "task_counts",
    "fleet_view",
    "schedules_view",
    "bot_performance_view",
    "bot_performance_runs",
    "stage_open_tasks",
    "stage_histograms",
    "stage_totals",
    "stage_minutes",
)


def hive_on(url: str, **settings: Any) -> Hive:
    return open_hive(url, Settings(**settings))


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every view, in a stable order, with the views' positions."""
    with psycopg.connect(url) as conn:
        out = {
            t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in VIEW_TABLES
        }
        out["positions"] = conn.execute(
            "SELECT view, position FROM projection_positions ORDER BY view"
        ).fetchall()
    return out
