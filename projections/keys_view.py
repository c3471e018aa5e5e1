"""The keys view: one row per API key ever issued, bots' own keys included, for the list.

Never a secret nor its hash: what a key is (name, principal, role, its bot), who issued it
and when, its expiry, whether and when it was revoked, and which key it replaced or was
replaced by. When it was last used is soft state beside it (``store/key_use.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from domain.aggregate import event_topics
from domain.keys import ApiKey
from projections.runner import Positioned
from store.migrations import Migration

KEYS_MIGRATIONS = [
    Migration(
        185,
        "views: API keys",
        """
        CREATE TABLE keys_view (
            key_id uuid PRIMARY KEY,
            seq bigint NOT NULL,
            name text NOT NULL,
            principal text NOT NULL,
            role text NOT NULL,
            bot_id uuid,
            created_by text NOT NULL,
            created_at timestamptz NOT NULL,
            expires_at timestamptz,
            revoked_at timestamptz,
            revoked_by text,
            replaces uuid,
            replaced_by uuid,
            version integer NOT NULL,
            position bigint NOT NULL
        );
        CREATE UNIQUE INDEX keys_view_seq ON keys_view (seq);
        CREATE INDEX keys_view_role_seq ON keys_view (role, seq);
        """,
    ),
]

ISSUED = (
    "INSERT INTO keys_view (key_id, seq, name, principal, role, bot_id, created_by, "
    "created_at, expires_at, replaces, version, position) VALUES (%(key_id)s, %(position)s, "
    "%(name)s, %(principal)s, %(role)s, %(bot_id)s, %(actor)s, %(at)s, %(expires_at)s, "
    "%(replaces)s, %(version)s, %(position)s) ON CONFLICT (key_id) DO NOTHING"
)
REVOKED = (
    "UPDATE keys_view SET revoked_at = %(at)s, revoked_by = %(actor)s, "
    "replaced_by = %(replaced_by)s, "
    "version = %(version)s, position = %(position)s "
    "WHERE key_id = %(key_id)s AND version < %(version)s"
)


class KeysView:
    name = "keys"
    tables: tuple[str, ...] = ("keys_view",)
    topics: tuple[str, ...] = event_topics(ApiKey)
    handles: frozenset[type] = frozenset({ApiKey.Issued, ApiKey.Revoked})
    ignores: frozenset[type] = frozenset()

    def apply(self, cur: psycopg.Cursor[Any], events: Sequence[Positioned]) -> None:
        for p in events:
            e = p.event
            common = {
                "key_id": e.originator_id,
                "actor": e.actor,
                "at": e.timestamp,
                "version": e.originator_version,
                "position": p.position,
            }
            match e:
                case ApiKey.Issued():
                    fields = {
                        "name": e.name,
                        "principal": e.principal,
                        "role": e.role,
                        "bot_id": e.bot_id,
                        "expires_at": e.expires_at,
                        "replaces": e.replaces,
                    }
                    cur.execute(ISSUED, {**common, **fields})
                case ApiKey.Revoked():
                    cur.execute(REVOKED, {**common, "replaced_by": e.replaced_by})
