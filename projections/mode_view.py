"""The mode view: the hive's mode as recorded, as of the view's position.

One row: the mode, who set it (``policy`` or ``operator``), why, since when, and the
incidents behind it. Every process starts its copy of the mode from it
(``runtime/live_mode.py``) and follows the log from its position.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from domain.aggregate import event_topics
from domain.modes import NORMAL, OPERATOR, POLICY, Cited, HiveMode
from projections.live_reads import positions
from projections.runner import Positioned
from store.migrations import Migration

MODE_MIGRATIONS = [
    Migration(
        245,
        "views: the hive's mode as recorded",
        """
        CREATE TABLE mode_view (
            id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
            version integer NOT NULL,
            mode text NOT NULL,
            set_by text NOT NULL,
            actor text NOT NULL,
            reason text NOT NULL,
            since timestamptz NOT NULL,
            incidents jsonb NOT NULL,
            position bigint NOT NULL
        );
        """,
    ),
]

UPSERT = (
    "INSERT INTO mode_view (version, mode, set_by, actor, reason, since, incidents, position) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
    "version = EXCLUDED.version, mode = EXCLUDED.mode, set_by = EXCLUDED.set_by, "
    "actor = EXCLUDED.actor, reason = EXCLUDED.reason, since = EXCLUDED.since, "
    "incidents = EXCLUDED.incidents, position = EXCLUDED.position"
)


@dataclass(frozen=True)
class ModeRow:
    """The mode as one of its events left it (``version`` 0: never recorded, normal)."""

    version: int = 0
    mode: str = NORMAL
    set_by: str = POLICY
    actor: str = ""
    reason: str = "nothing recorded yet"
    since: datetime | None = None
    incidents: tuple[dict[str, str], ...] = ()

    @property
    def held(self) -> bool:
        return self.set_by == OPERATOR

    @classmethod
    def after(cls, e: Any) -> ModeRow:
        """The mode as event ``e`` of ``HiveMode`` leaves it."""
        incidents: Cited = []
        if isinstance(e, HiveMode.Set):
            mode, set_by = e.mode, OPERATOR
        elif isinstance(e, HiveMode.Cleared):
            mode, set_by = NORMAL, POLICY
        else:  # Opened, Entered
            mode, set_by = e.mode, getattr(e, "set_by", POLICY)
            incidents = e.incidents
        cited: Cited = incidents
        return cls(e.originator_version, mode, set_by, e.actor, e.reason, e.timestamp, tuple(cited))


class ModeView:
    name = "mode"
    tables: tuple[str, ...] = ("mode_view",)
    topics: tuple[str, ...] = event_topics(HiveMode)
    handles: frozenset[type] = frozenset(
        {HiveMode.Opened, HiveMode.Entered, HiveMode.Set, HiveMode.Cleared}
    )
    ignores: frozenset[type] = frozenset()

    def apply(self, cur: psycopg.Cursor[Any], events: Sequence[Positioned]) -> None:
        latest = events[-1]  # each event says the whole mode: the last one stands
        r = ModeRow.after(latest.event)
        cur.execute(
            UPSERT,
            (
                r.version,
                r.mode,
                r.set_by,
                r.actor,
                r.reason,
                r.since,
                Jsonb(list(r.incidents)),
                latest.position,
            ),
        )


def mode_recorded(conn: psycopg.Connection[Any]) -> tuple[int, ModeRow]:
    """The view's position and the mode recorded there."""
    row = conn.execute(
        "SELECT version, mode, set_by, actor, reason, since, incidents FROM mode_view"
    ).fetchone()
    found = ModeRow()
    if row is not None:
        version, mode, set_by, actor, reason, since, incidents = row
        found = ModeRow(version, mode, set_by, actor, reason, since, tuple(incidents))
    return positions(conn, ("mode",)), found
