"""The log's recorder: the library's PostgreSQL recorder, plus reading many aggregates at once.

Loading a batch of aggregates one query each would cost a round trip per task; the hot
paths (dispatch, bots reporting many tasks) load a whole batch in one query instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.sql import SQL, Identifier


class HiveRecorder(PostgresApplicationRecorder):
    def select_events_many(self, originator_ids: Sequence[UUID]) -> list[StoredEvent]:
        """Every event of the given aggregates, by aggregate and then version."""
        statement = SQL(
            "SELECT originator_id, originator_version, topic, state FROM {}.{} "
            "WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version"
        ).format(Identifier(self.datastore.schema), Identifier(self.events_table_name))
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, (list(originator_ids),), prepare=True)
            return [
                StoredEvent(
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                for row in curs.fetchall()
            ]
