"""Faults at the door (issue 11, finding 14), with a PostgreSQL of the test's own (an
embedded server in the test's directory, never the shared one): stopped and started again
under load, several clients submitting and reading while bots claim and finish.

- Every request in flight when the server stops is answered (a 503 problem with
  ``Retry-After``, or its success) within ``IN_FLIGHT_BOUND_S``, never after a long hang.
- Once the server is back, requests succeed again within ``RECOVERY_BOUND_S``.
- No accepted task is lost: each is in the log and completes after the recovery.
- ``apiary serve`` stopped by SIGTERM, with a claim long-poll and the dashboard's stream
  open, exits 0 and logs no error and no traceback.

The measured distributions are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import re
import signal
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from api.bootstrap import migrate
from store.embedded import EmbeddedPostgres
from tests.e2e.harness import Bot, Hive, start_bot
from tests.e2e.sse import DashboardStream
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

IN_FLIGHT_BOUND_S = 3.0  # the stated bound is 2 s (the gate's deadline); margin for 2 cores
RECOVERY_BOUND_S = 2.0  # the stated bound is about 1 s; margin for a noisy 2-core machine
CLIENTS = 6
OUTAGE_S = 6.0  # long enough for a backoff that doubles from 1 s to reach 8 s
AFTER_S = 3.0
PACE_S = 0.02  # a client's pause after a refusal: it retries, it does not spin


@dataclass(frozen=True)
class Call:
    kind: str
    began: float
    ended: float
    status: int  # 0: no answer at all (the client gave up or the connection broke)
    problem: bool  # answered as application/problem+json
    retry_after: bool

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def refused_well(self) -> bool:
        """A 503 as the API promises it: a problem, with Retry-After."""
        return self.status == 503 and self.problem and self.retry_after


class Load:
    """``CLIENTS`` threads, each submitting a task and reading it back, over and over;
    every call kept with when it began and ended."""

    def __init__(self, hive: Hive, key: str) -> None:
        self.hive, self.key = hive, key
        self.calls: list[Call] = []
        self.accepted: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(CLIENTS, thread_name_prefix="client")

    def __enter__(self) -> Load:
        self._runs = [self._pool.submit(self._client) for _ in range(CLIENTS)]
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for run in self._runs:
            run.result(timeout=90)
        self._pool.shutdown()

    def _client(self) -> None:
        with httpx.Client(
            base_url=self.hive.url,
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=60,  # far beyond any bound: a hang shows as a hang, not as a timeout
        ) as client:
            while not self._stop.is_set():
                submitted = self._call(
                    "submit", lambda: client.post("/v1/tasks", json={"type": "noop"})
                )
                if submitted is not None and submitted.status_code == 201:
                    task_id, position = submitted.json()["id"], submitted.json()["position"]
                    with self._lock:
                        self.accepted.append(task_id)
                    self._call(
                        "read",
                        partial(
                            client.get, f"/v1/tasks/{task_id}", params={"min_position": position}
                        ),
                    )
                else:
                    self._stop.wait(PACE_S)  # pacing after a refusal, not a wait for an outcome

    def _call(self, kind: str, send: Any) -> httpx.Response | None:
        began = time.monotonic()
        try:
            response: httpx.Response | None = send()
        except httpx.HTTPError:
            response = None
        ended = time.monotonic()
        headers = response.headers if response is not None else httpx.Headers()
        call = Call(
            kind,
            began,
            ended,
            response.status_code if response is not None else 0,
            headers.get("content-type", "").startswith("application/problem+json"),
            headers.get("retry-after", "").isdigit(),
        )
        with self._lock:
            self.calls.append(call)
        return response

    def wait_for_calls(self, count: int, after: float) -> None:
        wait_for(
            lambda: sum(c.began >= after for c in self.snapshot()) >= count,
            timeout=30,
            what=f"{count} calls",
        )

    def snapshot(self) -> list[Call]:
        with self._lock:
            return list(self.calls)


@pytest.fixture
def own_postgres(scratch: Path) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL server of this test's own, migrated; the test may stop and start it."""
    server = EmbeddedPostgres(scratch / "pg")
    server.start()
    migrate(server.url)
    try:
        yield server
    finally:
        server.stop()


