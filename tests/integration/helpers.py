"""Shared moves of the integration tests: a hive on a test database, view snapshots."""

from __future__ import annotations

from typing import Any

import psycopg

from api.bootstrap import open_hive, views
from api.settings import Settings
from domain.hive import Hive


def hive_on(url: str, **settings: Any) -> Hive:
    return open_hive(url, Settings(**settings))


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every view, in a stable order, with the views' positions: the tables
    of all the views the engine runs (``views()``), so that a new view is compared too."""
    tables = [t for v in views() for t in v.tables]
    with psycopg.connect(url) as conn:
        out = {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
        out["positions"] = conn.execute(
            "SELECT view, position FROM projection_positions ORDER BY view"
        ).fetchall()
    return out
