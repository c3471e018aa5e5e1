"""Reading the config view."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from projections.live_reads import positions


@dataclass(frozen=True)
class ConfigRow:
    version: int
    document: str
    actor: str
    reason: str
    changed_at: datetime


def config_in_force(conn: psycopg.Connection[Any]) -> tuple[int, ConfigRow | None]:
    """The view's position and the version in force there (None before the first)."""
    row = conn.execute(
        "SELECT version, document, actor, reason, changed_at FROM config_view"
    ).fetchone()
    return positions(conn, ("config",)), None if row is None else ConfigRow(*row)
