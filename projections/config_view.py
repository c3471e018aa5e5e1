"""The config view: the runtime configuration in force, as of the view's position.

One row: the version, its document, who made it and why. Processes start their copy of
the config from it (``runtime/live_config.py``) and follow the log from its position.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from domain.aggregate import event_topics
from domain.config import HiveConfig
from projections.runner import Positioned
from store.migrations import Migration

CONFIG_MIGRATIONS = [
    Migration(
        170,
        "views: the runtime configuration in force",
        """
        CREATE TABLE config_view (
            id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
            version integer NOT NULL,
            document text NOT NULL,
            actor text NOT NULL,
            reason text NOT NULL,
            changed_at timestamptz NOT NULL,
            position bigint NOT NULL
        );
        """,
    ),
]

UPSERT = (
    "INSERT INTO config_view (version, document, actor, reason, changed_at, position) "
    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
    "version = EXCLUDED.version, document = EXCLUDED.document, actor = EXCLUDED.actor, "
    "reason = EXCLUDED.reason, changed_at = EXCLUDED.changed_at, position = EXCLUDED.position"
)


class ConfigView:
    name = "config"
    tables: tuple[str, ...] = ("config_view",)
    topics: tuple[str, ...] = event_topics(HiveConfig)
    handles: frozenset[type] = frozenset({HiveConfig.Seeded, HiveConfig.Changed})
    ignores: frozenset[type] = frozenset()

    def apply(self, cur: psycopg.Cursor[Any], events: Sequence[Positioned]) -> None:
        latest = events[-1]  # every version is a whole document: the last one stands
        e = latest.event
        cur.execute(
            UPSERT,
            (e.originator_version, e.document, e.actor, e.reason, e.timestamp, latest.position),
        )
