"""KeepAlivePool: at most ``size`` connections to the hive, the idle ones reused newest first.

A thread takes a connection for one exchange and gives it back, open for the next one
or not; a connection is never used by two threads at once, and the bot's threads
(claimer, reporter, heartbeat, messages, handlers) share a few warm connections instead
of each opening its own. Threads that wait for one are served in the order they came,
so a thread that gives one back and takes one again at once cannot starve them.

Newest first: the connection used last is the one least likely to have been closed by
the server for sitting idle, and when it was, every other idle one was idle longer
(``drop_idle``).

``close()`` may come from any thread while others are mid-exchange: it closes the idle
connections and shuts down the busy ones, so that a thread blocked reading one wakes up
with an error at once instead of at its read timeout; that thread then closes it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import deque
from collections.abc import Callable

from runtime.bot.transport import TransportError

Connect = Callable[[float], socket.socket]
"""Opens a new connection, given the seconds it may take."""

CLOSED = "the connections to the hive are closed"


class KeepAlivePool:
    def __init__(self, connect: Connect, size: int) -> None:
        if size < 1:
            raise ValueError("a pool needs room for at least one connection")
        self._connect = connect
        self._size = size
        self._changed = threading.Condition()
        self._idle: list[socket.socket] = []  # the newest last
        self._busy: set[socket.socket] = set()
        self._taken = 0  # connections handed out, or being opened to be
        self._queue: deque[object] = deque()  # the threads in take(), in arrival order
        self._closed = False

    def take(self, wait_s: float, connect_s: float) -> tuple[socket.socket, bool]:
        """A connection, and whether it was used before: an idle one, or a new one when
        there is room; waits up to ``wait_s`` for either. Raises ``TransportError`` when
        none came free in time or the pool is closed, ``OSError`` when connecting fails."""
        me = object()
        with self._changed:
            self._queue.append(me)
            try:
                if not self._changed.wait_for(lambda: self._may_take(me), wait_s):
                    raise TransportError(f"no connection came free within {wait_s:g} s")
            finally:
                self._queue.remove(me)
                self._changed.notify_all()  # the next in line may be served now
            if self._closed:
                raise TransportError(CLOSED)
            self._taken += 1
            if self._idle:
                reused = self._idle.pop()
                self._busy.add(reused)
                return reused, True
        try:
            fresh = self._connect(connect_s)
        except BaseException:
            self._free_slot()
            raise
        with self._changed:
            if not self._closed:
                self._busy.add(fresh)
                return fresh, False
        fresh.close()
        self._free_slot()
        raise TransportError(CLOSED)

    def give_back(self, connection: socket.socket, *, keep: bool) -> None:
        """Ends the exchange on ``connection``: idle for the next one when ``keep`` (its
        answer was read whole and the server keeps it open), closed otherwise."""
        with self._changed:
            self._taken -= 1
            self._busy.discard(connection)
            keep = keep and not self._closed
            if keep:
                self._idle.append(connection)
            self._changed.notify_all()
        if not keep:
            connection.close()

    def drop_idle(self) -> None:
        """Closes the idle connections: the server closed a newer one for idleness."""
        with self._changed:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            idle, self._idle = self._idle, []
            for connection in self._busy:  # under the lock: its thread has not closed it yet
                with contextlib.suppress(OSError):  # already reset or shut: nothing to wake
                    # socket.socket's own: an SSLSocket's would also unwrap it under the
                    # feet of the thread reading it
                    socket.socket.shutdown(connection, socket.SHUT_RDWR)
            self._changed.notify_all()
        for connection in idle:
            connection.close()

    def _may_take(self, me: object) -> bool:
        if self._closed:
            return True
        return self._queue[0] is me and (bool(self._idle) or self._taken < self._size)

    def _free_slot(self) -> None:
        with self._changed:
            self._taken -= 1
            self._changed.notify_all()
