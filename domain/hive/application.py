"""The eventsourcing Application under the Hive: its clock and ids, and reading the truth.

Aggregates are read from a cache of recent ones, or from the log itself when in doubt;
callers outside the Hive get copies. The commands build on this (``domain.hive.commands``).
"""

from __future__ import annotations

import copy
import secrets
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar, cast
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import StoredEvent

from domain.aggregate_cache import AggregateCache
from domain.errors import NotFound

A = TypeVar("A", bound=Aggregate)


def utc_now() -> datetime:
    return datetime.now(UTC)


class HiveApplication(Application[UUID]):
    """The clock, new ids, the cache of aggregates and one lock; reading the truth."""

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[], UUID] = uuid4,
        new_secret: Callable[[], str] = lambda: secrets.token_urlsafe(32),
    ) -> None:
        super().__init__(env)
        self.cache = AggregateCache()
        self.listeners: list[Callable[[list[tuple[int, Any]]], object]] = []
        self.lock = threading.RLock()  # one command at a time per process: the log
        self.clock = clock  # serializes writers anyway; this keeps cached aggregates whole
        self.new_id = new_id
        self.new_secret = new_secret

    # -- reading the truth ------------------------------------------------------------

    def load_many(self, kind: type[A], ids: Iterable[UUID], *, fresh: bool = True) -> dict[UUID, A]:
        """Aggregates of one kind as the log has them; ids not found are left out.

        Read from the log itself (the cache may be behind another process's writes) unless
        ``fresh`` is False, for a caller that tolerates that (its next command re-checks).
        The caller gets copies, to read at leisure while commands go on.
        """
        with self.lock:
            found = self._load(kind, list(dict.fromkeys(ids)), from_log=fresh)
            return {i: _detached(a) for i, a in found.items()}

    def cached_many(self, kind: type[A], ids: Iterable[UUID]) -> dict[UUID, A] | None:
        """Like ``load_many``, but only from memory and never waiting: None when any is not
        cached or a command is running. For callers that must not block (an event loop)."""
        if not self.lock.acquire(blocking=False):
            return None
        try:
            found = {}
            for i in ids:
                aggregate = self.cache.get(i)
                if aggregate is None:
                    return None
                if isinstance(aggregate, kind):
                    found[i] = _detached(aggregate)
            return found
        finally:
            self.lock.release()

    def observe(self, events: Iterable[tuple[int, Any]]) -> None:
        """Events seen in the log: forget cached aggregates that another process moved on."""
        with self.lock:
            for _, event in events:
                self.cache.forget_older(event.originator_id, event.originator_version)

    def history(self, aggregate_id: UUID) -> list[Any]:
        """Every event of one aggregate, oldest first, as the log has them."""
        return list(self.repository.event_store.get(aggregate_id))

    def get(self, kind: type[A], aggregate_id: UUID) -> A:
        found = self.load_many(kind, [aggregate_id])
        if aggregate_id not in found:
            raise NotFound(f"no {kind.__name__.lower()} {aggregate_id}", id=aggregate_id)
        return found[aggregate_id]

    def _load(self, kind: type[A], wanted: list[UUID], *, from_log: bool = False) -> dict[UUID, A]:
        found: dict[UUID, Any] = {}
        missing = []
        for i in wanted:
            cached = None if from_log else self.cache.get(i)
            if cached is None:
                missing.append(i)
            else:
                found[i] = cached
        if missing:
            loaded = self._read_log(missing)
            self.cache.put(loaded.values())
            found.update(loaded)
        return {i: a for i, a in found.items() if isinstance(a, kind)}

    def _read_log(self, ids: list[UUID]) -> dict[UUID, Any]:
        select_many = getattr(self.recorder, "select_events_many", None)
        found: dict[UUID, Any] = {}
        if select_many is None:
            for i in ids:
                try:
                    found[i] = self.repository.get(i)
                except AggregateNotFoundError:
                    continue
            return found
        stored: list[StoredEvent] = select_many(ids)
        for record in stored:
            event: Any = self.mapper.to_domain_event(record)
            key = cast(UUID, record.originator_id)
            found[key] = event.mutate(found.get(key))
        return found


def _detached(aggregate: A) -> A:
    """A copy that shares nothing mutable with the cached original."""
    twin = copy.copy(aggregate)
    twin._pending_events = []  # type: ignore[attr-defined]
    return twin
