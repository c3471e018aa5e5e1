"""What every room's commands share: load, decide, save once, retry on conflict.

A command loads what it needs (from the cache, or from the log when in doubt), asks the
aggregates to decide, and saves every resulting event in one ``save()``. A concurrent
writer that got there first shows as an ``IntegrityError``; the command is decided again
from a fresh load, up to ``MAX_ATTEMPTS`` times.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from eventsourcing.application import ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from domain.errors import ConcurrentUpdate, HiveError, NotFound
from domain.hive.application import A, HiveApplication

T = TypeVar("T")

MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class Committed(Generic[T]):
    """What a command changed, and the log position after it (for read-your-writes)."""

    items: list[T]
    position: int | None
    recorded: list[tuple[int, Any]] = field(default_factory=list)  # (position, event)

    @classmethod
    def of(cls, items: list[T], recorded: list[tuple[int, Any]]) -> Committed[T]:
        """``items`` as saved in ``recorded``: the position is the last one recorded."""
        return cls(items, max((p for p, _ in recorded), default=None), recorded)


class Commands(HiveApplication):
    def _change(
        self, kind: type[A], ids: list[UUID], command: Callable[[A, datetime], None]
    ) -> Committed[A]:
        """Load, decide, save once; retry from a fresh load when a concurrent writer won."""
        from_log = False  # first from the cache; from the log after any doubt
        for _ in range(MAX_ATTEMPTS):
            with self.lock:
                found = self._load(kind, ids, from_log=from_log)
                missing = [i for i in ids if i not in found]
                if missing and not from_log:
                    from_log = True  # perhaps another kind under that id was cached
                    continue
                if missing:
                    shown = ", ".join(map(str, missing[:5]))
                    raise NotFound(f"no {kind.__name__.lower()} {shown}", ids=missing)
                at = self.clock()
                try:
                    for i in ids:
                        command(found[i], at)
                    changed = [found[i] for i in ids if found[i].pending_events]
                    if len(changed) < len(ids) and not from_log:
                        # Left as it was, by cached state that may be behind: re-check.
                        self.cache.forget(ids)
                        from_log = True
                        continue
                    return Committed.of(changed, self._save(found.values()))
                except IntegrityError:  # another writer got there first: decide again
                    self.cache.forget(ids)
                    from_log = True
                    continue
                except HiveError:
                    self.cache.forget(ids)  # half-decided aggregates must not stay cached
                    if from_log:
                        raise
                    from_log = True  # refused on cached state, which may be stale: re-check
                    continue
                except BaseException:
                    self.cache.forget(ids)
                    raise
        raise ConcurrentUpdate()

    def _decide(
        self, ids: list[UUID], decide: Callable[[dict[UUID, Any], datetime], list[Any]]
    ) -> Committed[Any]:
        """A decision over aggregates of several kinds, read from the log (never from a
        possibly stale cache) and saved at once; retried when a concurrent writer won."""
        for _ in range(MAX_ATTEMPTS):
            with self.lock:
                found = self._load(Aggregate, ids, from_log=True)  # type: ignore[type-abstract]
                try:
                    changed = decide(found, self.clock())
                    recorded = self._save(changed)
                    return Committed.of(changed, recorded)
                except IntegrityError:
                    self.cache.forget(ids)
                    continue
                except BaseException:
                    self.cache.forget(ids)
                    raise
        raise ConcurrentUpdate()

    def _save(self, aggregates: Iterable[Aggregate]) -> list[tuple[int, Any]]:
        dirty = [a for a in aggregates if a.pending_events]
        if not dirty:
            return []
        # As Application.save does, minus its per-object protocol checks, which cost more
        # than the rest of the Python side of a save at a hundred events.
        processing = ProcessingEvent[UUID]()
        for aggregate in dirty:
            processing.events.extend(aggregate.collect_events())
            processing.aggregates[aggregate.id] = aggregate
        with self.lock:
            try:
                recordings = self._record(processing)
            except BaseException:
                self.cache.forget(processing.aggregates)
                raise
            self.cache.put(dirty)
        self._take_snapshots(processing)
        self._notify(recordings)
        recorded = [(r.notification.id, r.domain_event) for r in recordings]
        for listener in self.listeners:
            listener(recorded)
        return recorded
