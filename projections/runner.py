"""Keeping views up to date: pages of events applied exactly once, with their positions.

A runner keeps a GROUP of views (a feature's: they follow the same events and belong
together). It reads each page of the log once, for the union of their topics, decodes
each event once, and applies the page to every view of the group in ONE transaction,
together with each view's tracking position. So a crash at any point leaves every view
exactly at some position: restarting resumes from there, and the result equals a rebuild
from zero. The transaction runs in pipeline mode: the views' writes travel together and
the page costs a round trip per read it makes, not one per statement.

Each view keeps a position of its own, so each is still rebuilt on its own: a view behind
the others (just rebuilt from zero) is given only the events after its own position, and
the group reads from the lowest. The position rows are locked (``FOR UPDATE``, in view
order) and compared before a page is applied, so two runners of the same views (two
engines, or an engine and a rebuild) never apply a page twice: one that finds a position
moved re-reads them. After each page the runner publishes ``<view>:<position>`` on
``apiary_views`` for each of its views, for readers waiting to read their own writes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from eventsourcing.persistence import Notification

from projections.bulk import defer_indexes
from projections.storable import storable_event
from projections.timings import ProcessTimings
from store.follower import LogFollower, NotificationSource, Page, Pages
from store.shared_log import SharedLog

log = logging.getLogger(__name__)

VIEWS_CHANNEL = "apiary_views"
IDLE_FLUSH_S = 1.0
SETTLE_S = 0.005  # after a wake-up, before reading: one page per burst of commits

_ENSURE = "INSERT INTO projection_positions (view) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING"
_LOCK = (
    "SELECT view, position FROM projection_positions WHERE view = ANY(%s) ORDER BY view FOR UPDATE"
)
_MOVE = (
    "UPDATE projection_positions p SET position = GREATEST(p.position, %s), updated_at = now() "
    "WHERE view = ANY(%s)"
)
_NOTIFY = "SELECT pg_notify(%s, v || ':' || %s) FROM unnest(%s::text[]) v"


@dataclass(frozen=True)
class Positioned:
    position: int
    event: Any  # a domain event of the hive


Decoded = dict[int, Positioned]  # a page's events by position, decoded


class View(Protocol):
    name: str
    tables: tuple[str, ...]
    topics: tuple[str, ...]  # the events it reads; the others it passes over unread
    handles: frozenset[type]  # of the aggregates it follows, the event classes it acts on
    ignores: frozenset[type]  # and those it passes over on purpose (a test checks both)

    def apply(self, cur: psycopg.Cursor[Any], events: Sequence[Positioned]) -> None: ...


class PositionMoved(Exception):
    """Another runner (or a rebuild) moved a view's position: re-read them."""


def read_position(conn: psycopg.Connection[Any], view: str, *, lock: bool = False) -> int:
    return read_positions(conn, [view], lock=lock)[view]


def read_positions(
    conn: psycopg.Connection[Any], views: Sequence[str], *, lock: bool = False
) -> dict[str, int]:
    """Each view's stored position (a view never seen starts at 0); ``lock``: held until
    the transaction ends, the rows locked in view order (so runners never deadlock)."""
    names = sorted(views)
    conn.execute(_ENSURE, (names,))
    return _positions(conn, names, lock=lock)


def _positions(
    conn: psycopg.Connection[Any], names: Sequence[str], *, lock: bool
) -> dict[str, int]:
    """The stored positions of the views that have a row (``read_positions`` makes them)."""
    query = _LOCK if lock else _LOCK.removesuffix(" FOR UPDATE")
    return {view: int(position) for view, position in conn.execute(query, (sorted(names),))}


