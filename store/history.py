"""One aggregate's history as the log holds it: each event with its position, kind, time,
actor and chain hash (the dashboard's timeline of a task). Reads the log by aggregate id
(the primary key), events at given positions (a record that names a task, such as an
``UnroutableTasks``), or the event that made each of some aggregates (a record a task's
event names, such as a ``DispatchRound``), never by scanning it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, StoredEvent
from psycopg_pool import ConnectionPool

HISTORY = (
    "SELECT notification_id, originator_id, originator_version, topic, state, chain_hash "
    "FROM public.hive_events WHERE originator_id = %s ORDER BY originator_version LIMIT %s"
)
EVENTS = (
    "SELECT originator_id, originator_version, topic, state FROM public.hive_events "
    "WHERE originator_id = %s AND originator_version <= %s ORDER BY originator_version"
)
AT = (
    "SELECT notification_id, originator_id, originator_version, topic, state, chain_hash "
    "FROM public.hive_events WHERE notification_id = ANY(%s) ORDER BY notification_id"
)
MADE = (
    "SELECT originator_id, originator_version, topic, state FROM public.hive_events "
    "WHERE originator_id = ANY(%s) AND originator_version = 1"
)
SHOWN_IDS = 20  # a list of ids longer than this is shown as its first ones and a count
SKIPPED = frozenset(
    {"originator_id", "originator_version", "timestamp", "originator_topic", "actor"}
)


@dataclass(frozen=True)
class Entry:
    position: int
    version: int
    kind: str  # the event's class name: Submitted, Assigned, ...
    at: datetime
    actor: str
    request_id: str
    chain_hash: str  # hex; "" while the chain trigger has not stamped it
    fields: dict[str, Any]  # the rest of the event, as recorded


class History:
    def __init__(self, pool: ConnectionPool[Any], mapper: Mapper[UUID]) -> None:
        self.pool = pool
        self.mapper = mapper

    def of(self, aggregate_id: UUID, limit: int = 1000) -> list[Entry]:
        with self.pool.connection() as conn:
            return self._entries(conn.execute(HISTORY, (aggregate_id, limit)).fetchall())

    def events(self, aggregate_id: UUID, up_to_version: int) -> list[Any]:
        """The aggregate's events up to a version (a view's row of it), decoded whole."""
        with self.pool.connection() as conn:
            rows = conn.execute(EVENTS, (aggregate_id, up_to_version)).fetchall()
        return [
            self.mapper.to_domain_event(StoredEvent(aggregate_id, version, topic, bytes(state)))
            for aggregate_id, version, topic, state in rows
        ]

    def at(self, positions: list[int]) -> list[Entry]:
        """The events at these log positions, in log order."""
        if not positions:
            return []
        with self.pool.connection() as conn:
            return self._entries(conn.execute(AT, (positions,)).fetchall())

    def made(self, aggregate_ids: list[UUID]) -> dict[UUID, Any]:
        """The event that made each of these aggregates, decoded whole, by aggregate id."""
        if not aggregate_ids:
            return {}
        with self.pool.connection() as conn:
            rows = conn.execute(MADE, (aggregate_ids,)).fetchall()
        return {
            aggregate_id: self.mapper.to_domain_event(
                StoredEvent(aggregate_id, version, topic, bytes(state))
            )
            for aggregate_id, version, topic, state in rows
        }

    def _entries(self, rows: list[tuple[Any, ...]]) -> list[Entry]:
        return [
            entry_of(
                position,
                self.mapper.to_domain_event(
                    StoredEvent(aggregate_id, version, topic, bytes(state))
                ),
                bytes(chain_hash).hex() if chain_hash is not None else "",
            )
            for position, aggregate_id, version, topic, state, chain_hash in rows
        ]


def entry_of(position: int, event: Any, chain_hash: str) -> Entry:
    """An event at its log position as a timeline shows it."""
    return Entry(
        position=position,
        version=event.originator_version,
        kind=type(event).__name__,
        at=event.timestamp,
        actor=event.actor,
        request_id=event.request_id,
        chain_hash=chain_hash,
        fields={
            k: _shown(v) for k, v in vars(event).items() if k not in SKIPPED and k != "request_id"
        },
    )


def _shown(value: Any) -> Any:
    """A long list (the tasks an unroutable record names) as its first items and a count."""
    if isinstance(value, list) and len(value) > SHOWN_IDS:
        return {"first": value[:SHOWN_IDS], "count": len(value)}
    return value
