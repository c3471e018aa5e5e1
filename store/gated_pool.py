"""A connection pool that waits for nobody while the database is away.

psycopg_pool alone makes an outage slow twice over. While the server is gone, a client
waits for a connection up to the pool's timeout, and the library's recorders retry that
wait ten times; one command holding the hive's lock that long makes every other one queue
behind it (measured: answers 4 s apart, the last after 28 s). Once the server is back,
each lost connection is retried on a backoff that doubles from 1 s without a cap, so a
pool may sit empty for seconds more (measured: 6-8 s before the hive served again).

A ``GatedPool`` follows a ``DatabaseGate`` (``store/health.py``) instead:

- its first sign of an outage shuts the gate: a failed connect, or a broken connection
  handed back when the database does not answer the gate's probe at once either (if it
  does, the server restarted: the pool only drops its idle connections, as old as the
  broken one);
- when the gate shuts, the pool drops its idle connections (they are dead, or about to
  be) and refuses every client waiting for one (``DatabaseUnavailable``, at once), and
  while it is shut ``getconn`` refuses at once too;
- it tries no connection while the gate is shut (the gate's one probe does): the
  reconnections wait, parked, and start the moment the gate opens again.

It overrides two of psycopg_pool's private methods (``_connect``, ``_add_connection``) and
reads one private attribute (``_waiting``), of the pinned psycopg-pool 3.3.3;
``tests/integration/test_gated_pool.py`` holds it to that behaviour on a real server.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from eventsourcing.postgres import PostgresDatastore
from psycopg_pool import ConnectionPool
from psycopg_pool.base import AttemptWithBackoff
from psycopg_pool.pool import AddConnection

from store.health import DatabaseGate, DatabaseUnavailable

MAX_RECONNECT_DELAY_S = 1.0


class PromptAttempt(AttemptWithBackoff):
    """A reconnection's backoff between attempts made while the gate is open: from 50 ms,
    doubling, at most ``MAX_RECONNECT_DELAY_S`` (the library's starts at 1 s, no cap)."""

    INITIAL_DELAY = 0.05

    def update_delay(self, now: float) -> None:
        super().update_delay(now)
        self.delay = min(self.delay, MAX_RECONNECT_DELAY_S)


class GatedPool(ConnectionPool[Any]):
    def __init__(self, *args: Any, gate: DatabaseGate, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = gate
        self._parking = threading.Lock()
        self._parked: list[tuple[AttemptWithBackoff | None, bool]] = []
        gate.on_down.append(self._database_down)
        gate.on_up.append(self._database_up)

    def getconn(self, timeout: float | None = None) -> Any:
        self.gate.check()
        return super().getconn(timeout)

    def putconn(self, conn: Any) -> None:
        if conn.broken and not self.gate.down:  # its server went away under it, or restarted
            self.gate.suspect()  # shut (and so drained) if the database does not answer
            if not self.gate.down:
                self.drain()  # it restarted: the idle connections are as old as this one
        super().putconn(conn)

    def _connect(self, timeout: float | None = None) -> Any:
        try:
            return super()._connect(timeout)
        except psycopg.OperationalError:
            self.gate.failed()
            raise

    def _add_connection(self, attempt: AttemptWithBackoff | None, growing: bool = False) -> None:
        with self._parking:
            if self.gate.down:
                self._parked.append((attempt, growing))
                return
        super()._add_connection(attempt or PromptAttempt(timeout=self.reconnect_timeout), growing)

    def _database_down(self) -> None:
        if self.closed:
            return
        self.drain()  # the idle connections go; their replacements are parked
        with self._lock:
            waiting = list(self._waiting)
            self._waiting.clear()
        for client in waiting:
            client.fail(DatabaseUnavailable())

    def _database_up(self) -> None:
        with self._parking:
            parked, self._parked = self._parked, []
        if self.closed:
            return
        for attempt, growing in parked:
            self.run_task(AddConnection(self, attempt, growing=growing))


def gate_datastore(datastore: PostgresDatastore, gate: DatabaseGate) -> None:
    """Put a ``GatedPool`` in place of the library's pool, with its settings. The library
    opened its own while it built the recorder (to read the log's composite types, which
    the datastore keeps): it is closed."""
    library = datastore.pool
    datastore.pool = GatedPool(  # type: ignore[assignment]
        connection_class=library.connection_class,
        kwargs=library.kwargs,
        min_size=library.min_size,
        max_size=library.max_size,
        open=False,
        configure=datastore.after_connect_func(),
        check=ConnectionPool.check_connection if datastore.pre_ping else None,
        name="log",
        timeout=library.timeout,
        max_waiting=library.max_waiting,
        max_lifetime=library.max_lifetime,
        gate=gate,
    )
    library.close()
