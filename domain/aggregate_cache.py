"""Recently used aggregates, kept in memory by the process that last wrote or read them.

A cached aggregate may be stale (another process wrote since): that is safe, because a
command's events carry the next version and the log refuses a version twice, so a save
from stale state fails and is retried from a fresh load. What the cache saves is the load:
a bot's start and report and the dispatcher's assignment of the same task find it here.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any
from uuid import UUID


class AggregateCache:
    def __init__(self, maxsize: int = 200_000) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[UUID, Any] = OrderedDict()

    def get(self, aggregate_id: UUID) -> Any | None:
        aggregate = self._items.get(aggregate_id)
        if aggregate is not None:
            self._items.move_to_end(aggregate_id)
        return aggregate

    def put(self, aggregates: Iterable[Any]) -> None:
        for aggregate in aggregates:
            self._items[aggregate.id] = aggregate
            self._items.move_to_end(aggregate.id)
        while len(self._items) > self.maxsize:
            self._items.popitem(last=False)

    def forget(self, ids: Iterable[UUID]) -> None:
        for aggregate_id in ids:
            self._items.pop(aggregate_id, None)

    def forget_older(self, aggregate_id: UUID, version: int) -> None:
        """Drop the entry if it is behind ``version`` (someone else wrote)."""
        aggregate = self._items.get(aggregate_id)
        if aggregate is not None and aggregate.version < version:
            del self._items[aggregate_id]
