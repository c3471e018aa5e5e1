"""Recently used aggregates, kept in memory by the process that last wrote or read them.

A cached aggregate may be stale (another process wrote since): that is safe, because a
command's events carry the next version and the log refuses a version twice, so a save
from stale state fails and is retried from a fresh load. What the cache saves is the load:
a bot's start and report and the dispatcher's assignment of the same task find it here.

Entries are never changed in place (commands decide on copies), so readers may use what
``get`` returns. Reads take no lock at all (the hot paths read it from many threads); the
cache's own lock guards only what changes its contents and their count of bytes.

It is bounded by what its entries cost, not by their number: a task with a 200 kB payload
costs as much as a few hundred small ones. ``cost`` estimates an aggregate's memory from
its text attributes (payloads, results, bodies, documents) plus a fixed overhead measured
for a task; the least recently used go first when the total passes ``max_bytes``.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any
from uuid import UUID

# An aggregate's object, dict and attributes, its ids and times: an assigned task with a
# small payload measured 857 bytes with tracemalloc (10,000 of them).
OVERHEAD_BYTES = 1_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


def cost(aggregate: Any) -> int:
    """About how many bytes an aggregate holds: a fixed overhead plus its text."""
    total = OVERHEAD_BYTES
    for value in aggregate.__dict__.values():
        if value.__class__ is str:  # (not isinstance: this runs on every save)
            total += len(value)
    return total


class AggregateCache:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[UUID, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def resize(self, max_bytes: int) -> None:
        with self._lock:
            self.max_bytes = max_bytes
            self._trim()

    def get(self, aggregate_id: UUID) -> Any | None:
        """Without the lock: a read is one dict lookup and one move, each atomic; an entry
        that another thread drops in between is still returned (it was there)."""
        entry = self._items.get(aggregate_id)
        if entry is None:
            return None
        with contextlib.suppress(KeyError):
            self._items.move_to_end(aggregate_id)
        return entry[0]

    def peek(self, aggregate_id: UUID) -> Any | None:
        """As ``get``, but without counting as a use."""
        entry = self._items.get(aggregate_id)
        return None if entry is None else entry[0]

    def put(self, aggregates: Iterable[Any]) -> None:
        """Keep these (just saved, or just read) unless a newer version is kept already."""
        with self._lock:
            for aggregate in aggregates:
                kept = self._items.get(aggregate.id)
                if kept is not None and kept[0].version > aggregate.version:
                    continue
                size = cost(aggregate)
                self.bytes += size - (kept[1] if kept is not None else 0)
                self._items[aggregate.id] = (aggregate, size)
                self._items.move_to_end(aggregate.id)
            self._trim()

    def _trim(self) -> None:
        while self.bytes > self.max_bytes and self._items:
            _, (_, size) = self._items.popitem(last=False)
            self.bytes -= size

    def forget(self, ids: Iterable[UUID]) -> None:
        with self._lock:
            for aggregate_id in ids:
                entry = self._items.pop(aggregate_id, None)
                if entry is not None:
                    self.bytes -= entry[1]
