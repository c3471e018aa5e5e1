"""Token buckets by key: the arithmetic of a rate limit, and nothing else.

A bucket holds up to ``burst`` tokens and gains ``per_s`` a second; a request takes one or
is refused with the time until the next one. A bucket is two floats, updated in place, so
taking a token allocates nothing but the result; a key's first request makes its bucket.
Why not the ``limits`` library: it has no token bucket (its windows are whole seconds),
and its in-memory storage starts a new thread every 10 ms while it is hit and takes a lock
per key; measured against this: ``python -m tests.bench.limiter``.

Thread-safe: routes that run in the thread pool (the dashboard's sign-in) use it too.
The lock is held for a few float operations, never across an await.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass(frozen=True)
class Refusal:
    """A request over its limit: when the next would be admitted, when the bucket is full."""

    retry_after_s: float
    full_after_s: float
    burst: int


class Buckets:
    def __init__(
        self, *, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[Hashable, list[float]] = {}  # key -> [tokens, at]

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: Hashable, per_s: float, burst: int) -> Refusal | None:
        """One token from ``key``'s bucket: None when there was one, else the refusal."""
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self.max_entries:
                    self._prune(now, per_s, burst)
                self._buckets[key] = [burst - 1.0, now]
                return None
            tokens = bucket[0] + (now - bucket[1]) * per_s
            if tokens > burst:
                tokens = burst
            bucket[1] = now
            if tokens >= 1.0:
                bucket[0] = tokens - 1.0
                return None
            bucket[0] = tokens
        return Refusal((1.0 - tokens) / per_s, (burst - tokens) / per_s, burst)

    def empty(self, key: Hashable, per_s: float, burst: int) -> Refusal | None:
        """Whether ``key``'s bucket has no token now (a refusal), without taking one."""
        if not self._buckets:  # the common case: nobody has spent anything
            return None
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                return None
            tokens = min(burst, bucket[0] + (now - bucket[1]) * per_s)
        if tokens >= 1.0:
            return None
        return Refusal((1.0 - tokens) / per_s, (burst - tokens) / per_s, burst)

    def _prune(self, now: float, per_s: float, burst: int) -> None:
        """Drop buckets idle long enough to be full again (under the lock); if that is not
        enough, the oldest half."""
        idle = burst / per_s
        for key in [k for k, (_, at) in self._buckets.items() if now - at >= idle]:
            del self._buckets[key]
        if len(self._buckets) >= self.max_entries:
            for key in list(self._buckets)[: max(1, len(self._buckets) // 2)]:
                del self._buckets[key]
