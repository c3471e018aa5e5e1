"""What a rate limit costs per request: the API's token buckets (``api/buckets.py``) against
the ``limits`` library's in-memory strategies, admitting requests of 100 keys in turn.

    python -m tests.bench.limiter

Prints microseconds per admitted request (the best of several repeats: this machine is
shared) and, for the library, how many expiry threads its storage started meanwhile (it
starts a ``threading.Timer`` of 10 ms whenever the last one has ended and it is hit).
"""

from __future__ import annotations

import itertools
import time
import timeit
import uuid
from collections.abc import Callable

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)

from api.buckets import Buckets

REPEATS, NUMBER = 7, 20_000
KEYS = [uuid.uuid4() for _ in range(100)]
PER_S, BURST = 1_000_000.0, 1_000_000  # never refuses: the admitted path is the hot one


def ours() -> Callable[[], object]:
    buckets = Buckets()
    keys = itertools.cycle(KEYS)
    return lambda: buckets.take(next(keys).int, PER_S, BURST)  # as the API keys them


def library(kind: type[RateLimiter]) -> tuple[Callable[[], object], MemoryStorage]:
    storage = MemoryStorage()
    limiter = kind(storage)
    item = RateLimitItemPerSecond(BURST, 1)
    names = [str(k) for k in KEYS]  # the library's identifiers are text
    keys = itertools.cycle(names)
    return (lambda: limiter.hit(item, next(keys))), storage


def per_call_us(call: Callable[[], object]) -> float:
    return min(timeit.repeat(call, repeat=REPEATS, number=NUMBER)) / NUMBER * 1e6


def timers_started(storage: MemoryStorage, call: Callable[[], object], seconds: float) -> float:
    """Expiry threads the storage started per second of steady hits."""
    seen, last = 0, storage.timer
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        call()
        if storage.timer is not last:
            seen, last = seen + 1, storage.timer
    return seen / seconds


def main() -> None:
    print(f"{'limiter':44} {'us/request':>10} {'threads/s':>10}")
    print(f"{'api.buckets.Buckets.take (token bucket)':44} {per_call_us(ours()):10.2f} {0:10}")
    for kind in (FixedWindowRateLimiter, SlidingWindowCounterRateLimiter, MovingWindowRateLimiter):
        call, storage = library(kind)
        us = per_call_us(call)
        threads = timers_started(storage, call, 1.0)
        print(f"{'limits ' + kind.__name__ + ' (memory)':44} {us:10.2f} {threads:10.0f}")


if __name__ == "__main__":
    main()
