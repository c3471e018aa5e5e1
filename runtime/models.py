"""In-memory read models: one base for what the engine and the API keep in memory.

A live model (the live index, the mailbox, the launch book, what routing learned, the
config in force) starts from a consistent snapshot of its view, read through the view's
reads module in ``projections/`` (with the view's position), and then follows the log
from there through one ``LiveFeed`` per process: the feed starts at the lowest position
of its models and hands each model only the events past its own position, so catching up
from the log and following it are the same code. A model that also takes its own
process's writes at once (``takes_own_writes``) applies events idempotently by aggregate
version: an event applies only right after the one before it, so the feed's later copy
changes nothing, and one that does not follow on waits for the feed.

Each model names the event classes it handles and those it passes over on purpose
(``handles`` / ``ignores``), for every aggregate it follows; a test fails when an event
class exists that a model neither handles nor ignores.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

import psycopg

from store.follower import Pages


class LiveModel(ABC):
    """Subclasses set ``name``, ``topics``, ``handles`` and ``ignores`` and implement
    ``fill`` (fill from the view; return its position) and ``apply``."""

    name: ClassVar[str]
    topics: ClassVar[tuple[str, ...]]  # the events it follows
    handles: ClassVar[frozenset[type]]  # event classes it acts on
    ignores: ClassVar[frozenset[type]] = frozenset()  # event classes it passes over on purpose
    takes_own_writes: ClassVar[bool] = True  # fed its process's writes at once, too

    position: int = 0  # every event up to here is in the model

    def load(self, conn: psycopg.Connection[Any]) -> int:
        """Fill from the view in one consistent snapshot; returns where to follow from."""
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            self.position = self.fill(conn)
        return self.position

    @abstractmethod
    def fill(self, conn: psycopg.Connection[Any]) -> int:
        """Fill from the model's view (in the caller's snapshot); return its position."""

    @abstractmethod
    def apply(self, events: Iterable[tuple[int, Any]]) -> object:
        """Apply events of the log (idempotently by version, if ``takes_own_writes``)."""

    def follow(self, events: Sequence[tuple[int, Any]], end: int | None = None) -> None:
        """Events of the log in its order, up to ``end`` (default: the last of them):
        apply those past the model's position, and move it there."""
        if end is None:
            end = events[-1][0] if events else self.position
        if events and events[0][0] <= self.position:
            events = [(p, e) for p, e in events if p > self.position]
        if events:
            self.apply(events)
        self.position = max(self.position, end)


class LiveFeed:
    """Keeps a process's live models current: one follower of the union of their topics,
    from the lowest of their positions. ``observers`` hear every page too (the kernel's
    cache follows the log this way)."""

    def __init__(
        self,
        models: Sequence[LiveModel],
        follower: Pages,
        decode: Callable[[Any], Any],
        observers: Iterable[Callable[[list[tuple[int, Any]]], None]] = (),
    ) -> None:
        self.models = list(models)
        self.topics = [frozenset(m.topics) for m in self.models]
        self.follower = follower
        self.decode = decode
        self.observers = list(observers)
        self.caught_up = threading.Event()

    @property
    def position(self) -> int:
        return min((m.position for m in self.models), default=0)

    def run(self, stop: threading.Event) -> None:
        with self.follower:
            position = self.position
            while not stop.is_set():
                page = self.follower.next_page(position)
                events = [(n.id, self.decode(n)) for n in page.items]
                for model, topics in zip(self.models, self.topics, strict=True):
                    mine = [
                        pe for pe, n in zip(events, page.items, strict=True) if n.topic in topics
                    ]
                    model.follow(mine, page.end)
                if events:
                    for observe in self.observers:
                        observe(events)
                position = max(position, page.end)
                if len(page.items) < self.follower.page_size:
                    self.caught_up.set()


def topics_of(models: Iterable[LiveModel]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t for m in models for t in m.topics))
