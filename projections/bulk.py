"""Replaying the log into emptied views without keeping their secondary indexes on the way.

A view's secondary indexes (those no constraint and no uniqueness needs) serve its readers;
while a rebuild replays a million events into it, maintaining them costs more than building
them once at the end. So ``defer_indexes`` drops them, in the transaction that empties the
view, after writing their definitions to ``projection_deferred_indexes``; and
``restore_indexes`` creates them again from there, in one transaction, once the replay is
done. A rebuild that dies in between leaves the definitions in the table: the next rebuild,
and every engine when it starts, restore them first. So an index is never lost, only
missing for a while (reads are slower, never wrong).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.sql import SQL, Identifier

from store.migrations import Migration

DEFERRED_MIGRATIONS = [
    Migration(
        190,
        "views: secondary indexes dropped for a rebuild, until it has replayed the log",
        """
        CREATE TABLE public.projection_deferred_indexes (
            name text PRIMARY KEY,
            view text NOT NULL,
            definition text NOT NULL
        );
        """,
    ),
]

_SECONDARY = """
SELECT i.relname, pg_get_indexdef(i.oid)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = 'public' AND t.relname = ANY(%s)
  AND NOT x.indisunique AND NOT x.indisprimary
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)
ORDER BY i.relname
"""


def defer_indexes(conn: psycopg.Connection[Any], view: str, tables: tuple[str, ...]) -> int:
    """In the caller's transaction: note and drop the secondary indexes of ``tables``.
    Returns how many."""
    found = conn.execute(_SECONDARY, (list(tables),)).fetchall()
    for name, definition in found:
        conn.execute(
            "INSERT INTO projection_deferred_indexes (name, view, definition) "
            "VALUES (%s, %s, %s) ON CONFLICT (name) DO NOTHING",
            (name, view, definition),
        )
        conn.execute(SQL("DROP INDEX public.{}").format(Identifier(name)))
    return len(found)


def restore_indexes(conninfo: str) -> int:
    """Create every deferred index again, in one transaction; returns how many."""
    with psycopg.connect(conninfo, connect_timeout=5) as conn, conn.transaction():
        rows = conn.execute(
            "DELETE FROM projection_deferred_indexes RETURNING name, definition"
        ).fetchall()
        for _, definition in sorted(rows):
            conn.execute(definition.encode())  # as PostgreSQL itself wrote it
    return len(rows)
