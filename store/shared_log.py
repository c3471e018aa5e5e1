"""One reader of the log for all the followers of a process.

Every follower of the log used to listen and read for itself: on each commit, each of a
process's followers (seven view runners and the live index) was woken by its own LISTEN
connection and read the new stretch of the log with two queries of its own. A
``SharedLog`` listens once and reads each stretch once, for the union of its followers'
topics, into a window of recent notifications; each follower takes its own topics from the
window, in its own thread, at its own pace.

The window holds every notification of those topics in ``(low, head]`` (commit order is id
order, so every id up to a head that was read is settled). A follower within the window is
served from memory; one at the head reads the next stretch for everyone, when a wake-up
(or its poll) says there may be one; one behind the window (just started, or its view
rebuilt from zero) reads for itself, as a ``LogFollower`` does, until it is back in it.
A follower ahead of the window moves the window to itself.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Sequence

from eventsourcing.persistence import Notification

from store.follower import NotificationSource, Page, Wakeup, read_page


class SharedLog:
    def __init__(
        self,
        source: NotificationSource,
        conninfo: str,
        *,
        page_size: int = 500,
        poll_interval: float = 1.0,
        window: int | None = None,
    ) -> None:
        self.source = source
        self.page_size = page_size
        self.poll_interval = poll_interval
        self.window = window or 8 * page_size
        self.wakeup = Wakeup(conninfo, source.channel_name, on_notify=self._heard)
        self._topics: set[str] = set()
        self._every_topic = False
        self._followers: list[SharedFollower] = []
        self._lock = threading.Lock()
        self._users = 0
        self._ids: list[int] = []
        self._items: list[Notification] = []
        self._low = self._head = -1  # -1: nothing held yet
        self._news = 0  # wake-ups heard
        self._read_news = -1  # the wake-ups heard when the head was last read
        self._read_at = 0.0  # time.monotonic() of that read

    def resize(self, page_size: int) -> None:
        """Pages of ``page_size`` from now on (a change of the runtime configuration); the
        window follows (eight pages)."""
        with self._lock:
            self.page_size, self.window = page_size, 8 * page_size

    def follower(self, topics: Sequence[str] = (), *, settle_s: float = 0.0) -> SharedFollower:
        """A follower of ``topics`` (every topic when empty), served from this log."""
        follower = SharedFollower(self, topics, settle_s)
        with self._lock:
            self._topics.update(topics)
            self._every_topic = self._every_topic or not topics
            self._followers.append(follower)
            self._forget(-1)  # the window was read for fewer topics
        return follower

    # -- listening --------------------------------------------------------------------

    def _enter(self) -> None:
        with self._lock:
            self._users += 1
            first = self._users == 1
        if first:
            self.wakeup.start()

    def _exit(self) -> None:
        with self._lock:
            self._users -= 1
            last = self._users == 0
        if last:
            self.wakeup.stop()
            self.wakeup = Wakeup(self.wakeup.conninfo, self.wakeup.channel, on_notify=self._heard)

    def _heard(self, _payload: str | None) -> None:
        with self._lock:
            self._news += 1
            followers = list(self._followers)
        for follower in followers:
            follower.event.set()

    # -- reading ----------------------------------------------------------------------

    def behind(self, position: int) -> bool:
        """Whether the log after ``position`` is still to be read (not in the window)."""
        return position >= self._head

    def read(self, follower: SharedFollower, position: int, *, poll: bool = False) -> Page:
        """``follower``'s page after ``position``; ``poll``: look in the log even if no
        wake-up came since it was last read (the safety net under LISTEN)."""
        with self._lock:
            if self._head < 0 or position > self._head:
                self._forget(position)
            if position >= self._low:
                if position == self._head and self._may_have_news(poll):
                    self._read_head()
                return self._serve(follower, position)
        return read_page(self.source, position, self.page_size, sorted(follower.topics) or None)

    def _may_have_news(self, poll: bool) -> bool:
        if self._read_news != self._news:
            return True
        return poll and time.monotonic() - self._read_at >= self.poll_interval / 2

    def _read_head(self) -> None:
        news = self._news
        head = self._head
        topics = () if self._every_topic else sorted(self._topics)
        page = read_page(self.source, head, self.page_size, topics)
        if page.end == head:  # nothing new (or the log unreadable just now)
            self._read_news, self._read_at = news, time.monotonic()
            return
        self._ids.extend(n.id for n in page.items)
        self._items.extend(page.items)
        self._head = page.end
        full = len(page.items) == self.page_size
        self._read_news = -1 if full else news  # a full page: there may be more at once
        self._read_at = time.monotonic()
        excess = len(self._items) - self.window
        if excess > 0:
            self._low = self._ids[excess - 1]
            del self._ids[:excess], self._items[:excess]
        for other in self._followers:
            other.event.set()

    def _serve(self, follower: SharedFollower, position: int) -> Page:
        items: list[Notification] = []
        topics = follower.topics
        for n in self._items[bisect.bisect_right(self._ids, position) :]:
            if not topics or n.topic in topics:
                items.append(n)
                if len(items) == self.page_size:
                    return Page(items, n.id)
        return Page(items, self._head)

    def _forget(self, position: int) -> None:
        """Hold nothing: the window starts (empty) at ``position``."""
        self._ids.clear()
        self._items.clear()
        self._low = self._head = position
        self._read_news = -1


class SharedFollower:
    """One follower's view of a ``SharedLog``: what a ``LogFollower`` offers, read once."""

    def __init__(self, log: SharedLog, topics: Sequence[str], settle_s: float) -> None:
        self.log = log
        self.topics = frozenset(topics)
        self.settle_s = settle_s
        self.event = threading.Event()  # set by wake-ups and by stretches read for others
        self._pace = threading.Event()  # never set: waiting on it is a pacing interval

    @property
    def page_size(self) -> int:
        return self.log.page_size

    def __enter__(self) -> SharedFollower:
        self.log._enter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.log._exit()

    def next_page(self, position: int) -> Page:
        """The events after ``position``; an empty page if none came within ``poll_interval``."""
        self.event.clear()
        page = self.log.read(self, position)
        if page.end == position:
            if not self.event.wait(self.log.poll_interval):
                return self.log.read(self, position, poll=True)
            if self.settle_s and self.log.behind(position):
                # Woken by a commit: let the burst it belongs to land, then read it as one
                # page (fewer, larger transactions; less contention with the writer).
                self._pace.wait(self.settle_s)
            page = self.log.read(self, position)
        return page

    def read(self, position: int) -> Page:
        return self.log.read(self, position, poll=True)
