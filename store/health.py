"""Failing fast while the database is away, and noticing by itself when it is back.

Without this, every request during an outage would wait out connection timeouts and the
driver's retries (tens of seconds). After one failure the gate is *down*: requests are
refused at once (503), and a probe tries the database every ``probe_interval`` seconds
until it answers, then opens the gate again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

log = logging.getLogger(__name__)


class DatabaseUnavailable(Exception):
    """The database cannot be reached; nothing was persisted."""


def postgres_probe(conninfo: str, connect_timeout: int = 1) -> Callable[[], None]:
    """A probe that raises unless PostgreSQL at ``conninfo`` answers a query."""

    def probe() -> None:
        with psycopg.connect(conninfo, connect_timeout=connect_timeout) as conn:
            conn.execute("SELECT 1")

    return probe


class DatabaseGate:
    def __init__(self, probe: Callable[[], None], *, probe_interval: float = 0.5) -> None:
        self.probe = probe
        self.probe_interval = probe_interval
        self._down = threading.Event()
        self._lock = threading.Lock()
        self._probe: threading.Thread | None = None

    @property
    def down(self) -> bool:
        return self._down.is_set()

    def check(self) -> None:
        if self._down.is_set():
            raise DatabaseUnavailable()

    def failed(self) -> None:
        """A request found the database unreachable: refuse the next ones at once."""
        with self._lock:
            if self._down.is_set():
                return
            self._down.set()
            log.warning(
                "database unreachable; refusing requests until it answers",
                extra={"action": "db_down"},
            )
            self._probe = threading.Thread(
                target=self._wait_for_database, daemon=True, name="db-probe"
            )
            self._probe.start()

    def _wait_for_database(self) -> None:
        pause = threading.Event()
        last_error = ""
        while True:
            try:
                self.probe()
            except Exception as e:  # any failure means: not back yet (said once per kind)
                if type(e).__name__ != last_error:
                    last_error = type(e).__name__
                    log.info(
                        "database still away", extra={"action": "db_probe", "error": last_error}
                    )
                pause.wait(self.probe_interval)  # pacing between probes
                continue
            with self._lock:
                self._down.clear()
            log.info("database answers again", extra={"action": "db_up"})
            return
