"""What a read of the log found, kept briefly in memory: a bounded cache with expiry.

A lookup on every request (a dashboard session, say) costs a read of the log at most once
per ``ttl_s`` per id; an id the log does not know is remembered too (for ``miss_ttl_s``),
so a flood of made-up ids does not become a flood of reads. Another process's change is
seen here within ``ttl_s``. Thread-safe: handlers run in a thread pool.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar
from uuid import UUID

T = TypeVar("T")

MAX_ENTRIES = 10_000


class RecentReads(Generic[T]):
    def __init__(
        self,
        read: Callable[[UUID], T | None],
        *,
        ttl_s: float,
        miss_ttl_s: float,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.read = read
        self.ttl_s = ttl_s
        self.miss_ttl_s = min(miss_ttl_s, ttl_s)
        self.max_entries = max_entries
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[UUID, tuple[float, T | None]] = {}

    def get(self, item_id: UUID) -> T | None:
        now = self.clock()
        with self._lock:
            entry = self._entries.get(item_id)
        if entry is not None and entry[0] > now:
            return entry[1]
        found = self.read(item_id)  # outside the lock
        self.put(item_id, found, now)
        return found

    def put(self, item_id: UUID, found: T | None, now: float | None = None) -> None:
        """Keep what this process just learned (e.g. wrote) without reading it back."""
        now = self.clock() if now is None else now
        ttl = self.ttl_s if found is not None else self.miss_ttl_s
        with self._lock:
            self._entries.pop(item_id, None)
            if len(self._entries) >= self.max_entries:
                self._evict(now)
            self._entries[item_id] = (now + ttl, found)

    def forget(self, item_id: UUID) -> None:
        with self._lock:
            self._entries.pop(item_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _evict(self, now: float) -> None:
        """Drop expired entries; if that is not enough, the oldest half."""
        for item_id in [i for i, (expires, _) in self._entries.items() if expires <= now]:
            del self._entries[item_id]
        if len(self._entries) >= self.max_entries:
            for item_id in list(self._entries)[: max(1, len(self._entries) // 2)]:
                del self._entries[item_id]
