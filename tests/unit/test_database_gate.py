"""The database gate's probing: bounded, jittered, and heard by its watchers (the probe is
a fake of our own here; ``tests/integration/test_gated_pool.py`` has the real one)."""

from __future__ import annotations

import itertools
import threading

from store.health import JITTER, DatabaseGate
from tests.waiting import wait_for


def never() -> None:
    raise ConnectionError("still away")


def test_probes_start_soon_then_slow_down_to_the_interval_and_never_beyond() -> None:
    gate = DatabaseGate(never, probe_interval=0.5, first_pause=0.05)
    pauses = list(itertools.islice(gate.pauses(), 200))
    assert 0.05 * (1 - JITTER) <= pauses[0] <= 0.05 * (1 + JITTER)
    assert all(0.05 * (1 - JITTER) <= p <= 0.5 * (1 + JITTER) for p in pauses)
    assert min(pauses[10:]) >= 0.5 * (1 - JITTER), "a dead server is probed twice a second"
    assert len({round(p, 6) for p in pauses[10:]}) > 100, "the pauses are not jittered"


def test_watchers_hear_the_gate_shut_once_and_open_once() -> None:
    back = threading.Event()

    def probe() -> None:
        if not back.is_set():
            raise ConnectionError("still away")

    gate = DatabaseGate(probe, probe_interval=0.01, first_pause=0.005)
    heard: list[str] = []
    gate.on_down.append(lambda: heard.append("down"))
    gate.on_up.append(lambda: heard.append("up"))
    gate.failed()
    gate.failed()  # the second failure of the same outage: no news
    assert gate.down and heard == ["down"]
    back.set()
    wait_for(lambda: heard == ["down", "up"], timeout=5, what="the gate to open")
    assert not gate.down


def test_a_suspicion_shuts_the_gate_only_when_the_probe_fails_too() -> None:
    answers = threading.Event()
    answers.set()

    def probe() -> None:
        if not answers.is_set():
            raise ConnectionError("away")

    gate = DatabaseGate(probe, probe_interval=0.01, first_pause=0.005)
    gate.suspect()
    assert not gate.down
    answers.clear()
    gate.suspect()
    assert gate.down
    gate.close()
