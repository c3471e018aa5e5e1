"""The modes loop on the in-memory recorder: it enters what the open incidents call for,
comes down only after calm_s, leaves an operator's mode alone; every process's LiveMode
hears the mode from the log, and the mode acted on is critical while the database is away
or no engine is alive."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID, uuid5

from starlette.types import Message, Receive, Scope, Send

from api.mode_gate import (
    MODE_STATE,
    HiveModeNow,
    ModeHeader,
    ModeRefused,
    admit_submission,
    serve_principal,
)
from domain.cause import Cause
from domain.hive import Hive, TaskSpec
from domain.keys import Role
from domain.modes import CRITICAL, DEGRADED, MAINTENANCE, NORMAL
from runtime.degradation import DegradationManager
from runtime.degradation_config import DEFAULT_RULES, DegradationConfig, ModeRule
from runtime.live_mode import LiveMode
from store.health import DatabaseGate
from tests.clock import FakeClock

SPACE = UUID("2f9e7f44-60a1-4f0f-8f0a-6f7c2a0c9a01")
ALICE = Cause("alice", "req-1")


@dataclass(frozen=True)
class Incident:
    incident_id: UUID
    rule: str
    severity: str = "warning"


def manager(
    hive: Hive, clock: FakeClock, found: list[Incident], config: DegradationConfig | None = None
) -> DegradationManager:
    mode = LiveMode()
    hive.listeners.append(mode.apply)  # its own writes at once, as the node wires it
    config = config or DegradationConfig(calm_s=10)
    return DegradationManager(hive, mode, lambda: list(found), config.policy(), clock=clock)


def test_the_loop_enters_and_leaves_with_hysteresis(hive: Hive, clock: FakeClock) -> None:
    found: list[Incident] = []
    loop = manager(hive, clock, found)
    assert loop.run_once() == 0 and loop.mode.mode == NORMAL
    found.append(Incident(uuid5(SPACE, "c"), "cascade"))
    assert loop.run_once() == 1
    assert (loop.mode.mode, loop.mode.row.incidents[0]["rule"]) == (DEGRADED, "cascade")
    assert loop.wake.is_set()  # the mode's change wakes it: the next round confirms
    assert loop.run_once() == 0
    found.clear()
    assert loop.run_once() == 0 and loop.wait_hint() == 10.0
    clock.advance(9.9)
    assert loop.run_once() == 0 and loop.mode.mode == DEGRADED
    clock.advance(0.1)
    assert loop.run_once() == 1 and loop.mode.mode == NORMAL
    assert loop.wait_hint() is None


def test_an_operators_mode_is_left_alone_and_its_clearing_wakes_the_loop(
    hive: Hive, clock: FakeClock
) -> None:
    found = [Incident(uuid5(SPACE, "d"), "database")]
    critical = ModeRule(rule="database", mode="critical")  # not a default rule: configured
    config = DegradationConfig(calm_s=10, rules=[*DEFAULT_RULES, critical])
    loop = manager(hive, clock, found, config)
    hive.modes.set(MAINTENANCE, "upgrading", ALICE)
    loop.wake.clear()
    assert loop.run_once() == 0 and loop.mode.mode == MAINTENANCE
    hive.modes.clear("done", ALICE)
    assert loop.wake.is_set() and loop.mode.mode == NORMAL
    assert loop.run_once() == 1 and loop.mode.mode == CRITICAL


def test_every_process_follows_the_log_and_skips_what_it_saw(hive: Hive) -> None:
    other = LiveMode()  # another process: hears the log's events, in order, some twice
    hive.modes.set(DEGRADED, "testing", ALICE)
    hive.modes.set(MAINTENANCE, "testing", ALICE)
    events = list(enumerate(hive.history(hive.modes.current().id), start=1))  # type: ignore[union-attr]
    heard: list[str] = []
    other.on_change(lambda row: heard.append(row.mode))
    other.apply(events[1:])  # one missing before: waits for the feed
    assert other.mode == NORMAL
    other.apply(events)
    other.apply(events)
    assert (other.mode, other.row.version, heard) == (MAINTENANCE, 2, [DEGRADED, MAINTENANCE])


def test_the_mode_acted_on_is_critical_as_far_as_the_process_can_tell() -> None:
    recorded = LiveMode()
    gate = DatabaseGate(lambda: None)
    alive = [True]
    now = HiveModeNow(recorded, gate, lambda: alive[0])
    assert (now.effective(), now.why_critical()) == (NORMAL, None)
    alive[0] = False
    assert now.effective() == CRITICAL and now.why_critical() == "no engine process is alive"
    serve_principal(now, Role.ADMIN)
    serve_principal(now, Role.BOT)
    try:
        serve_principal(now, Role.CLIENT)
        raise AssertionError("a client was served in critical")
    except ModeRefused as refused:
        assert refused.status_code == 503 and (refused.headers or {})["Retry-After"] == "5"


def test_a_database_outage_is_no_default_cause_of_a_mode() -> None:
    """While the database is away each process is critical on its own; the detector's
    incident records the outage afterwards, and must not refuse clients then."""
    assert "database" not in {r.rule for r in DEFAULT_RULES}


def test_degraded_sheds_or_defers_a_submission_below_the_threshold(
    hive: Hive, clock: FakeClock
) -> None:
    recorded = LiveMode()
    hive.listeners.append(recorded.apply)
    now = HiveModeNow(recorded, DatabaseGate(lambda: None), lambda: True)
    low, high = TaskSpec("t", priority=1), TaskSpec("t", priority=7)
    assert admit_submission(now, [low], clock()) == [low]
    hive.modes.set(DEGRADED, "testing", ALICE)
    assert admit_submission(now, [high], clock()) == [high]
    try:
        admit_submission(now, [high, low], clock())
        raise AssertionError("a batch with a low task was admitted in degraded")
    except ModeRefused as refused:
        assert (refused.headers or {})["Retry-After"] == "5"
    now.configure(DegradationConfig(degraded_submissions="defer", defer_s=30))
    deferred = admit_submission(now, [high, low], clock())
    assert deferred[0] == high
    assert deferred[1].not_before == clock() + timedelta(seconds=30)


def test_a_request_is_judged_and_labelled_by_the_mode_it_arrived_in(hive: Hive) -> None:
    """The door reads the mode once: the header says it, and admission uses it even when
    the mode moves while the route runs."""
    recorded = LiveMode()
    hive.listeners.append(recorded.apply)
    now = HiveModeNow(recorded, DatabaseGate(lambda: None), lambda: True)
    low = TaskSpec("t", priority=1)
    admitted: list[list[TaskSpec]] = []

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        hive.modes.set(DEGRADED, "it moved mid-request", ALICE)  # after the door
        admitted.append(admit_submission(now, [low], hive.clock(), scope["state"]))
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    scope: Scope = {"type": "http", "method": "POST", "path": "/v1/tasks", "headers": []}
    asyncio.run(ModeHeader(route, mode=lambda: now)(scope, receive, send))
    assert scope["state"][MODE_STATE] == NORMAL
    assert admitted == [[low]]  # judged by the mode it arrived in
    assert (b"x-apiary-mode", b"normal") in sent[0]["headers"]
    assert now.effective() == DEGRADED  # the next request is judged by the new one
