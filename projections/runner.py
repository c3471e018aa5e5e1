"""Keeping a view up to date: pages of events applied exactly once, with their position.

Each page of events is applied in ONE transaction together with the view's tracking
position, so a crash at any point leaves the view exactly at some position: restarting
resumes from there, and the result equals a rebuild from zero. The position row is locked
(``FOR UPDATE``) and compared before a page is applied, so two runners of the same view
(two engines) never apply a page twice: the one that finds the position moved re-reads it.
After each page the runner publishes ``<view>:<position>`` on ``apiary_views`` for readers
waiting to read their own writes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from eventsourcing.persistence import Notification

from store.follower import LogFollower, NotificationSource, Page, Pages
from store.shared_log import SharedLog

log = logging.getLogger(__name__)

VIEWS_CHANNEL = "apiary_views"
IDLE_FLUSH_S = 1.0
SETTLE_S = 0.005  # after a wake-up, before reading: one page per burst of commits


@dataclass(frozen=True)
class Positioned:
    position: int
    event: Any  # a domain event of the hive


class View(Protocol):
    name: str
    tables: tuple[str, ...]
    topics: tuple[str, ...]  # the events it reads; the others it passes over unread
    handles: frozenset[type]  # of the aggregates it follows, the event classes it acts on
    ignores: frozenset[type]  # and those it passes over on purpose (a test checks both)

    def apply(self, cur: psycopg.Cursor[Any], events: Sequence[Positioned]) -> None: ...


class PositionMoved(Exception):
    """Another runner (or a rebuild) moved the view's position: re-read it."""


def read_position(conn: psycopg.Connection[Any], view: str, *, lock: bool = False) -> int:
    conn.execute(
        "INSERT INTO projection_positions (view) VALUES (%s) ON CONFLICT DO NOTHING", (view,)
    )
    row = conn.execute(
        "SELECT position FROM projection_positions WHERE view = %s"
        + (" FOR UPDATE" if lock else ""),
        (view,),
    ).fetchone()
    assert row is not None
    return int(row[0])


class ProjectionRunner:
    def __init__(
        self,
        view: View,
        source: NotificationSource,
        decode: Callable[[Notification], Any],
        conninfo: str,
        *,
        page_size: int = 500,
        poll_interval: float = 1.0,
        retry_interval: float = 0.5,
        shared: SharedLog | None = None,
    ) -> None:
        """``shared``: the process's one reader of the log, when it has one; without it
        the runner listens and reads for itself."""
        self.view = view
        self.source = source
        self.decode = decode
        self.conninfo = conninfo
        self.page_size = page_size
        self.poll_interval = poll_interval
        self.retry_interval = retry_interval
        self.position = 0  # what the view's table reflects (stored with it)
        self.cursor = 0  # how far the runner has read (>= position)
        self.healthy = threading.Event()
        self.applied = threading.Condition()
        # A shared log learns the view's topics now, before anyone reads for them.
        self.shared = shared.follower(view.topics, settle_s=SETTLE_S) if shared else None

    # -- running ----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Follow the log until ``stop``; reconnect and resume after any database failure."""
        follower: Pages = self.shared or LogFollower(
            self.source,
            self.conninfo,
            page_size=self.page_size,
            poll_interval=self.poll_interval,
            topics=self.view.topics,
            settle_s=SETTLE_S,
        )
        with follower:
            while not stop.is_set():
                try:
                    with psycopg.connect(self.conninfo, connect_timeout=5) as conn:
                        self._follow(conn, follower, stop)
                except psycopg.Error as e:
                    self.healthy.clear()
                    log.warning(
                        "view runner lost its database; restarting",
                        extra={
                            "action": "view_restart",
                            "view": self.view.name,
                            "error": type(e).__name__,
                        },
                    )
                    stop.wait(self.retry_interval)

    def _follow(
        self, conn: psycopg.Connection[Any], follower: Pages, stop: threading.Event
    ) -> None:
        """Apply what concerns the view at once. A stretch of the log with nothing for it
        is only read past (``cursor``); the stored position catches up when the next page
        is applied or after ``IDLE_FLUSH_S``, so the other views' traffic costs no writes."""
        with conn.transaction():
            self.position = self.cursor = read_position(conn, self.view.name)
        self.healthy.set()
        written = time.monotonic()
        while not stop.is_set():
            page = follower.next_page(self.cursor)
            if page.items or (
                page.end > self.position and time.monotonic() - written >= IDLE_FLUSH_S
            ):
                self._apply_or_resync(conn, page)
                written = time.monotonic()
            else:
                self.cursor = max(self.cursor, page.end)

    def catch_up(self, *, until: int | None = None) -> int:
        """Apply pages until the head of the log (or ``until``) is reached; returns the position."""
        follower = LogFollower(
            self.source, self.conninfo, page_size=self.page_size, topics=self.view.topics
        )
        with psycopg.connect(self.conninfo, connect_timeout=5) as conn:
            with conn.transaction():
                self.position = read_position(conn, self.view.name)
            while until is None or self.position < until:
                page = follower.read(self.position)
                if page.end == self.position:
                    break
                self._apply_or_resync(conn, page)
        return self.position

    # -- one page ---------------------------------------------------------------------

    def _apply_or_resync(self, conn: psycopg.Connection[Any], page: Page) -> None:
        try:
            self._apply(conn, page)
        except PositionMoved:
            with conn.transaction():
                self.position = self.cursor = read_position(conn, self.view.name)
            log.info(
                "view position moved by another runner",
                extra={"action": "view_resync", "view": self.view.name, "position": self.position},
            )

    def _apply(self, conn: psycopg.Connection[Any], page: Page) -> None:
        relevant = [Positioned(n.id, self.decode(n)) for n in page.items]
        end = page.end
        with conn.transaction(), conn.cursor() as cur:
            if read_position(conn, self.view.name, lock=True) != self.position:
                raise PositionMoved()
            if relevant:
                self.view.apply(cur, relevant)
            cur.execute(
                "UPDATE projection_positions SET position = %s, updated_at = now() WHERE view = %s",
                (end, self.view.name),
            )
            cur.execute("SELECT pg_notify(%s, %s)", (VIEWS_CHANNEL, f"{self.view.name}:{end}"))
        self.position = self.cursor = end
        with self.applied:
            self.applied.notify_all()


def reset_view(conninfo: str, view: View) -> None:
    """Empty a view and set its position to zero, in one transaction (rebuild = reset + replay)."""
    with psycopg.connect(conninfo, connect_timeout=5) as conn, conn.transaction():
        read_position(conn, view.name, lock=True)
        for table in view.tables:
            conn.execute(f"TRUNCATE {table}")  # names are ours, never input
        conn.execute("UPDATE projection_positions SET position = 0 WHERE view = %s", (view.name,))