def spread(values: list[float]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return (
        f"n={len(ordered)} min={ordered[0]:.3f}s median={statistics.median(ordered):.3f}s "
        f"p90={p90:.3f}s max={ordered[-1]:.3f}s"
    )


def statuses(calls: list[Call]) -> dict[int, int]:
    return dict(sorted(Counter(c.status for c in calls).items()))


def problems_in(log: str) -> list[str]:
    """Lines of a server log that report an error or hold a traceback."""
    return [
        line
        for line in log.splitlines()
        if re.search(r"\b(ERROR|CRITICAL)\b", line) or "Traceback" in line
    ]


@dataclass(frozen=True)
class Outage:
    """When the server was told to stop, had stopped, and was back (``time.monotonic()``)."""

    stop_at: float
    stopped_at: float
    started_at: float

    def in_flight(self, calls: list[Call]) -> list[Call]:
        """Open while the server stopped (a stop takes a moment: its backends end first)."""
        return [c for c in calls if c.began < self.stopped_at and c.ended > self.stop_at]

    def answered_in(self, call: Call) -> float:
        """How long after the stop began (or after it was sent, if later) it was answered."""
        return call.ended - max(call.began, self.stop_at)

    def begun_while_away(self, calls: list[Call]) -> list[Call]:
        return [c for c in calls if self.stopped_at <= c.began < self.started_at]

    def serving_again_after(self, calls: list[Call]) -> tuple[float, int]:
        """From the server's return until the end of the first success after which every
        call succeeded; and how many were refused after its return."""
        after = [c for c in calls if c.began >= self.started_at]
        refused = [c.began for c in after if not c.ok]
        settled = max(refused, default=self.started_at)
        steady = min(c.ended for c in after if c.ok and c.began >= settled)
        return steady - self.started_at, len(refused)


def test_a_stopped_database_fails_requests_fast_and_its_return_serves_at_once(
    own_postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    hive = Hive(db_url=own_postgres.url, home=tmp_path / "home").start()
    bots: list[Bot] = []
    try:
        admin = hive.admin_key()  # submits, and enrols the bots: no CLI process to wait for
        bots = [start_bot(hive, admin, f"b{i}", "--capabilities", "noop") for i in (1, 2)]
        with Load(hive, admin) as load:
            load.wait_for_calls(50, after=0)
            stop_at = time.monotonic()
            own_postgres.stop()
            stopped_at = time.monotonic()
            load.wait_for_calls(CLIENTS * 5, after=stopped_at)
            wait_for(lambda: time.monotonic() - stopped_at >= OUTAGE_S, what="the outage")
            own_postgres.start()
            started_at = time.monotonic()
            wait_for(lambda: time.monotonic() - started_at >= AFTER_S, what="the load after it")
        calls = load.snapshot()
        outage = Outage(stop_at, stopped_at, started_at)
        in_flight, away = outage.in_flight(calls), outage.begun_while_away(calls)
        recovery_s, refused_after = outage.serving_again_after(calls)
        print(
            f"\n{len(calls)} calls; the stop took {stopped_at - stop_at:.3f}s"
            f"\nin flight while it stopped, answered in: "
            f"{spread([outage.answered_in(c) for c in in_flight])}; {statuses(in_flight)}"
            f"\nbegun while it was away, answered in: "
            f"{spread([c.ended - c.began for c in away])}; {statuses(away)}"
            f"\nafter its return: {refused_after} refused; every call succeeds from "
            f"{recovery_s:.3f}s after it"
        )
        assert in_flight, "no request was in flight at the stop: the load is too light"
        for c in in_flight + away:
            assert c.ok or c.refused_well, f"{c.kind} answered {c.status} in the outage"
        late = [outage.answered_in(c) for c in in_flight + away]
        assert max(late) <= IN_FLIGHT_BOUND_S, f"answered {max(late):.2f} s after the stop"
        assert recovery_s <= RECOVERY_BOUND_S, f"serving again took {recovery_s:.2f} s"

        accepted = set(load.accepted)
        with psycopg.connect(own_postgres.url) as conn:
            logged = {
                str(r[0])
                for r in conn.execute(
                    "SELECT DISTINCT originator_id FROM hive_events WHERE topic LIKE %s",
                    ("%Task.Submitted",),
                )
            }
        assert accepted <= logged, f"{len(accepted - logged)} accepted tasks not in the log"

        def unfinished() -> set[str]:
            with psycopg.connect(own_postgres.url) as conn:
                done = conn.execute(
                    "SELECT task_id::text FROM tasks_view WHERE state = 'succeeded'"
                ).fetchall()
            return accepted - {r[0] for r in done}

        wait_for(lambda: not unfinished(), timeout=45, what="every accepted task to complete")
        for bot in bots:
            assert bot.stop() == 0
        bots = []
        assert hive.stop() == 0
        assert not problems_in(hive.log_text()), "\n".join(problems_in(hive.log_text())[:20])
    finally:
        for bot in bots:
            bot.kill9()
        hive.stop()


def test_sigterm_with_a_claim_and_the_stream_open_exits_cleanly(hive: Hive) -> None:
    hive.start()
    key = hive.admin_key()
    registered = httpx.post(
        f"{hive.url}/v1/bots",
        headers={"Authorization": f"Bearer {key}"},
        json={"name": "waiter", "capabilities": ["nothing"], "max_concurrency": 1, "version": "1"},
    )
    assert registered.status_code == 201, registered.text
    bot = registered.json()
    claimant = httpx.Client(
        base_url=hive.url, headers={"Authorization": f"Bearer {bot['token']}"}, timeout=60
    )
    claim_path = f"/v1/bots/{bot['bot_id']}/claim"
    assert claimant.post(claim_path, json={"wait_s": 0}).status_code == 200  # connected
    answered: list[tuple[float, int]] = []
    sent = threading.Event()

    def claim() -> None:
        claimant.event_hooks["request"] = [lambda _: sent.set()]
        response = claimant.post(claim_path, json={"wait_s": 30})
        answered.append((time.monotonic(), response.status_code))

    waiting = threading.Thread(target=claim, name="claim")
    with DashboardStream(hive.url, key):
        waiting.start()
        wait_for(sent.is_set, what="the claim to be sent")
        # A request sent after it and answered: the server has read the claim by now.
        assert httpx.get(f"{hive.url}/healthz").status_code == 200
        assert hive.proc is not None
        signalled = time.monotonic()
        hive.proc.send_signal(signal.SIGTERM)
        code = hive.proc.wait(timeout=30)
        took = time.monotonic() - signalled
    waiting.join(timeout=30)
    claimant.close()
    print(f"\nserve stopped {took:.2f}s after SIGTERM, exit status {code}")
    assert code == 0
    assert answered and answered[0][1] == 200, answered
    assert answered[0][0] > signalled, "the claim was not open at the SIGTERM"
    log = hive.log_text()
    assert not problems_in(log), "\n".join(problems_in(log)[:20])
