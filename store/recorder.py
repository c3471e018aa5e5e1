"""The log's recorder: the library's PostgreSQL recorder, plus reading many aggregates at once.

Loading a batch of aggregates one query each would cost a round trip per task; the hot
paths (dispatch, bots reporting many tasks) load a whole batch in one query instead.

Each append is timed for whoever listens (``on_append``: its seconds and its events; the
composition root gives it the process's timings, so the store imports nothing above it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.persistence import (
    InterfaceError,
    Notification,
    OperationalError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from store.migrations import Migration

T = TypeVar("T")

APPEND_MIGRATIONS = [
    Migration(
        4,
        "hive_events: append in one statement",
        """
        CREATE OR REPLACE FUNCTION public.hive_append(
            ids uuid[], versions bigint[], topics text[], states bytea[], lock_timeout text
        ) RETURNS SETOF bigint
        LANGUAGE plpgsql AS $fn$
        BEGIN
            PERFORM set_config('lock_timeout', lock_timeout, true);
            LOCK TABLE public.hive_events IN EXCLUSIVE MODE;
            NOTIFY hive_events;
            RETURN QUERY
                INSERT INTO public.hive_events (originator_id, originator_version, topic, state)
                SELECT * FROM unnest(ids, versions, topics, states)
                RETURNING notification_id;
        END
        $fn$;
        """,
    ),
]


class HiveRecorder(PostgresApplicationRecorder):
    """Appends as the library does — the table lock, a NOTIFY, one INSERT, in one
    transaction — but in one statement: one round trip instead of a pipeline of five.
    The rows travel as four plain arrays (psycopg dumps an array of composites slowly)."""

    on_append: Callable[[float, int], None] | None = None  # (seconds, events) of each append

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.append_statement = SQL(
            "SELECT * FROM {}.hive_append(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[], %s)"
        ).format(Identifier(self.datastore.schema))

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> list[int]:
        began = time.perf_counter()
        ids = self._retrying(lambda: self._insert(stored_events))
        if self.on_append is not None and ids:
            self.on_append(time.perf_counter() - began, len(ids))
        return ids

    def _insert(self, stored_events: Sequence[StoredEvent]) -> list[int]:
        if not stored_events:
            return []
        params = (
            [e.originator_id for e in stored_events],
            [e.originator_version for e in stored_events],
            [e.topic for e in stored_events],
            [e.state for e in stored_events],
            f"{self.datastore.lock_timeout}s",
        )
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(self.append_statement, params, prepare=True)
            return [row[0] for row in curs.fetchall()]

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> list[Notification]:
        """As the library's, but only the columns a notification has (not the chain's),
        as tuples (building a dict per row costs more than the rest of reading it)."""
        return self._retrying(
            lambda: self._notifications(start, limit, stop, topics, inclusive_of_start)
        )

    def _notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None,
        topics: Sequence[str],
        inclusive_of_start: bool,
    ) -> list[Notification]:
        where: list[str] = []
        params: list[Any] = []
        if start is not None:
            where.append("notification_id >= %s" if inclusive_of_start else "notification_id > %s")
            params.append(start)
        if stop is not None:
            where.append("notification_id <= %s")
            params.append(stop)
        if topics:
            where.append("topic = ANY(%s)")
            params.append(list(topics))
        statement = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM {}.{} "
            + ("WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY notification_id LIMIT %s"
        ).format(Identifier(self.datastore.schema), Identifier(self.events_table_name))
        params.append(limit)
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(statement, params, prepare=True)
            return [
                Notification(
                    id=row[0],
                    originator_id=row[1],
                    originator_version=row[2],
                    topic=row[3],
                    state=bytes(row[4]),
                )
                for row in curs.fetchall()
            ]

    def select_events_many(self, originator_ids: Sequence[UUID]) -> list[StoredEvent]:
        """Every event of the given aggregates, by aggregate and then version."""
        return self._retrying(lambda: self._events_of(originator_ids))

    def _retrying(self, action: Callable[[], T]) -> T:
        """Once more after a connection failure, having dropped every broken connection
        from the pool (after a database restart they all are). A second failure means
        the database is away: raise, and let the caller fail fast."""
        try:
            return action()
        except (InterfaceError, OperationalError):
            self.datastore.pool.check()
            return action()

    def _events_of(self, originator_ids: Sequence[UUID]) -> list[StoredEvent]:
        statement = SQL(
            "SELECT originator_id, originator_version, topic, state FROM {}.{} "
            "WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version"
        ).format(Identifier(self.datastore.schema), Identifier(self.events_table_name))
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(statement, (list(originator_ids),), prepare=True)
            return [
                StoredEvent(
                    originator_id=row[0],
                    originator_version=row[1],
                    topic=row[2],
                    state=bytes(row[3]),
                )
                for row in curs.fetchall()
            ]
