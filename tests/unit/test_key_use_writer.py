"""The writer of keys' last use outlives a database outage: found when the door's faults
met the keys' last use, the thread died of the gate's refusal and wrote nothing more."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from store.health import DatabaseUnavailable
from store.key_use import KeyUse, KeyUseWriter
from tests.waiting import wait_for


class AwayThenBack(KeyUse):
    """The database refuses the first ``refusals`` writes (its gate is shut), then takes them."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.written: list[Mapping[UUID, datetime]] = []

    def record(self, uses: Mapping[UUID, datetime]) -> None:
        if not uses:
            return
        if self.refusals:
            self.refusals -= 1
            raise DatabaseUnavailable()
        self.written.append(dict(uses))


def test_a_write_refused_by_the_gate_is_dropped_and_the_writer_goes_on() -> None:
    key = uuid4()
    at = datetime(2030, 1, 1, tzinfo=UTC)
    store = AwayThenBack(refusals=2)
    noted: list[dict[UUID, Any]] = [{key: at}, {key: at}, {key: at}]
    writer = KeyUseWriter(store, lambda: noted.pop(0) if noted else {}, interval=0.001)
    stop = threading.Event()
    thread = threading.Thread(target=writer.run, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: store.written, what="a write once the database is back")
        assert store.written == [{key: at}]
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()
