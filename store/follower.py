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
from collections.abc import Iterator
from typing import Protocol

import psycopg
from eventsourcing.persistence import InterfaceError, Notification, OperationalError
from psycopg.sql import SQL, Identifier

log = logging.getLogger(__name__)


class NotificationSource(Protocol):
    channel_name: str

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: tuple[str, ...] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> list[Notification]: ...


class Wakeup:
    """A LISTEN connection on one channel that sets an event on each notification.

    It reconnects by itself when the connection drops; each reconnect also sets the event,
    because notifications sent while it was away are lost and the reader must look.
    """

    def __init__(self, conninfo: str, channel: str, *, retry_interval: float = 0.5) -> None:
        self.conninfo = conninfo
        self.channel = channel
        self.retry_interval = retry_interval
        self.event = threading.Event()
        self.payloads: list[str] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"listen-{channel}", daemon=True)

    def start(self) -> Wakeup:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self.event.set()
        self._thread.join(timeout=5)

    def drain(self) -> list[str]:
        with self._lock:
            out, self.payloads = self.payloads, []
        return out

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(SQL("LISTEN {}").format(Identifier(self.channel)))
                    self.event.set()
                    while not self._stopped.is_set():
                        for note in conn.notifies(timeout=0.25):
                            if note.payload:
                                with self._lock:
                                    self.payloads.append(note.payload)
                            self.event.set()
            except psycopg.Error as e:
                log.warning(
                    "listen connection lost; reconnecting",
                    extra={
                        "action": "listen_reconnect",
                        "channel": self.channel,
                        "error": type(e).__name__,
                    },
                )
                self.event.set()
                self._stopped.wait(self.retry_interval)


class LogFollower:
    """Yields pages of notifications after ``position`` until ``stop`` is set."""

    def __init__(
        self,
        source: NotificationSource,
        conninfo: str,
        *,
        page_size: int = 500,
        poll_interval: float = 1.0,
        topics: tuple[str, ...] = (),
    ) -> None:
        self.source = source
        self.page_size = page_size
        self.poll_interval = poll_interval
        self.topics = topics
        self.wakeup = Wakeup(conninfo, source.channel_name)

    def pages(self, position: int, stop: threading.Event) -> Iterator[list[Notification]]:
        self.wakeup.start()
        try:
            while not stop.is_set():
                self.wakeup.event.clear()
                page = self._read(position)
                if page:
                    position = page[-1].id
                    yield page
                    continue
                self.wakeup.event.wait(self.poll_interval)
        finally:
            self.wakeup.stop()

    def _read(self, position: int) -> list[Notification]:
        try:
            return list(
                self.source.select_notifications(
                    position, self.page_size, topics=self.topics, inclusive_of_start=False
                )
            )
        except (OperationalError, InterfaceError) as e:
            log.warning(
                "log unreadable; will retry",
                extra={"action": "follow_retry", "error": type(e).__name__},
            )
            return []
