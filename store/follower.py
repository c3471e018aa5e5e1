"""Tailing the log: pages of notifications after a position, as they are committed.

Wake-ups are pushed (LISTEN on the events table's channel) and a periodic poll is the
safety net, so a lost notification or a dropped listening connection delays a follower
by at most ``poll_interval`` and never stalls it. Because every writer holds the events
table's EXCLUSIVE lock until commit, commit order equals ``notification_id`` order and a
tailing reader never skips an event committed later with a lower id.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import psycopg
from eventsourcing.persistence import InterfaceError, Notification, OperationalError
from psycopg.sql import SQL, Identifier

from store.health import DatabaseUnavailable

log = logging.getLogger(__name__)


class NotificationSource(Protocol):
    channel_name: str

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]: ...

    def max_notification_id(self) -> int | None: ...


class Pages(Protocol):
    """What a follower of the log reads from: a ``LogFollower`` of its own, or its share of
    a process's ``SharedLog`` (used as a context manager while following)."""

    @property
    def page_size(self) -> int: ...

    def __enter__(self) -> object: ...

    def __exit__(self, *exc: object) -> None: ...

    def next_page(self, position: int) -> Page: ...


class Wakeup:
    """A LISTEN connection on one channel; sets ``event`` and calls ``on_notify`` per message.

    It reconnects by itself when the connection drops. Each (re)connect also sets the event
    and calls ``on_notify(None)``: notifications sent while it was away are lost, so whoever
    waits must look for themselves.
    """

    def __init__(
        self,
        conninfo: str,
        channel: str,
        *,
        on_notify: Callable[[str | None], None] | None = None,
        retry_interval: float = 0.5,
    ) -> None:
        self.conninfo = conninfo
        self.channel = channel
        self.on_notify = on_notify
        self.retry_interval = retry_interval
        self.event = threading.Event()
        self.connected = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"listen-{channel}", daemon=True)

    def start(self) -> Wakeup:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self.event.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _signal(self, payload: str | None) -> None:
        self.event.set()
        if self.on_notify is not None:
            self.on_notify(payload)

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(SQL("LISTEN {}").format(Identifier(self.channel)))
                    self.connected.set()
                    self._signal(None)
                    while not self._stopped.is_set():
                        for note in conn.notifies(timeout=0.25):
                            self._signal(note.payload)
            except psycopg.Error as e:
                self.connected.clear()
                log.warning(
                    "listen connection lost; reconnecting",
                    extra={
                        "action": "listen_reconnect",
                        "channel": self.channel,
                        "error": type(e).__name__,
                    },
                )
                self._signal(None)
                self._stopped.wait(self.retry_interval)


@dataclass(frozen=True)
class Page:
    """Notifications after a position, and the position a reader has reached with them.

    ``end`` may lie beyond the last notification: a follower of some topics only learns
    that nothing of interest happened up to ``end``.
    """

    items: list[Notification]
    end: int


class LogFollower:
    """Reads the page of notifications after a position, waiting for one when there is none.

    With ``topics``, only those notifications are read, up to the head of the log as it was
    when the page was read: every id up to the head is then settled (commit order is id
    order), so the reader may move past the others without reading them.
    """

    def __init__(
        self,
        source: NotificationSource,
        conninfo: str,
        *,
        page_size: int = 500,
        poll_interval: float = 1.0,
        topics: Sequence[str] = (),
        settle_s: float = 0.0,
    ) -> None:
        self.source = source
        self.page_size = page_size
        self.poll_interval = poll_interval
        self.settle_s = settle_s
        self._pace = threading.Event()  # never set: waiting on it is a pacing interval
        self.topics = list(topics)
        self.wakeup = Wakeup(conninfo, source.channel_name)

    def __enter__(self) -> LogFollower:
        self.wakeup.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wakeup.stop()

    def next_page(self, position: int) -> Page:
        """The events after ``position``; an empty page if none came within ``poll_interval``."""
        self.wakeup.event.clear()
        page = self.read(position)
        if page.end == position:
            if self.wakeup.event.wait(self.poll_interval) and self.settle_s:
                # Woken by a commit: let the burst it belongs to land, then read it as one
                # page (fewer, larger transactions; less contention with the writer).
                self._pace.wait(self.settle_s)
            page = self.read(position)
        return page

    def read(self, position: int) -> Page:
        return read_page(self.source, position, self.page_size, self.topics or None)


def read_page(
    source: NotificationSource, position: int, page_size: int, topics: Sequence[str] | None
) -> Page:
    """The page after ``position``; an empty page at ``position`` when the log cannot be
    read just now. ``topics`` None: the next notifications, whatever they are. Otherwise
    the head is read first and only ``topics`` (every topic when empty) up to it, so a
    page that is not full ends at the head (see ``LogFollower``), and a log that did not
    move costs no page query."""
    try:
        if topics is None:
            items = list(source.select_notifications(position, page_size, inclusive_of_start=False))
            return Page(items, items[-1].id if items else position)
        head = source.max_notification_id() or 0
        if head <= position:
            return Page([], position)
        items = list(
            source.select_notifications(
                position, page_size, stop=head, topics=topics, inclusive_of_start=False
            )
        )
        full = len(items) == page_size
        return Page(items, items[-1].id if full else head)
    except (OperationalError, InterfaceError, DatabaseUnavailable) as e:
        log.warning(
            "log unreadable; will retry",
            extra={"action": "follow_retry", "error": type(e).__name__},
        )
        return Page([], position)


class RecentEvents:
    """Decoded events by log position, shared by a process's followers.

    Every follower of a page would decode it again; with this, a page is decoded once per
    process, and events the process wrote itself are never decoded at all (the writer
    hands them over as it records them). Events are immutable, so sharing them is safe.
    """

    def __init__(
        self, decode: Callable[[Notification], object], max_bytes: int = 32 * 1024 * 1024
    ) -> None:
        self._decode = decode
        self.max_bytes = max_bytes
        self.bytes = 0
        self._events: dict[int, tuple[object, int]] = {}
        self._lock = threading.Lock()

    def resize(self, max_bytes: int) -> None:
        with self._lock:
            self.max_bytes = max_bytes
            self._trim()

    def remember(self, recorded: Sequence[tuple[int, object]]) -> None:
        with self._lock:
            for position, event in recorded:
                self._keep(position, event)
            self._trim()

    def decode(self, notification: Notification) -> object:
        entry = self._events.get(notification.id)
        if entry is not None:
            return entry[0]
        event = self._decode(notification)
        with self._lock:
            self._keep(notification.id, event)
            self._trim()
        return event

    def _keep(self, position: int, event: object) -> None:
        if position not in self._events:
            size = event_cost(event)
            self._events[position] = (event, size)
            self.bytes += size

    def _trim(self) -> None:
        """The oldest go first, down to nine tenths of the budget (so a trim is rare)."""
        if self.bytes <= self.max_bytes:
            return
        for position in sorted(self._events):
            self.bytes -= self._events.pop(position)[1]
            if self.bytes <= self.max_bytes * 0.9:
                break


EVENT_OVERHEAD_BYTES = 600  # a decoded event: its object, dict, ids, time, actor, request


def event_cost(event: object) -> int:
    """About how many bytes a decoded event holds: a fixed overhead plus its text."""
    total = EVENT_OVERHEAD_BYTES
    for value in getattr(event, "__dict__", {}).values():
        if value.__class__ is str:  # (not isinstance: this runs for every event)
            total += len(value)
    return total
