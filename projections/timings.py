"""A process's own timings: what its requests, loop rounds, saves and view pages took.

Each kind of measure has a name (``http:GET /v1/tasks:2xx``, ``loop:dispatcher``, ``save``,
``view:tasks``) and is counted as a ``Timing``: durations in the fixed buckets of
``projections/histogram.py`` (so timings of any process, any minute, merge by adding
integers, and read back as p50/p95/p99 with that module's stated error), their sum, and
the work they did (CPU seconds of a loop's rounds, items of work or events, and how many
did any).

``ProcessTimings`` records them as they happen, cheaply enough to stay on (a request
costs a clock read, a lock, two dict lookups, a bisection and a few integer increments),
into one tally per name and minute. It keeps the last hour's minutes (a ring: a minute
that leaves it is folded into the totals since the process started, which ``/metrics``
needs, its histograms being counters). The beat writes the current and the just-ended
minute to ``process_minutes`` (``projections/process_stats.py``), where any process reads
every process's minutes over a window.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from projections.histogram import BOUNDS, BUCKETS, quantile

KEEP_MINUTES = 61  # the current minute and the hour before it: the longest window
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


@dataclass(frozen=True)
class Timing:
    """Durations counted per bucket (``counts``: ``histogram.BUCKETS`` of them), how many
    (``count``) and their total (``sum_s``); and the work they did: ``cpu_s`` (a loop
    round's CPU time, so a report can tell a CPU-bound loop), ``items`` (a loop's items of
    work, the events of a save or of a view's page) and ``busy`` (how many did any)."""

    counts: tuple[int, ...]
    count: int = 0
    sum_s: float = 0.0
    cpu_s: float = 0.0
    items: int = 0
    busy: int = 0

    @classmethod
    def empty(cls) -> Timing:
        return cls((0,) * BUCKETS)

    def merged(self, other: Timing) -> Timing:
        return Timing(
            tuple(a + b for a, b in zip(self.counts, other.counts, strict=True)),
            self.count + other.count,
            self.sum_s + other.sum_s,
            self.cpu_s + other.cpu_s,
            self.items + other.items,
            self.busy + other.busy,
        )

    def quantile(self, q: float) -> float | None:
        """The ``q``-quantile in seconds (``histogram.quantile``); None if nothing counted."""
        return quantile(self.counts, q)

    @property
    def p50(self) -> float | None:
        return self.quantile(0.5)

    @property
    def p95(self) -> float | None:
        return self.quantile(0.95)

    @property
    def p99(self) -> float | None:
        return self.quantile(0.99)

    def to_json(self) -> dict[str, Any]:
        """Compact: only the buckets that counted anything, by index."""
        return {
            "c": {str(b): n for b, n in enumerate(self.counts) if n},
            "n": self.count,
            "s": self.sum_s,
            "cpu": self.cpu_s,
            "i": self.items,
            "b": self.busy,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Timing:
        counts = [0] * BUCKETS
        for bucket, n in doc["c"].items():
            counts[int(bucket)] = int(n)
        return cls(
            tuple(counts),
            int(doc["n"]),
            float(doc["s"]),
            float(doc["cpu"]),
            int(doc["i"]),
            int(doc["b"]),
        )


def merge(timings: Iterable[Mapping[str, Timing]]) -> dict[str, Timing]:
    """Timings by name, added up over several minutes or processes."""
    out: dict[str, Timing] = {}
    for by_name in timings:
        for name, t in by_name.items():
            seen = out.get(name)
            out[name] = t if seen is None else seen.merged(t)
    return out


class _Tally:
    """A ``Timing`` being counted (mutable, under ``ProcessTimings``' lock)."""

    __slots__ = ("busy", "count", "counts", "cpu_s", "items", "sum_s")

    def __init__(self) -> None:
        self.counts = [0] * BUCKETS
        self.count = self.items = self.busy = 0
        self.sum_s = self.cpu_s = 0.0

    def add(self, seconds: float, cpu_s: float, items: int) -> None:
        # ``histogram.bucket_of``, inlined: this runs on every request
        self.counts[bisect_left(BOUNDS, seconds) if seconds > 0 else 0] += 1
        self.count += 1
        self.sum_s += seconds
        self.cpu_s += cpu_s
        self.items += items
        if items > 0:
            self.busy += 1

    def absorb(self, other: _Tally) -> None:
        for b, n in enumerate(other.counts):
            self.counts[b] += n
        self.count += other.count
        self.sum_s += other.sum_s
        self.cpu_s += other.cpu_s
        self.items += other.items
        self.busy += other.busy

    def frozen(self) -> Timing:
        return Timing(tuple(self.counts), self.count, self.sum_s, self.cpu_s, self.items, self.busy)


Minute = dict[str, _Tally]


class ProcessTimings:
    """This process's timings, per minute (``clock``: Unix seconds; the minute a measure
    falls in is ``clock() // 60``). Safe from any thread."""

    def __init__(
        self, clock: Callable[[], float] = time.time, keep_minutes: int = KEEP_MINUTES
    ) -> None:
        self.clock = clock
        self.keep_minutes = keep_minutes
        self._lock = threading.Lock()
        self._minutes: dict[int, Minute] = {}
        self._current: Minute = {}
        self._starts = self._ends = 0.0  # the current minute, in the clock's seconds
        self._retired: Minute = {}  # the minutes that left the ring, added up
        self._http: dict[tuple[str, str, int], str] = {}  # names made once, not per request
        self.enabled = True  # the config's ``profiling``: off, nothing is counted

    # -- recording (hot paths) ---------------------------------------------------------

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        """An HTTP request's duration by (method, route template, status class)."""
        key = (method, route, status // 100)
        name = self._http.get(key)
        if name is None:
            name = self._http_name(key)
        self.add(name, seconds)

    def round(self, loop: str, seconds: float, cpu_s: float, items: int) -> None:
        """A control loop's round: wall and CPU time, and the items of work it did."""
        self.add(f"loop:{loop}", seconds, cpu_s, items)

    def saved(self, seconds: float, events: int) -> None:
        """An append to the log: how long, and how many events it wrote."""
        self.add("save", seconds, 0.0, events)

    def page(self, view: str, seconds: float, events: int) -> None:
        """A view's apply of one page of events (its own time: no reading, no commit)."""
        self.add(f"view:{view}", seconds, 0.0, events)

    def add(self, name: str, seconds: float, cpu_s: float = 0.0, items: int = 0) -> None:
        if not self.enabled:
            return
        now = self.clock()
        with self._lock:
            if not self._starts <= now < self._ends:
                self._roll(int(now // 60))
            tally = self._current.get(name)
            if tally is None:
                tally = self._current[name] = _Tally()
            tally.add(seconds, cpu_s, items)

    def _http_name(self, key: tuple[str, str, int]) -> str:
        method, route, status_class = key
        if method not in METHODS:  # any token a client sends: one name for them all
            method = "OTHER"
        name = self._http[key] = f"http:{method} {route}:{status_class}xx"
        return name

    def _roll(self, minute: int) -> None:
        self._starts, self._ends = minute * 60.0, minute * 60.0 + 60.0
        self._current = self._minutes.setdefault(minute, {})
        oldest = minute - self.keep_minutes
        for old in [m for m in self._minutes if m <= oldest]:
            for name, tally in self._minutes.pop(old).items():
                self._retired.setdefault(name, _Tally()).absorb(tally)

    # -- reading -----------------------------------------------------------------------

    def minutes(self, since: int) -> dict[int, dict[str, Timing]]:
        """The minutes from ``since`` (a minute number) on, each one's timings by name."""
        with self._lock:
            return {
                m: {name: t.frozen() for name, t in tallies.items()}
                for m, tallies in self._minutes.items()
                if m >= since
            }

    def recent(self) -> dict[int, dict[str, Timing]]:
        """The current minute and the one just ended (what the beat writes)."""
        return self.minutes(int(self.clock() // 60) - 1)

    def window(self, seconds: float) -> dict[str, Timing]:
        """This process's timings over the minutes that overlap the last ``seconds``."""
        return merge(self.minutes(int((self.clock() - seconds) // 60)).values())

    def totals(self) -> dict[str, Timing]:
        """Everything since the process started (for ``/metrics``: counters only grow)."""
        with self._lock:
            everything = [self._retired, *self._minutes.values()]
            frozen = [{name: t.frozen() for name, t in m.items()} for m in everything]
        return merge(frozen)