class ProjectionRunner:
    def __init__(
        self,
        views: View | Sequence[View],
        source: NotificationSource,
        decode: Callable[[Notification], Any],
        conninfo: str,
        *,
        page_size: int = 500,
        poll_interval: float = 1.0,
        retry_interval: float = 0.5,
        shared: SharedLog | None = None,
        timings: ProcessTimings | None = None,
    ) -> None:
        """``views``: one view, or a group kept together. ``shared``: the process's one
        reader of the log, when it has one; without it the runner listens and reads for
        itself. ``timings``: where each view's apply of a page is counted."""
        self.views: tuple[View, ...] = tuple(views) if isinstance(views, Sequence) else (views,)
        if not self.views:
            raise ValueError("a runner keeps at least one view")
        self.name = "+".join(v.name for v in self.views)
        self.names = [v.name for v in self.views]
        self.topics = tuple(dict.fromkeys(t for v in self.views for t in v.topics))
        self._topics = [frozenset(v.topics) for v in self.views]
        self.source = source
        self.decode = decode
        self.conninfo = conninfo
        self.page_size = page_size
        self.poll_interval = poll_interval
        self.retry_interval = retry_interval
        self.positions: dict[str, int] = dict.fromkeys(self.names, 0)  # stored with the views
        self.cursor = 0  # how far the runner has read (>= the lowest position)
        self.apply_s: dict[str, float] = dict.fromkeys(self.names, 0.0)  # time in each view
        self.applied_events: dict[str, int] = dict.fromkeys(self.names, 0)
        self.timings = timings
        self.healthy = threading.Event()
        self.applied = threading.Condition()
        # A shared log learns the views' topics now, before anyone reads for them.
        self.shared = shared.follower(self.topics, settle_s=SETTLE_S) if shared else None

    @property
    def position(self) -> int:
        """How far every view of the group has applied the log."""
        return min(self.positions.values())

    # -- running ----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Follow the log until ``stop``; reconnect and resume after any database failure."""
        follower: Pages = self.shared or LogFollower(
            self.source,
            self.conninfo,
            page_size=self.page_size,
            poll_interval=self.poll_interval,
            topics=self.topics,
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
                            "view": self.name,
                            "error": type(e).__name__,
                        },
                    )
                    stop.wait(self.retry_interval)

    def _follow(
        self, conn: psycopg.Connection[Any], follower: Pages, stop: threading.Event
    ) -> None:
        """Apply what concerns the views at once. A stretch of the log with nothing for
        them is only read past (``cursor``); the stored positions catch up when the next
        page is applied or after ``IDLE_FLUSH_S``, so other traffic costs no writes."""
        self._resync(conn)
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
        """Apply pages until the head of the log (or ``until``) is reached; returns the
        position every view has reached. The next page is read and decoded (in a thread
        of its own) while this one is applied: the database works on the one while
        Python works on the other."""
        follower = LogFollower(
            self.source, self.conninfo, page_size=self.page_size, topics=self.topics
        )
        with (
            psycopg.connect(self.conninfo, connect_timeout=5) as conn,
            ThreadPoolExecutor(1, thread_name_prefix=f"read-{self.name}") as reader,
        ):
            self._resync(conn)
            at, ahead = self.cursor, reader.submit(self._read_decoded, follower, self.cursor)
            while until is None or self.position < until:
                page, decoded = ahead.result()
                if at != self.cursor:  # resynced meanwhile: that page was read for elsewhere
                    at, ahead = (
                        self.cursor,
                        reader.submit(self._read_decoded, follower, self.cursor),
                    )
                    continue
                if page.end == at:
                    break
                at, ahead = page.end, reader.submit(self._read_decoded, follower, page.end)
                self._apply_or_resync(conn, page, decoded)
            ahead.cancel()
        return self.position

    def _read_decoded(self, follower: LogFollower, position: int) -> tuple[Page, Decoded]:
        page = follower.read(position)
        return page, {n.id: Positioned(n.id, self.decode(n)) for n in page.items}

    # -- one page ---------------------------------------------------------------------

    def _resync(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            self.positions = read_positions(conn, self.names)
        self.cursor = self.position

    def _apply_or_resync(
        self, conn: psycopg.Connection[Any], page: Page, decoded: Decoded | None = None
    ) -> None:
        try:
            try:
                self._apply(conn, page, decoded)
            except (psycopg.DataError, UnicodeEncodeError) as e:
                self._apply_storable(conn, page, decoded, e)
        except PositionMoved:
            self._resync(conn)
            log.info(
                "view position moved by another runner",
                extra={"action": "view_resync", "view": self.name, "position": self.position},
            )

    def _apply_storable(
        self,
        conn: psycopg.Connection[Any],
        page: Page,
        decoded: Decoded | None,
        error: Exception,
    ) -> None:
        """The page again, with every event's text made storable (``storable.py``): the
        log may hold an event a view cannot store as it is, and must not stop it for good.
        A page that fails again fails as any page does (the runner restarts)."""
        decoded = {} if decoded is None else decoded
        for n in page.items:
            p = decoded.get(n.id)
            event = self.decode(n) if p is None else p.event
            decoded[n.id] = Positioned(n.id, storable_event(event))
        log.warning(
            "a page of the log had text the views cannot store; stored it escaped",
            extra={
                "action": "view_escaped",
                "view": self.name,
                "from": page.items[0].id if page.items else page.end,
                "to": page.end,
                "error": type(error).__name__,
            },
        )
        self._apply(conn, page, decoded)

    def _apply(
        self, conn: psycopg.Connection[Any], page: Page, decoded: Decoded | None = None
    ) -> None:
        end = page.end
        decoded = {} if decoded is None else decoded  # each event decoded once, for every view
        with conn.pipeline(), conn.transaction(), conn.cursor() as cur:
            # A view is derived from the log and moves with its position in one transaction:
            # a commit lost in a crash of the server is applied again, so none waits on a
            # flush to disk.
            cur.execute("SET LOCAL synchronous_commit = off")
            # (the rows exist: _resync made them; one gone reads as moved, and resyncs)
            if _positions(conn, self.names, lock=True) != self.positions:
                raise PositionMoved()
            for view, topics in zip(self.views, self._topics, strict=True):
                since = self.positions[view.name]
                mine = []
                for n in page.items:
                    if n.id > since and n.topic in topics:
                        p = decoded.get(n.id)
                        if p is None:
                            p = decoded[n.id] = Positioned(n.id, self.decode(n))
                        mine.append(p)
                if mine:
                    started = time.perf_counter()
                    view.apply(cur, mine)
                    took = time.perf_counter() - started
                    self.apply_s[view.name] += took
                    self.applied_events[view.name] += len(mine)
                    if self.timings is not None:
                        self.timings.page(view.name, took, len(mine))
            cur.execute(_MOVE, (end, self.names))
            cur.execute(_NOTIFY, (VIEWS_CHANNEL, str(end), self.names))
        self.positions = {name: max(at, end) for name, at in self.positions.items()}
        self.cursor = max(self.cursor, end)
        with self.applied:
            self.applied.notify_all()


def reset_view(conninfo: str, view: View, *, deferring_indexes: bool = False) -> None:
    """Empty a view and set its position to zero, in one transaction (rebuild = reset +
    replay). ``deferring_indexes``: its secondary indexes are dropped too, until
    ``projections.bulk.restore_indexes`` (a replay of the whole log writes faster without)."""
    with psycopg.connect(conninfo, connect_timeout=5) as conn, conn.transaction():
        read_position(conn, view.name, lock=True)
        for table in view.tables:
            conn.execute(f"TRUNCATE {table}")  # names are ours, never input
        if deferring_indexes:
            defer_indexes(conn, view.name, view.tables)
        conn.execute("UPDATE projection_positions SET position = 0 WHERE view = %s", (view.name,))
