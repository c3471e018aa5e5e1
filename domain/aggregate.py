"""The hive's aggregate base: every event says who caused it and on which request."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar, cast

from eventsourcing.domain import Aggregate, Snapshot
from eventsourcing.utils import get_topic

from domain.cause import Cause

A = TypeVar("A", bound=Aggregate)


class HiveAggregate(Aggregate):
    class Event(Aggregate.Event):
        actor: str
        request_id: str

    class Created(Aggregate.Created, Event):
        pass

    @classmethod
    def _open(cls, created: type[Created], *, id: Any, cause: Cause, at: datetime, **fields: Any):  # type: ignore[no-untyped-def]
        return cls._create(
            created, id=id, timestamp=at, actor=cause.actor, request_id=cause.request_id, **fields
        )

    def _record(self, event_class: type[Event], cause: Cause, at: datetime, **fields: Any) -> None:
        self.trigger_event(
            event_class, timestamp=at, actor=cause.actor, request_id=cause.request_id, **fields
        )


def event_topics(aggregate: type[HiveAggregate]) -> tuple[str, ...]:
    """The topics under which the log stores this aggregate's events."""
    return tuple(
        get_topic(cls)
        for cls in vars(aggregate).values()
        if isinstance(cls, type) and issubclass(cls, aggregate.Event) and cls is not aggregate.Event
    )


def detached(aggregate: A) -> A:
    """A copy of ``aggregate`` that shares nothing mutable with it: events triggered on
    the copy never reach the original, and the other way round. Made through the
    library's public snapshot round trip (``Snapshot.take`` then ``mutate``), which
    copies the attributes and starts the copy with no pending events."""
    return cast(A, Snapshot.take(aggregate).mutate(None))
