"""The write kernel: load -> decide -> save, with the one optimistic-concurrency retry.

Every command of every room runs through ``Kernel.execute``: it loads the aggregates a
decision needs (from the cache of recent ones, or from the log when in doubt), lets the
room decide (mutating them, or making new ones), and saves every resulting event in one
``put`` (one transaction, one table lock). A concurrent writer that got there first shows
as an ``IntegrityError`` on an aggregate version; the decision is then made again from a
fresh load of the log, up to ``MAX_ATTEMPTS`` times.

Cached aggregates are never changed in place: a command decides on a copy and the copy
replaces the cached one once saved. So reads need no lock at all: they take what is cached,
or read the log, while commands go on. The write lock serializes only this process's
commands (the log's table lock serializes every writer anyway), so that cached aggregates
and the listeners hear each aggregate's events in order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar, cast
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, StoredEvent

from domain.aggregate import detached
from domain.aggregate_cache import AggregateCache
from domain.errors import ConcurrentUpdate, HiveError, NotFound
from domain.hive.log import HiveLog, utc_now

A = TypeVar("A", bound=Aggregate)
T = TypeVar("T")

MAX_ATTEMPTS = 8

Recorded = list[tuple[int, Any]]  # (log position, event)
Decide = Callable[[dict[UUID, Any], datetime], Sequence[Aggregate]]


@dataclass(frozen=True)
class Committed(Generic[T]):
    """What a command changed, and the log position after it (for read-your-writes)."""

    items: list[T]
    position: int | None
    recorded: Recorded = field(default_factory=list)

    @classmethod
    def of(cls, items: list[T], recorded: Recorded) -> Committed[T]:
        """``items`` as saved in ``recorded``: the position is the last one recorded."""
        return cls(items, max((p for p, _ in recorded), default=None), recorded)


class Kernel:
    def __init__(
        self,
        log: HiveLog,
        *,
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[], UUID] = uuid4,
        cache: AggregateCache | None = None,
    ) -> None:
        self.log = log
        self.clock = clock
        self.new_id = new_id
        self.cache = cache if cache is not None else AggregateCache()
        self.lock = threading.RLock()  # the write lock: this process's commands, one at a time
        self.listeners: list[Callable[[Recorded], object]] = []  # hear every save, in order
        # Long-lived aggregates, snapshotted every so many versions and loaded from the
        # latest snapshot (the log must have a snapshot store: ``HiveLog``'s is on).
        self.snapshot_every: dict[UUID, int] = {}

    # -- reading: never the write lock ---------------------------------------------------

    def load_many(self, kind: type[A], ids: Iterable[UUID], *, fresh: bool = True) -> dict[UUID, A]:
        """Aggregates of one kind; ids not found are left out. Read from the log itself
        (the cache may be behind another process's writes) unless ``fresh`` is False, for
        a caller that tolerates that (its next command re-checks). What a read returns is
        shared: never change it (commands decide on copies of their own)."""
        wanted = list(dict.fromkeys(ids))
        found: dict[UUID, Any] = {}
        missing = wanted
        if not fresh:
            missing = []
            for i in wanted:
                cached = self.cache.get(i)
                if cached is None:
                    missing.append(i)
                else:
                    found[i] = cached
        if missing:
            loaded = self._read_log(missing)
            self.cache.put(loaded.values())
            found.update(loaded)
        return {i: a for i, a in found.items() if isinstance(a, kind)}

    def cached_many(self, kind: type[A], ids: Iterable[UUID]) -> dict[UUID, A] | None:
        """Only from memory, never waiting: None when any of them is not cached."""
        found = {}
        for i in ids:
            aggregate = self.cache.peek(i)  # a read of what is there: not counted as a use
            if aggregate is None:
                return None
            if isinstance(aggregate, kind):
                found[i] = aggregate
        return found

    def get(self, kind: type[A], aggregate_id: UUID) -> A:
        found = self.load_many(kind, [aggregate_id])
        if aggregate_id not in found:
            raise NotFound(f"no {kind.__name__.lower()} {aggregate_id}", id=aggregate_id)
        return found[aggregate_id]

    def history(self, aggregate_id: UUID, *, latest: int | None = None) -> list[Any]:
        """Every event of one aggregate (only the ``latest`` ones, when given), oldest
        first, as the log has them."""
        if latest is None:
            return list(self.log.events.get(aggregate_id))
        return list(self.log.events.get(aggregate_id, desc=True, limit=latest))[::-1]

    def observe(self, events: Iterable[tuple[int, Any]]) -> None:
        """Events seen in the log, in its order: the cache follows what other processes
        wrote (an aggregate created, or moved on by the next version, is kept as it now
        is; one that skipped a version here is forgotten), so reads and commands find the
        latest state in memory. What this process wrote is cached already and passed over."""
        for _, event in events:
            version = event.originator_version
            cached = self.cache.peek(event.originator_id)
            if cached is None:
                if version == 1:
                    self.cache.put([event.mutate(None)])
            elif version == cached.version + 1:
                self.cache.put([event.mutate(detached(cached))])
            elif version > cached.version:
                self.cache.forget([event.originator_id])

    # -- deciding and saving -------------------------------------------------------------

    def execute(
        self, ids: Sequence[UUID], decide: Decide, *, fresh: bool = False
    ) -> Committed[Any]:
        """Load ``ids`` (those found: ``decide`` sees no entry for the others), decide at
        the clock's now, and save what ``decide`` returns, in one transaction.

        Decided first on cached state unless ``fresh``. A decision on cached state that
        refuses (a ``HiveError``) or leaves one of ``ids`` unchanged is made again from the
        log before it stands, since the cache may be behind another process. A save that
        loses to a concurrent writer is decided again from the log too.
        """
        from_log = fresh
        for _ in range(MAX_ATTEMPTS):
            with self.lock:
                found = self._load_to_change(ids, from_log=from_log)
                try:
                    changed = list(decide(found, self.clock()))
                    if not from_log and any(
                        i not in found or not found[i].pending_events for i in ids
                    ):
                        from_log = True  # left as it was, by state that may be behind
                        continue
                    return Committed.of(changed, self.save(changed))
                except IntegrityError:  # another writer got there first: decide again
                    self.cache.forget(ids)
                    from_log = True
                except HiveError:
                    self.cache.forget(ids)
                    if from_log:
                        raise
                    from_log = True  # refused on cached state, which may be stale: re-check
        raise ConcurrentUpdate()

    def change(
        self, kind: type[A], ids: Sequence[UUID], command: Callable[[A, datetime], None]
    ) -> Committed[A]:
        """The same command on each of ``ids`` (all of ``kind``, all must exist)."""

        def each(found: dict[UUID, Any], at: datetime) -> list[A]:
            aggregates = every(kind, ids, found)
            for aggregate in aggregates:
                command(aggregate, at)
            return [a for a in aggregates if a.pending_events]

        return cast(Committed[A], self.execute(ids, each))

    def save(self, aggregates: Iterable[Aggregate]) -> Recorded:
        """Record the pending events of ``aggregates`` in one transaction; then cache them
        and tell the listeners, in this process's order of saves."""
        with self.lock:
            dirty = list({a.id: a for a in aggregates if a.pending_events}.values())
            if not dirty:
                return []
            events = [e for a in dirty for e in a.collect_events()]
            try:
                recordings = self.log.events.put(events)
            except BaseException:
                self.cache.forget(a.id for a in dirty)
                raise
            self.cache.put(dirty)
            self._take_snapshots(events)
            recorded: Recorded = [(r.notification.id, r.domain_event) for r in recordings]
            for listener in self.listeners:
                listener(recorded)
            return recorded

    def _take_snapshots(self, events: list[Any]) -> None:
        for event in events:
            every = self.snapshot_every.get(event.originator_id)
            if every is not None and event.originator_version % every == 0:
                self.log.take_snapshot(event.originator_id, event.originator_version)

    def _load_to_change(self, ids: Sequence[UUID], *, from_log: bool) -> dict[UUID, Any]:
        """Aggregates the caller may change: copies of cached ones, or fresh from the log."""
        found: dict[UUID, Any] = {}
        missing = []
        for i in dict.fromkeys(ids):
            cached = None if from_log else self.cache.get(i)
            if cached is None:
                missing.append(i)
            else:
                found[i] = detached(cached)
        if missing:
            found.update(self._read_log(missing))
        return found

    def _read_log(self, ids: list[UUID]) -> dict[UUID, Any]:
        select_many = getattr(self.log.recorder, "select_events_many", None)
        found: dict[UUID, Any] = {}
        one_by_one = [i for i in ids if select_many is None or i in self.snapshot_every]
        if one_by_one:  # from the latest snapshot; or the library's recorders (unit tests)
            ids = [i for i in ids if i not in one_by_one]
            for i in one_by_one:
                try:
                    found[i] = self.log.repository.get(i)
                except AggregateNotFoundError:
                    continue
        if not ids or select_many is None:
            return found
        stored: list[StoredEvent] = select_many(ids)
        for record in stored:
            event: Any = self.log.mapper.to_domain_event(record)
            key = cast(UUID, record.originator_id)
            found[key] = event.mutate(found.get(key))
        return found


def every(kind: type[A], ids: Sequence[UUID], found: dict[UUID, Any]) -> list[A]:
    """``ids``, in their order, as ``execute`` found them: all must be of ``kind``."""
    missing = [i for i in ids if not isinstance(found.get(i), kind)]
    if missing:
        shown = ", ".join(map(str, missing[:5]))
        raise NotFound(f"no {kind.__name__.lower()} {shown}", ids=missing)
    return [found[i] for i in ids]
