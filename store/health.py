"""Failing fast while the database is away, and noticing by itself when it is back.

Without this, every request during an outage would wait out connection timeouts and the
driver's retries (tens of seconds). After one failure (a request's, or a pool's: see
``store/gated_pool.py``) the gate is *down*: requests are refused at once (503), whoever
watches the gate hears it (the pools drop their connections and refuse their waiting
clients), and one probe tries the database, after a pause that starts at
``first_pause`` and doubles up to ``probe_interval`` (each jittered, so that many
processes do not probe in step). Once it answers, the gate opens again and its watchers
hear that too (the pools reconnect at once): the database is tried by one probe at a
time while it is away, and the hive serves again within about ``probe_interval`` of its
return.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterator

import psycopg
from eventsourcing.persistence import PersistenceError

log = logging.getLogger(__name__)


class DatabaseUnavailable(PersistenceError):
    """The database cannot be reached; nothing was persisted.

    A ``PersistenceError``, as the library's own failures are; but not one of the
    ``OperationalError`` kind that its recorders retry: while the gate is down there is
    nothing to retry."""


def postgres_probe(conninfo: str, connect_timeout: int = 1) -> Callable[[], None]:
    """A probe that raises unless PostgreSQL at ``conninfo`` answers a query."""

    def probe() -> None:
        with psycopg.connect(conninfo, connect_timeout=connect_timeout) as conn:
            conn.execute("SELECT 1")

    return probe


JITTER = 0.2  # each pause between probes is its nominal length, +-20%


class DatabaseGate:
    def __init__(
        self,
        probe: Callable[[], None],
        *,
        probe_interval: float = 0.5,
        first_pause: float = 0.05,
    ) -> None:
        self.probe = probe
        self.probe_interval = probe_interval
        self.first_pause = first_pause
        self.on_down: list[Callable[[], None]] = []  # told (in the failing thread) it shut
        self.on_up: list[Callable[[], None]] = []  # told (in the probe's thread) it opened
        self._down = threading.Event()
        self._closed = threading.Event()  # set: probe no more (the process stops)
        self._lock = threading.Lock()
        self._probe: threading.Thread | None = None
        self._random = random.Random()  # the jitter's own: the global one stays untouched

    @property
    def down(self) -> bool:
        return self._down.is_set()

    def check(self) -> None:
        if self._down.is_set():
            raise DatabaseUnavailable()

    def failed(self) -> None:
        """The database was found unreachable (by a request, or a pool): refuse the next
        requests at once, tell the watchers, and probe until it answers."""
        with self._lock:
            if self._down.is_set():
                return
            self._down.set()
        log.warning(
            "database unreachable; refusing requests until it answers",
            extra={"action": "db_down"},
        )
        for heard in self.on_down:
            heard()
        self._probe = threading.Thread(target=self._wait_for_database, daemon=True, name="db-probe")
        self._probe.start()

    def suspect(self) -> None:
        """A connection broke: shut the gate unless the database answers now (so a restart
        already over, or one connection ended by an administrator, costs no outage)."""
        if self._down.is_set():
            return
        try:
            self.probe()
        except Exception:  # any failure to answer means: away (the gate says so)
            self.failed()

    def pauses(self) -> Iterator[float]:
        """The pauses before each probe: doubling from ``first_pause`` to ``probe_interval``,
        each jittered."""
        nominal = self.first_pause
        while True:
            yield nominal * self._random.uniform(1 - JITTER, 1 + JITTER)
            nominal = min(nominal * 2, self.probe_interval)

    def close(self) -> None:
        """The process stops: a probe running gives up (the gate stays as it is)."""
        self._closed.set()

    def _wait_for_database(self) -> None:
        last_error = ""
        for pause in self.pauses():
            if self._closed.wait(pause):  # pacing between probes, cut short by close()
                return
            try:
                self.probe()
            except Exception as e:  # any failure means: not back yet (said once per kind)
                if type(e).__name__ != last_error:
                    last_error = type(e).__name__
                    log.info(
                        "database still away", extra={"action": "db_probe", "error": last_error}
                    )
                continue
            break
        with self._lock:
            self._down.clear()
        log.info("database answers again", extra={"action": "db_up"})
        for heard in self.on_up:
            heard()
