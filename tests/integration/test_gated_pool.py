"""``GatedPool`` on a real server: its clients wait for nobody while the database is away,
and it reconnects the moment the gate opens again. The outage is real (the test's database
refuses connections and its open ones are dropped: ``tests.e2e.harness.outage``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from store.gated_pool import GatedPool
from store.health import DatabaseGate, DatabaseUnavailable, postgres_probe
from tests.e2e.harness import outage
from tests.waiting import wait_for

OUTAGE_S = 3.5


@pytest.fixture
def gate(db_url: str) -> Iterator[DatabaseGate]:
    gate = DatabaseGate(postgres_probe(db_url))
    yield gate
    gate.close()  # a probe still running (the test ended in an outage) stops


def gated(db_url: str, gate: DatabaseGate, *, size: int, timeout: float) -> GatedPool:
    return GatedPool(
        db_url,
        min_size=size,
        max_size=size,
        open=False,
        timeout=timeout,
        kwargs={"autocommit": True},
        gate=gate,
    )


@pytest.fixture
def pool(db_url: str, gate: DatabaseGate) -> Iterator[GatedPool]:
    with gated(db_url, gate, size=2, timeout=10) as p:
        p.wait(timeout=10)
        yield p


def break_one(pool: GatedPool) -> None:
    """Use a connection whose server dropped it: the pool hears of it as it comes back."""
    with pytest.raises(psycopg.OperationalError), pool.connection() as conn:
        conn.execute("SELECT 1")


def test_a_broken_connection_shuts_the_gate_and_the_next_client_is_refused_at_once(
    db_url: str, gate: DatabaseGate, pool: GatedPool
) -> None:
    with outage(db_url):
        break_one(pool)
        assert gate.down
        began = time.monotonic()
        with pytest.raises(DatabaseUnavailable):
            pool.getconn()
        assert time.monotonic() - began < 0.1


def test_a_connection_broken_by_a_restart_already_over_costs_no_outage(
    db_url: str, gate: DatabaseGate, pool: GatedPool
) -> None:
    """The server dropped every connection, and answers again: the gate stays open, the
    pool drops its idle connections (as old as the broken one), and serves at once."""
    with outage(db_url):
        pass  # every open connection of the database ends; new ones are let in again
    with pytest.raises(psycopg.OperationalError), pool.connection() as conn:
        conn.execute("SELECT 1")
    assert not gate.down
    with pool.connection(timeout=2) as one, pool.connection(timeout=2) as other:
        one.execute("SELECT 1")  # both connections of the pool: fresh ones
        other.execute("SELECT 1")


def test_clients_waiting_for_a_connection_are_refused_when_the_gate_shuts(
    db_url: str, gate: DatabaseGate
) -> None:
    """Without the gate a waiting client waits out the pool's timeout (10 s here)."""
    with gated(db_url, gate, size=1, timeout=10) as pool:
        held = pool.getconn()
        answers: list[tuple[float, BaseException | None]] = []

        def wait_for_one() -> None:
            try:
                pool.putconn(pool.getconn())
                answers.append((time.monotonic(), None))
            except Exception as e:  # what the waiting client is told, kept for the test
                answers.append((time.monotonic(), e))

        waiters = [threading.Thread(target=wait_for_one) for _ in range(3)]
        for w in waiters:
            w.start()
        wait_for(lambda: pool.get_stats().get("requests_queued", 0) >= 3, what="3 waiting")
        shut = time.monotonic()
        gate.failed()
        for w in waiters:
            w.join(timeout=15)
        pool.putconn(held)
    assert [type(e) for _, e in answers] == [DatabaseUnavailable] * 3
    assert max(at for at, _ in answers) - shut < 0.5


def test_it_reconnects_the_moment_the_gate_opens(
    db_url: str, gate: DatabaseGate, pool: GatedPool
) -> None:
    """The library's own backoff would wait 1 s, then 2, 4, 8 s between attempts."""
    with outage(db_url):
        break_one(pool)
        assert gate.down
        began = time.monotonic()
        # Long enough for the library's backoff to wait 4 s before its third attempt.
        wait_for(lambda: time.monotonic() - began >= OUTAGE_S, what="the outage to last")
        assert stats(pool)["connections_errors"] == 0, "the pool tried a dead server"
    wait_for(lambda: not gate.down, timeout=5, what="the probe to open the gate")
    opened = time.monotonic()
    with pool.connection(timeout=5) as conn:
        conn.execute("SELECT 1")
    assert time.monotonic() - opened < 0.5


def stats(pool: GatedPool) -> dict[str, Any]:
    return {"connections_errors": 0, **pool.get_stats()}
