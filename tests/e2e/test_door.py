"""The door holds before any key is checked (issue 11, finding 4): a real `apiary serve`,
attacked over real sockets, refuses oversized request heads at once (431) and closes
connections that never finish a head or sit idle, while /healthz from another client
stays fast."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest

from tests.e2e.harness import Hive
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

HEALTH_BOUND_S = 1.0  # /healthz from a well-behaved client, while the door is attacked


@dataclass
class HealthProbe:
    """/healthz from another client, again and again, until stopped: the slowest answer."""

    url: str
    slowest_s: float = 0.0
    answered: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set():
                began = time.monotonic()
                assert client.get("/healthz").status_code == 200
                self.slowest_s = max(self.slowest_s, time.monotonic() - began)
                self.answered += 1
                self.stop.wait(0.05)  # pacing between probes, not a wait for an outcome


def under_attack(hive: Hive, attack: Callable[[], None]) -> HealthProbe:
    probe = HealthProbe(hive.url)
    prober = threading.Thread(target=probe.run, daemon=True)
    prober.start()
    try:
        wait_for(lambda: probe.answered > 0, what="a first answer to /healthz")
        attack()
    finally:
        probe.stop.set()
        prober.join(timeout=60)
    return probe


def connect(hive: Hive) -> socket.socket:
    return socket.create_connection(("127.0.0.1", hive.port), timeout=30)


def test_a_64_mb_header_is_refused_at_once_while_health_stays_fast(hive: Hive) -> None:
    hive.start()
    outcome: dict[str, object] = {}

    def send_64_mb_header() -> None:
        chunk = b"a" * (1 << 20)
        began = time.monotonic()
        with connect(hive) as s:
            try:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: hive\r\nX-Big: ")
                for _ in range(64):
                    s.sendall(chunk)
                s.sendall(b"\r\n\r\n")
                outcome["accepted"] = True
                outcome["answer"] = s.recv(256)
            except (BrokenPipeError, ConnectionResetError):
                outcome["accepted"] = False
        outcome["took_s"] = time.monotonic() - began

    probe = under_attack(hive, send_64_mb_header)
    assert outcome["accepted"] is False, f"the 64 MB header was read whole: {outcome}"
    assert isinstance(took := outcome["took_s"], float) and took < 5, outcome
    assert probe.slowest_s < HEALTH_BOUND_S, f"/healthz took {probe.slowest_s:.2f}s"


def test_heads_over_the_limits_get_431(make_hive: Callable[..., Hive]) -> None:
    hive = make_hive(APIARY_MAX_HEAD_BYTES="16384", APIARY_MAX_HEADERS="100").start()
    with httpx.Client(base_url=hive.url, timeout=10) as client:
        fine = client.get("/healthz", headers={f"x-h{i}": "v" for i in range(90)})
        assert fine.status_code == 200
        big = client.get("/healthz", headers={"x-big": "a" * 20_000})
        assert big.status_code == 431, big.text
        assert big.headers["content-type"] == "application/problem+json"
        assert big.json()["type"].endswith("/headers-too-large")
        assert big.headers["connection"] == "close"
    with httpx.Client(base_url=hive.url, timeout=10) as client:
        many = client.get("/healthz", headers={f"x-h{i}": "v" for i in range(101)})
        assert many.status_code == 431, many.text
    with httpx.Client(base_url=hive.url, timeout=10) as client:  # a body is not a head
        body = client.post("/healthz", content=b"x" * 300_000)
        assert body.status_code == 405


def test_idle_and_trickling_connections_are_closed(make_hive: Callable[..., Hive]) -> None:
    header_timeout_s, keep_alive_s = 2.0, 1
    hive = make_hive(
        APIARY_HEADER_TIMEOUT_S=str(header_timeout_s), APIARY_KEEP_ALIVE_S=str(keep_alive_s)
    ).start()
    closed_after: dict[str, list[float]] = {"silent": [], "trickling": [], "kept alive": []}

    def hold_300_connections() -> None:
        selector = selectors.DefaultSelector()
        since: dict[socket.socket, float] = {}  # when its timeout began: open, or last answer
        for kind in closed_after:
            for _ in range(100):
                opened = time.monotonic()
                s = connect(hive)
                since[s] = opened
                if kind == "trickling":
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: hive\r\n")
                if kind == "kept alive":
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: hive\r\n\r\n")
                selector.register(s, selectors.EVENT_READ, kind)
        deadline = time.monotonic() + header_timeout_s + 8
        while selector.get_map() and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.2):
                held = key.fileobj
                assert isinstance(held, socket.socket)
                try:
                    data = held.recv(65536)
                except ConnectionResetError:
                    data = b""
                if data:  # an answer (the kept-alive one's, or a 408): not closed yet
                    if key.data == "kept alive":  # idle from its answer on
                        since[held] = time.monotonic()
                    continue
                closed_after[key.data].append(time.monotonic() - since[held])
                selector.unregister(held)
                held.close()
            for key in list(selector.get_map().values()):  # one more byte of a header each
                if key.data == "trickling":
                    with contextlib.suppress(OSError):  # closed meanwhile: seen next round
                        key.fileobj.send(b"x")  # type: ignore[union-attr]
        for key in list(selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]

    probe = under_attack(hive, hold_300_connections)
    counts = {kind: len(times) for kind, times in closed_after.items()}
    assert counts == {"silent": 100, "trickling": 100, "kept alive": 100}, counts
    slack = 2.0
    assert max(closed_after["silent"]) < header_timeout_s + slack
    assert max(closed_after["trickling"]) < header_timeout_s + slack
    assert max(closed_after["kept alive"]) < keep_alive_s + slack
    assert probe.slowest_s < HEALTH_BOUND_S, f"/healthz took {probe.slowest_s:.2f}s"
