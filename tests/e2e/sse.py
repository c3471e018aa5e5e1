"""The dashboard's live stream, read as a browser reads it: signed in with a key (the
cookie the sign-in form gets), ``GET /dashboard/stream``, one server-sent event at a time.

A thread reads the stream and keeps every event with the moment it arrived, so a test or
a benchmark can wait for the first event that satisfies a condition and see when it came.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from tests.e2e.harness import signed_in


@dataclass(frozen=True)
class Heard:
    at: float  # time.perf_counter() when the event's last line arrived
    kind: str  # the SSE ``event:`` name
    data: Any  # its ``data:``, decoded from JSON


class DashboardStream:
    def __init__(self, base_url: str, key: str) -> None:
        self.client = signed_in(base_url, key, timeout=httpx.Timeout(10, read=None))
        self.heard: list[Heard] = []
        self.opened = threading.Event()
        self._changed = threading.Condition()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._read, name="sse-reader", daemon=True)

    def __enter__(self) -> DashboardStream:
        self._thread.start()
        if not self.opened.wait(10):
            raise AssertionError("the dashboard stream did not open within 10 s")
        return self

    def __exit__(self, *_: object) -> None:
        self._closing.set()
        self.client.close()  # ends the read the thread is blocked in
        self._thread.join(timeout=5)

    def wait(self, condition: Callable[[Heard], bool], *, since: int, timeout: float) -> Heard:
        """The first event from index ``since`` on that satisfies ``condition``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for heard in self.heard[since:]:
                    if condition(heard):
                        return heard
                since = len(self.heard)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no matching stream event within {timeout} s")
                self._changed.wait(remaining)

    def _read(self) -> None:
        kind, data = "message", ""
        try:
            with self.client.stream("GET", "/dashboard/stream") as response:
                response.raise_for_status()
                self.opened.set()
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("data:"):
                        data += line[5:].strip()
                    elif not line and data:
                        self._keep(Heard(time.perf_counter(), kind, orjson.loads(data)))
                        kind, data = "message", ""
        except httpx.HTTPError:
            if not self._closing.is_set():
                raise

    def _keep(self, heard: Heard) -> None:
        with self._changed:
            self.heard.append(heard)
            self._changed.notify_all()
