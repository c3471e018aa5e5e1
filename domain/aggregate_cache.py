"""Recently used aggregates, kept in memory by the process that last wrote or read them.

A cached aggregate may be stale (another process wrote since): that is safe, because a
command's events carry the next version and the log refuses a version twice, so a save
from stale state fails and is retried from a fresh load. What the cache saves is the load:
a bot's start and report and the dispatcher's assignment of the same task find it here.

Entries are never changed in place (commands decide on copies), so readers may use what
``get`` returns without a lock. The cache's own lock guards only its bookkeeping.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any
from uuid import UUID


class AggregateCache:
    def __init__(self, maxsize: int = 200_000) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[UUID, Any] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, aggregate_id: UUID) -> Any | None:
        with self._lock:
            aggregate = self._items.get(aggregate_id)
            if aggregate is not None:
                self._items.move_to_end(aggregate_id)
            return aggregate

    def peek(self, aggregate_id: UUID) -> Any | None:
        """As ``get``, but without counting as a use."""
        return self._items.get(aggregate_id)

    def put(self, aggregates: Iterable[Any]) -> None:
        """Keep these (just saved, or just read) unless a newer version is kept already."""
        with self._lock:
            for aggregate in aggregates:
                kept = self._items.get(aggregate.id)
                if kept is None or kept.version <= aggregate.version:
                    self._items[aggregate.id] = aggregate
                    self._items.move_to_end(aggregate.id)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)

    def forget(self, ids: Iterable[UUID]) -> None:
        with self._lock:
            for aggregate_id in ids:
                self._items.pop(aggregate_id, None)
