"""BotWorker and HiveClient against a fake hive we own: the HTTP contract of
docs/http-api.md kept in memory and served through a ``FakeTransport``."""

from __future__ import annotations

import argparse
import io
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
import pytest

from runtime.bot import JSON
from runtime.bot.cli import (
    add_bot_arguments,
    bot_name,
    builtin_handler_for,
    exec_handler_for,
    hive_and_key,
    run_bot,
    serve,
)
from runtime.bot.client import (
    CLAIM_READ_MARGIN_S,
    DEFAULT_TIMEOUT,
    BotLost,
    ClaimedTask,
    HiveClient,
    HiveRejected,
    Refused,
    Registration,
    TaskFailure,
    TaskRef,
    TaskResult,
    Unavailable,
)
from runtime.bot.client import CONFIG_VERSION_HEADER as CONFIG_HEADER
from runtime.bot.exec_handler import ExecHandler
from runtime.bot.handlers import HANDLERS, Handler, TaskError, code, noop
from runtime.bot.transport import Headers, Response, TransportError
from runtime.bot.worker import BotWorker
from tests.unit.fake_transport import FakeTransport, Request, answer

ENROLMENT = f"apk_{'e' * 32}_enrolment-secret"
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
DEADLINE_S = 10.0


# -- the fake hive ----------------------------------------------------------------------


@dataclass
class FakeBot:
    id: str
    token: str
    name: str
    capabilities: list[str]
    max_concurrency: int
    version: str
    state: str = "ready"
    config_version: int | None = None  # what it said at its last heartbeat


@dataclass
class FakeTask:
    id: str
    type: str
    payload: JSON
    state: str = "pending"
    bot_id: str | None = None
    fencing_token: int = 0
    result: JSON = None
    error: str | None = None
    error_kind: str | None = None
    retryable: bool | None = None  # as the report said it (None: not said)


@dataclass(frozen=True)
class Call:
    method: str
    action: str
    bot_id: str | None
    count: int
    status: int
    request_id: str | None
    at: float = field(default_factory=time.monotonic)


class FakeHive:
    """Bots, tasks, assignment, fencing tokens and batch refusals, as the contract says."""

    def __init__(self, heartbeat_interval_s: float = 0.05, lease_ttl_s: float = 2.0) -> None:
        self.heartbeat_interval_s = heartbeat_interval_s
        self.lease_ttl_s = lease_ttl_s
        self.changed = threading.Condition()
        self.bots: dict[str, FakeBot] = {}
        self.tasks: dict[str, FakeTask] = {}
        self.calls: list[Call] = []
        self.unavailable: dict[str, int] = {}  # action -> 503s still to answer
        self.throttled: dict[str, int] = {}  # action -> 429s still to answer
        self.lost_answers: dict[str, int] = {}  # action -> answers lost after it was applied
        self.cancel_when_claimed: set[str] = set()  # a client cancels right after the claim
        self.cancel_when_started: set[str] = set()  # ... or right after the start
        self.config_version: int | None = None  # None: a hive that says nothing of configs
        self.start_in_finish = False  # takes a finish with ran_s for an unstarted task
        self.ran: dict[str, float] = {}  # task -> the ran_s its finish carried

    def client(self, **kw: Any) -> HiveClient:
        kw.setdefault("retry_deadline_s", 2.0)
        kw.setdefault("backoff_base_s", 0.01)
        return HiveClient("http://hive.test", ENROLMENT, transport=FakeTransport(self.handle), **kw)

    # -- what a test does to the hive --------------------------------------------------

    def submit(self, type: str, payloads: list[JSON]) -> list[str]:
        with self.changed:
            ids = []
            for payload in payloads:
                task = FakeTask(str(uuid.uuid4()), type, payload)
                self.tasks[task.id] = task
                ids.append(task.id)
            self.changed.notify_all()
            return ids

    def lose(self, bot_id: str) -> None:
        with self.changed:
            self.bots[bot_id].state = "lost"
            self._release(bot_id)
            self.changed.notify_all()

    def wait_for(self, what: str, predicate: Callable[[], bool]) -> None:
        with self.changed:
            assert self.changed.wait_for(predicate, DEADLINE_S), f"timed out waiting for {what}"

    def states(self, ids: list[str]) -> list[str]:
        with self.changed:
            return [self.tasks[i].state for i in ids]

    def done(self, ids: list[str]) -> Callable[[], bool]:
        return lambda: all(self.tasks[i].state in ("succeeded", "failed") for i in ids)

    def calls_to(self, action: str) -> list[Call]:
        with self.changed:
            return [c for c in self.calls if c.action == action]

    # -- the HTTP side -----------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        body = orjson.loads(request.body) if request.body else None
        with self.changed:
            action, bot_id, response = self._route(request, body)
            if response.status == 200 and self.lost_answers.get(action, 0) > 0:
                self.lost_answers[action] -= 1
                self.calls.append(Call(request.method, action, bot_id, 0, -1, None))
                raise TransportError("connection reset after the hive applied it")
            count = len(body["tasks"]) if isinstance(body, dict) and "tasks" in body else 0
            if action == "claim" and response.status == 200:
                count = len(orjson.loads(response.body)["tasks"])  # tasks handed out
            self.calls.append(
                Call(
                    request.method,
                    action,
                    bot_id,
                    count,
                    response.status,
                    request.headers.get("X-Request-ID"),
                )
            )
            self.changed.notify_all()
            return response

    def _route(self, request: Request, body: Any) -> tuple[str, str | None, Response]:
        path = request.path
        if path == "/v1/bots" and request.method == "POST":
            action, bot_id = "register", None
        else:
            match = re.fullmatch(r"/v1/bots/([^/]+)(?:/(\w+))?", path)
            if match is None:
                return "?", None, _problem(404, "not-found")
            bot_id = match[1]
            action = match[2] or ("deregister" if request.method == "DELETE" else "?")
        if self.unavailable.get(action, 0) > 0:
            self.unavailable[action] -= 1
            return action, bot_id, _problem(503, "unavailable", headers={"Retry-After": "0"})
        if self.throttled.get(action, 0) > 0:
            self.throttled[action] -= 1
            return action, bot_id, _problem(429, "rate-limited", headers={"Retry-After": "0"})
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        if token is None:
            return action, bot_id, _problem(401, "unauthenticated")
        if action == "register":
            if token != ENROLMENT:
                return action, None, _problem(403, "forbidden")
            return action, None, self._register(body)
        bot = next((b for b in self.bots.values() if b.token == token), None)
        if bot is None:
            return action, bot_id, _problem(401, "unauthenticated")
        if bot.id != bot_id:
            return action, bot_id, _problem(403, "forbidden")
        if action == "deregister":
            bot.state = "deregistered"
            self._release(bot.id)
            return action, bot_id, answer(200, {})
        if bot.state != "ready":
            return action, bot_id, _problem(409, "bot-not-live", detail=f"bot is {bot.state}")
        if action == "heartbeat":
            bot.config_version = body.get("config_version") if isinstance(body, dict) else None
            ack: dict[str, Any] = {"lease_expires_at": "later"}
            if self.config_version is not None:
                ack |= {
                    "config_version": self.config_version,
                    "heartbeat_interval_s": self.heartbeat_interval_s,
                    "lease_ttl_s": self.lease_ttl_s,
                }
            return action, bot_id, answer(200, ack)
        if action == "claim":
            return action, bot_id, self._claim(bot, body["max_tasks"], body["wait_s"])
        if action in ("start", "complete", "fail"):
            return action, bot_id, self._report(bot, action, body["tasks"])
        return action, bot_id, _problem(404, "not-found")

    def _register(self, body: dict[str, Any]) -> Response:
        bot = FakeBot(
            id=str(uuid.uuid4()),
            token=f"apk_{uuid.uuid4().hex}_{uuid.uuid4().hex}",
            name=body["name"],
            capabilities=body["capabilities"],
            max_concurrency=body["max_concurrency"],
            version=body["version"],
        )
        self.bots[bot.id] = bot
        return answer(
            201,
            {
                "bot_id": bot.id,
                "token": bot.token,
                "heartbeat_interval_s": self.heartbeat_interval_s,
                "lease_ttl_s": self.lease_ttl_s,
                **({"start_in_finish": True} if self.start_in_finish else {}),
            },
        )

    def _claim(self, bot: FakeBot, max_tasks: int, wait_s: float) -> Response:
        deadline = time.monotonic() + wait_s
        while True:
            if bot.state != "ready":
                return _problem(409, "bot-not-live", detail=f"bot is {bot.state}")
            self._dispatch(bot)
            ready = [t for t in self.tasks.values() if t.bot_id == bot.id and t.state == "assigned"]
            remaining = deadline - time.monotonic()
            if ready or remaining <= 0:
                break
            self.changed.wait(remaining)
        claimed = ready[:max_tasks]
        out = [
            {
                "id": t.id,
                "type": t.type,
                "priority": 5,
                "capabilities": [t.type],
                "payload": t.payload,
                "fencing_token": t.fencing_token,
            }
            for t in claimed
        ]
        for t in claimed:
            if t.id in self.cancel_when_claimed:
                t.state = "cancelled"
        said = {} if self.config_version is None else {CONFIG_HEADER: str(self.config_version)}
        return answer(200, {"tasks": out}, said)

    def _dispatch(self, bot: FakeBot) -> None:
        held = sum(1 for t in self.tasks.values() if t.bot_id == bot.id and t.state in HELD_STATES)
        for task in self.tasks.values():
            if held >= bot.max_concurrency:
                return
            if task.state == "pending" and task.type in bot.capabilities:
                task.state, task.bot_id = "assigned", bot.id
                task.fencing_token += 1
                held += 1

    def _report(self, bot: FakeBot, action: str, items: list[dict[str, Any]]) -> Response:
        refused = []
        for item in items:
            task = self.tasks.get(item["task_id"])
            reason = self._refusal(bot, action, task, item["fencing_token"], "ran_s" in item)
            if reason is not None:
                refused.append({"task_id": item["task_id"], "reason": reason})
        if refused:  # all or nothing
            return _problem(409, "refused", items=refused)
        for item in items:
            task = self.tasks[item["task_id"]]
            if action == "start":
                task.state = "running"
            elif action == "complete":
                task.state, task.result = "succeeded", item["result"]
            else:
                task.state, task.error = "failed", item["error"]
                task.error_kind, task.retryable = item.get("error_kind"), item.get("retryable")
            if "ran_s" in item:
                self.ran[task.id] = item["ran_s"]
        if action == "start":
            for item in items:
                if item["task_id"] in self.cancel_when_started:
                    self.tasks[item["task_id"]].state = "cancelled"
            return answer(200, {"tasks": [i["task_id"] for i in items]})
        return answer(200, {})

    def _refusal(
        self, bot: FakeBot, action: str, task: FakeTask | None, token: int, ran: bool
    ) -> str | None:
        if task is None or task.bot_id != bot.id:
            return "the task is not assigned to this bot"
        if token != task.fencing_token:
            return "stale fencing token"
        allowed = {"start": ("assigned", "running"), "complete": ("running", "succeeded")}
        finishable = allowed.get(action, ("running", "failed"))
        if ran and self.start_in_finish and action != "start":
            finishable = ("assigned", *finishable)
        if task.state not in finishable:
            return f"the task is {task.state}"
        return None

    def _release(self, bot_id: str) -> None:
        for task in self.tasks.values():
            if task.bot_id == bot_id and task.state in HELD_STATES:
                task.state, task.bot_id = "pending", None


HELD_STATES = ("assigned", "running")


def _problem(
    status: int, slug: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    body = {
        "type": f"https://apiary.dev/problems/{slug}",
        "title": slug,
        "status": status,
        **extra,
    }
    return Response(
        status,
        Headers({"Content-Type": "application/problem+json", **(headers or {})}),
        orjson.dumps(body),
    )


# -- running a worker -------------------------------------------------------------------


@dataclass
class Running:
    worker: BotWorker
    thread: threading.Thread
    exit_codes: list[int]

    def stop(self) -> int:
        self.worker.stop()
        self.thread.join(DEADLINE_S)
        assert not self.thread.is_alive(), "the worker did not stop"
        return self.exit_codes[0]


@pytest.fixture
def hive() -> FakeHive:
    return FakeHive()


@pytest.fixture
def start_worker(hive: FakeHive) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []
    clients: list[HiveClient] = []

    def start(
        handler_for: Callable[[ClaimedTask], Handler] = builtin_handler_for,
        max_concurrency: int = 4,
        capabilities: tuple[str, ...] = ("noop", "code", "analysis", "writing"),
        **client_options: Any,
    ) -> Running:
        client = hive.client(**client_options)
        clients.append(client)
        worker = BotWorker(
            client,
            capabilities,
            "bot-test",
            max_concurrency,
            "test-1",
            handler_for,
            claim_wait_s=0.2,
            retry_pause_s=0.01,
        )
        exit_codes: list[int] = []
        thread = threading.Thread(target=lambda: exit_codes.append(worker.run()), daemon=True)
        thread.start()
        running = Running(worker, thread, exit_codes)
        started.append(running)
        return running

    yield start
    for running in started:
        running.worker.stop()
        running.thread.join(DEADLINE_S)
    for client in clients:
        client.close()


class Gate:
    """A handler that holds each task until the test opens the gate."""

    def __init__(self, hive: FakeHive) -> None:
        self.hive = hive
        self.opened = threading.Event()
        self.runs = 0

    def __call__(self, payload: JSON) -> JSON:
        with self.hive.changed:
            self.runs += 1
            self.hive.changed.notify_all()
        assert self.opened.wait(DEADLINE_S), "the gate was never opened"
        return {"held": payload}


# -- the worker -------------------------------------------------------------------------


def test_claims_start_and_complete_in_batches(hive: FakeHive, start_worker: Any) -> None:
    ids = hive.submit("noop", [{"i": i} for i in range(50)])
    running = start_worker(max_concurrency=50)
    hive.wait_for("all tasks done", hive.done(ids))
    assert running.stop() == 0

    assert hive.states(ids) == ["succeeded"] * 50
    assert all(hive.tasks[i].result == {} for i in ids)
    # One claim got them all, one start started them all, one complete reported them all.
    assert [c.count for c in hive.calls_to("start")] == [50]
    assert [c.count for c in hive.calls_to("complete")] == [50]
    assert hive.calls_to("fail") == []
    assert [c.status for c in hive.calls_to("deregister")] == [200]
    assert running.worker.tally.completed == 50
    request_ids = [c.request_id for c in hive.calls]
    assert all(r is not None and REQUEST_ID.match(r) for r in request_ids)
    assert len(set(request_ids)) == len(request_ids)


def test_fast_tasks_are_reported_once_with_their_start_to_a_hive_that_takes_it(
    hive: FakeHive, start_worker: Any
) -> None:
    hive.start_in_finish = True
    ids = hive.submit("noop", [{"i": i} for i in range(50)])
    running = start_worker(max_concurrency=50)
    hive.wait_for("all tasks done", hive.done(ids))
    assert running.stop() == 0

    assert hive.states(ids) == ["succeeded"] * 50
    assert hive.calls_to("start") == []  # one report says start and finish
    assert [c.count for c in hive.calls_to("complete")] == [50]
    assert sorted(hive.ran) == sorted(ids) and all(0 <= r < 1 for r in hive.ran.values())
    assert running.worker.tally.completed == 50


def test_an_unstarted_task_is_never_claimed_twice_while_its_report_is_delayed(
    hive: FakeHive, start_worker: Any
) -> None:
    """Until its report lands the hive lists it as assigned: the bot claims no more."""
    hive.start_in_finish = True
    hive.unavailable["complete"] = 3  # the report is retried, the claims must wait for it
    ids = hive.submit("noop", [{"i": i} for i in range(20)])
    running = start_worker(max_concurrency=5)
    hive.wait_for("all tasks done", hive.done(ids))
    assert running.stop() == 0
    assert sum(c.count for c in hive.calls_to("claim")) == 20  # each handed out once
    assert running.worker.tally.completed == 20


def test_slow_tasks_are_still_started_first(hive: FakeHive, start_worker: Any) -> None:
    hive.start_in_finish = True
    ids = hive.submit("code", [{"source": "x = 1"} for _ in range(3)])
    running = start_worker(max_concurrency=3)
    hive.wait_for("all tasks done", hive.done(ids))
    assert running.stop() == 0
    assert sum(c.count for c in hive.calls_to("start")) == 3 and hive.ran == {}


def test_a_new_config_version_changes_the_bots_terms_and_loses_no_work(
    hive: FakeHive, start_worker: Any
) -> None:
    hive.config_version, hive.heartbeat_interval_s = 1, 10.0  # no heartbeat before news
    first = hive.submit("noop", [{"i": i} for i in range(20)])
    running = start_worker(max_concurrency=4)
    hive.wait_for("the first tasks done", hive.done(first))
    (bot,) = hive.bots.values()
    hive.wait_for("the bot runs by version 1", lambda: bot.config_version == 1)
    with hive.changed:  # a new version: shorter heartbeats; the claims' answers say so
        hive.config_version, hive.heartbeat_interval_s = 2, 0.02
        hive.changed.notify_all()
    second = hive.submit("noop", [{"i": i} for i in range(20, 40)])
    hive.wait_for("the bot says it runs by version 2", lambda: bot.config_version == 2)
    hive.wait_for("the second tasks done", hive.done(second))
    beats = len(hive.calls_to("heartbeat"))
    hive.wait_for(
        "heartbeats at the new interval", lambda: len(hive.calls_to("heartbeat")) > beats + 3
    )
    assert running.stop() == 0
    assert hive.states(first + second) == ["succeeded"] * 40
    assert list(hive.bots) == [bot.id]  # the same registration throughout
    assert running.worker.tally.abandoned == 0
    assert running.worker.tally.completed == 40


def test_pooled_tasks_never_exceed_the_free_slots(hive: FakeHive, start_worker: Any) -> None:
    sources = [f"def f{i}(x):\n    return x if x else {i}\n" for i in range(30)]
    ids = hive.submit("code", [{"source": s} for s in sources])
    running = start_worker(max_concurrency=4)
    hive.wait_for("all tasks done", hive.done(ids))
    assert running.stop() == 0

    assert hive.states(ids) == ["succeeded"] * 30
    assert hive.tasks[ids[7]].result == code({"source": sources[7]})
    starts = hive.calls_to("start")
    assert sum(c.count for c in starts) == 30
    assert all(1 <= c.count <= 4 for c in starts)
    assert all(1 <= c.count <= 4 for c in hive.calls_to("claim") if c.count)
    assert sum(c.count for c in hive.calls_to("complete")) == 30


def test_failures_carry_the_handlers_message(hive: FakeHive, start_worker: Any) -> None:
    good = hive.submit("analysis", [{"values": [1, 2, 3]}])
    bad = hive.submit("analysis", [{"values": []}])
    unknown = hive.submit("translate", [{"text": "hi"}])
    running = start_worker(capabilities=("analysis", "translate"))
    everything = good + bad + unknown
    hive.wait_for("all tasks done", hive.done(everything))
    assert running.stop() == 0

    assert hive.states(everything) == ["succeeded", "failed", "failed"]
    assert hive.tasks[good[0]].result["mean"] == 2  # type: ignore[index, call-overload]
    assert hive.tasks[bad[0]].error == '"values" must be a non-empty list of numbers'
    assert "no handler for task type 'translate'" in (hive.tasks[unknown[0]].error or "")
    kinds = [(hive.tasks[i].error_kind, hive.tasks[i].retryable) for i in bad + unknown]
    assert kinds == [("bad-input", False), ("no-handler", False)]


def test_a_failures_kind_goes_with_it_and_retryable_is_said_only_when_false(
    hive: FakeHive, start_worker: Any
) -> None:
    def handler_for(task: ClaimedTask) -> Handler:
        def fails(payload: JSON) -> JSON:
            match payload:
                case {"how": "upstream"}:
                    raise TaskError("the mirror is down", kind="upstream")
                case {"how": "final"}:
                    raise TaskError("never", retryable=False)
                case _:
                    raise RuntimeError("a bug")

        return fails

    ids = hive.submit("code", [{"how": "upstream"}, {"how": "final"}, {"how": "crash"}])
    running = start_worker(handler_for=handler_for)
    hive.wait_for("all tasks done", hive.done(ids))
    assert running.stop() == 0
    said = [(hive.tasks[i].error, hive.tasks[i].error_kind, hive.tasks[i].retryable) for i in ids]
    assert said == [
        ("the mirror is down", "upstream", None),
        ("never", None, False),
        ("handler crashed: RuntimeError", "crash", None),
    ]


def test_a_late_failure_report_the_hive_refuses_is_dropped_and_work_goes_on(
    hive: FakeHive, start_worker: Any
) -> None:
    """The hive refuses (409) the report of an attempt it ended meanwhile (timed out, or
    the task re-driven or cancelled): the bot drops it and carries on."""

    def handler_for(task: ClaimedTask) -> Handler:
        def fails(payload: JSON) -> JSON:
            raise TaskError("too late", kind="slow")

        return fails

    ids = hive.submit("code", [{} for _ in range(3)])
    hive.cancel_when_started.add(ids[1])  # ended by the hive while the bot ran it
    running = start_worker(handler_for=handler_for, max_concurrency=3)
    hive.wait_for(
        "the rest reported",
        lambda: all(hive.tasks[i].state == "failed" for i in ids if i != ids[1]),
    )
    more = hive.submit("code", [{}])
    hive.wait_for("a later task reported", hive.done(more))
    assert running.stop() == 0
    assert hive.states(ids)[1] == "cancelled"
    assert running.worker.tally.refused == 1 and running.worker.tally.failed == 3


def test_a_refused_report_drops_that_task_and_resends_the_rest(
    hive: FakeHive, start_worker: Any
) -> None:
    ids = hive.submit("noop", [{} for _ in range(5)])
    hive.cancel_when_started.add(ids[2])  # a client cancels it while the bot works on it
    running = start_worker(max_concurrency=5)
    hive.wait_for(
        "the rest done", lambda: all(hive.tasks[i].state == "succeeded" for i in ids if i != ids[2])
    )
    assert running.stop() == 0

    assert [(c.count, c.status) for c in hive.calls_to("complete")] == [(5, 409), (4, 200)]
    assert hive.states(ids)[2] == "cancelled"
    assert running.worker.tally.refused == 1
    assert running.worker.tally.completed == 4


def test_a_refused_start_runs_the_rest(hive: FakeHive, start_worker: Any) -> None:
    ids = hive.submit("noop", [{} for _ in range(3)])
    hive.cancel_when_claimed.add(ids[0])
    running = start_worker(max_concurrency=3)
    hive.wait_for("the rest done", hive.done(ids[1:]))
    assert running.stop() == 0

    assert [(c.count, c.status) for c in hive.calls_to("start")] == [(3, 409), (2, 200)]
    assert hive.states(ids) == ["cancelled", "succeeded", "succeeded"]
    assert [c.count for c in hive.calls_to("complete")] == [2]


def test_lost_answers_lose_nothing(hive: FakeHive, start_worker: Any) -> None:
    # The hive applied the start and the complete, but their answers never arrived.
    hive.lost_answers.update(start=1, complete=1)
    ids = hive.submit("noop", [{} for _ in range(3)])
    running = start_worker()
    hive.wait_for("all tasks done", hive.done(ids))
    assert running.stop() == 0

    assert hive.states(ids) == ["succeeded"] * 3
    assert [c.status for c in hive.calls_to("start")] == [-1, 200]  # the same start again
    assert [c.status for c in hive.calls_to("complete")] == [-1, 200]
    assert running.worker.tally.refused == 0


def test_reports_outlast_an_unavailable_hive(hive: FakeHive, start_worker: Any) -> None:
    # The client gives up at once; the worker keeps the batch and tries again.
    hive.unavailable.update(start=5, complete=5)
    ids = hive.submit("noop", [{} for _ in range(3)])
    running = start_worker(retry_deadline_s=0.0)
    hive.wait_for("all tasks done", hive.done(ids))
    assert running.stop() == 0

    assert hive.states(ids) == ["succeeded"] * 3
    assert [c.status for c in hive.calls_to("start")] == [503] * 5 + [200]
    assert [c.status for c in hive.calls_to("complete")] == [503] * 5 + [200]
    assert [c.count for c in hive.calls_to("complete")] == [3] * 6


def test_a_lost_bot_abandons_its_tasks_and_registers_again(
    hive: FakeHive, start_worker: Any
) -> None:
    gate = Gate(hive)
    first_run_only = threading.Event()

    def slow_once(payload: JSON) -> JSON:
        if not first_run_only.is_set():
            first_run_only.set()
            return gate(payload)
        return {"second": payload}

    [task_id] = hive.submit("writing", [{"n": 1}])
    # One slot, held by the stuck task: only the heartbeat can hear that the bot is lost.
    running = start_worker(handler_for=lambda _t: slow_once, max_concurrency=1)
    hive.wait_for("the task running", lambda: gate.runs == 1)
    [first_bot] = list(hive.bots)
    hive.lose(first_bot)  # the hive took the task back while the bot still works on it

    hive.wait_for("a second registration", lambda: len(hive.bots) == 2)
    second_bot = next(b for b in hive.bots if b != first_bot)
    assert [c.status for c in hive.calls_to("heartbeat") if c.bot_id == first_bot][-1] == 409

    gate.opened.set()  # the first run ends now: its outcome belongs to the lost bot
    hive.wait_for("the task done again", hive.done([task_id]))
    task = hive.tasks[task_id]
    assert (task.state, task.bot_id, task.result) == (
        "succeeded",
        second_bot,
        {"second": {"n": 1}},
    )
    assert task.fencing_token == 2
    assert running.stop() == 0
    assert running.worker.tally.abandoned == 1
    assert running.worker.tally.registrations == 2
    assert all(c.bot_id == second_bot for c in hive.calls_to("complete"))
    assert hive.bots[first_bot].state == "lost"
    assert hive.bots[second_bot].state == "deregistered"


def test_graceful_stop_finishes_in_flight_work_then_deregisters(
    hive: FakeHive, start_worker: Any
) -> None:
    gate = Gate(hive)
    ids = hive.submit("writing", [{"n": 1}, {"n": 2}])
    running = start_worker(handler_for=lambda _t: gate, max_concurrency=2)
    hive.wait_for("both running", lambda: gate.runs == 2)

    running.worker.stop()
    later = hive.submit("writing", [{"n": 3}])
    stopped_at = time.monotonic()
    # While it drains, the bot keeps its lease alive.
    hive.wait_for(
        "heartbeats while draining",
        lambda: sum(1 for c in hive.calls if c.action == "heartbeat" and c.at > stopped_at) >= 2,
    )
    assert hive.calls_to("deregister") == []
    gate.opened.set()
    running.thread.join(DEADLINE_S)
    assert running.exit_codes == [0]

    assert hive.states(ids) == ["succeeded", "succeeded"]
    assert hive.states(later) == ["pending"]
    assert hive.tasks[later[0]].fencing_token == 0  # never claimed
    actions = [c.action for c in hive.calls if c.action in ("complete", "deregister")]
    assert actions[-1] == "deregister" and "complete" in actions
    assert hive.calls_to("deregister")[0].status == 200


def test_a_second_signal_exits_at_once(tmp_path: Any) -> None:
    script = tmp_path / "bot.py"
    script.write_text(
        textwrap.dedent(
            """\
            import sys, threading
            from tests.unit.test_bot_worker import FakeHive, Gate
            from runtime.bot.cli import serve
            from runtime.bot.worker import BotWorker

            hive = FakeHive()
            gate = Gate(hive)  # never opened: the task runs until the process dies
            hive.submit("writing", [{}])
            worker = BotWorker(hive.client(), ["writing"], "bot-sig", 1, "t", lambda _t: gate)

            def announce():
                hive.wait_for("running", lambda: gate.runs == 1)
                print("running", flush=True)

            threading.Thread(target=announce, daemon=True).start()
            sys.exit(serve(worker))
            """
        )
    )
    child = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=os.getcwd(),
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"running\n"
        child.send_signal(signal.SIGTERM)
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(0.5)  # the first signal waits for the task in hand
        child.send_signal(signal.SIGTERM)
        assert child.wait(DEADLINE_S) == 128 + signal.SIGTERM
    finally:
        child.kill()
        child.wait()


def test_sigterm_drains_and_exits_zero(hive: FakeHive) -> None:
    before = signal.getsignal(signal.SIGTERM)
    gate = Gate(hive)
    [task_id] = hive.submit("writing", [{"n": 1}])
    with hive.client() as client:
        worker = BotWorker(
            client, ["writing"], "bot-sig", 1, "t", lambda _t: gate, claim_wait_s=0.2
        )

        def signal_then_open() -> None:
            hive.wait_for("the task running", lambda: gate.runs == 1)
            os.kill(os.getpid(), signal.SIGTERM)
            gate.opened.set()

        helper = threading.Thread(target=signal_then_open, daemon=True)
        helper.start()
        assert serve(worker) == 0
        helper.join(DEADLINE_S)
    assert hive.states([task_id]) == ["succeeded"]
    assert [c.status for c in hive.calls_to("deregister")] == [200]
    assert signal.getsignal(signal.SIGTERM) is before  # serve() put it back


# -- the client -------------------------------------------------------------------------


def test_client_retries_503_with_the_same_request_id(hive: FakeHive) -> None:
    hive.unavailable["register"] = 2
    with hive.client() as client:
        registration = client.register("bot-a", ["noop"], 2, "v1")
    registers = hive.calls_to("register")
    assert [c.status for c in registers] == [503, 503, 201]
    assert len({c.request_id for c in registers}) == 1
    assert registration.heartbeat_interval_s == hive.heartbeat_interval_s
    assert registration.token not in repr(registration)


def test_client_waits_out_a_rate_limit_like_an_outage(hive: FakeHive) -> None:
    hive.throttled["register"] = 2
    with hive.client() as client:
        client.register("bot-a", ["noop"], 2, "v1")
    registers = hive.calls_to("register")
    assert [c.status for c in registers] == [429, 429, 201]
    assert len({c.request_id for c in registers}) == 1


def test_client_gives_up_after_its_deadline(hive: FakeHive) -> None:
    hive.unavailable["register"] = 10_000
    with hive.client(retry_deadline_s=0.3) as client:
        started = time.monotonic()
        with pytest.raises(Unavailable) as unavailable:
            client.register("bot-a", ["noop"], 2, "v1")
    assert unavailable.value.retry_after == 0.0
    assert time.monotonic() - started < 2.0
    assert len(hive.calls_to("register")) >= 2


def test_client_retries_transport_errors() -> None:
    attempts: list[str | None] = []

    def flaky(request: Request) -> Response:
        attempts.append(request.headers.get("X-Request-ID"))
        if len(attempts) < 3:
            raise TransportError("ConnectionRefusedError: connection refused")
        return answer(
            201, {"bot_id": "b", "token": "t", "heartbeat_interval_s": 1, "lease_ttl_s": 5}
        )

    with HiveClient(
        "http://hive.test", ENROLMENT, transport=FakeTransport(flaky), backoff_base_s=0.01
    ) as client:
        assert client.register("bot-a", ["noop"], 1, "v1").bot_id == "b"
    assert len(attempts) == 3 and len(set(attempts)) == 1


def test_client_says_who_it_is_and_gives_a_claim_its_long_poll_and_a_margin() -> None:
    seen: list[Request] = []

    def hive(request: Request) -> Response:
        seen.append(request)
        return answer(200, {"tasks": []})

    me = Registration("b", "tok", 1.0, 5.0)
    with HiveClient(
        "http://hive.test", ENROLMENT, transport=FakeTransport(hive), user_agent="apiary-bot/9"
    ) as client:
        assert client.claim(4, 25, bot=me) == []
        client.deregister(bot=me)
    claim, deregister = seen
    assert (claim.method, claim.path, deregister.method, deregister.path) == (
        "POST", "/v1/bots/b/claim", "DELETE", "/v1/bots/b"
    )  # fmt: skip
    assert orjson.loads(claim.body or b"") == {"max_tasks": 4, "wait_s": 25}
    assert deregister.body is None and "content-type" not in deregister.headers
    assert claim.timeouts == replace(DEFAULT_TIMEOUT, read=25 + CLAIM_READ_MARGIN_S)
    assert deregister.timeouts == DEFAULT_TIMEOUT
    assert dict(claim.headers) == {
        "user-agent": "apiary-bot/9",
        "accept": "application/json",
        "authorization": "Bearer tok",
        "x-request-id": claim.headers["X-Request-ID"],
        "content-type": "application/json",
    }


def test_client_maps_problems_to_exceptions(hive: FakeHive) -> None:
    with hive.client() as client:
        me = client.register("bot-a", ["noop"], 2, "v1")
        [task_id] = hive.submit("noop", [{}])
        [task] = client.claim(1, 0)
        assert (task.id, task.fencing_token, task.payload) == (task_id, 1, {})
        with pytest.raises(Refused) as refused:
            client.start([TaskRef(task.id, task.fencing_token + 1)])
        assert [(i.task_id, i.reason) for i in refused.value.items] == [
            (task_id, "stale fencing token")
        ]
        assert client.start([TaskRef(task.id, task.fencing_token)]) == [task_id]
        client.complete([TaskResult.of(task.id, task.fencing_token, {"ok": True})])
        assert hive.tasks[task_id].result == {"ok": True}

        hive.lose(me.bot_id)
        with pytest.raises(BotLost):
            client.heartbeat()
        with pytest.raises(BotLost):
            client.fail([TaskFailure(task.id, task.fencing_token, "x")])
    with (
        HiveClient(
            "http://hive.test", "apk_wrong", transport=FakeTransport(hive.handle)
        ) as stranger,
        pytest.raises(HiveRejected) as rejected,
    ):
        stranger.register("bot-b", ["noop"], 1, "v1")
    assert rejected.value.status == 403


def test_a_failure_message_is_cut_to_what_the_hive_accepts() -> None:
    failure = TaskFailure("t", 1, "e" * 10_000)
    assert len(failure.error) == 4096


# -- the command line -------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="apiary bot")
    add_bot_arguments(parser)
    return parser.parse_args(argv)


def test_bot_arguments_and_their_defaults() -> None:
    args = parse("--capabilities", "code, analysis,code")
    assert args.capabilities == ["analysis", "code"]
    assert (args.max_concurrency, args.exec_timeout) == (4, 60.0)
    assert args.url is None and args.key is None and args.exec_command is None
    with pytest.raises(SystemExit):
        parse("--capabilities", "Bad Name")
    with pytest.raises(SystemExit):
        parse("--capabilities", "code", "--max-concurrency", "0")


def test_bot_names_are_short_names() -> None:
    default = bot_name(None)
    assert re.fullmatch(r"^[a-z][a-z0-9_.-]{0,63}$", default)
    assert default.startswith("bot-") and default.endswith(f"-{os.getpid()}")
    assert bot_name("Worker-7") == "worker-7"
    with pytest.raises(ValueError, match="short name"):
        bot_name("7 workers")


def test_handlers_are_chosen_by_type_or_by_exec() -> None:
    def task(type: str) -> ClaimedTask:
        return ClaimedTask("t", type, 5, (type,), {}, 1)

    assert builtin_handler_for(task("noop")) is noop
    assert builtin_handler_for(task("code")) is HANDLERS["code"]
    with pytest.raises(TaskError, match="no handler for task type 'paint'") as refused:
        builtin_handler_for(task("paint"))
    assert (refused.value.kind, refused.value.retryable) == ("no-handler", False)
    command = ExecHandler("cat")
    assert exec_handler_for(command)(task("paint")) is command


def test_run_bot_without_a_hive_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("APIARY_HIVE_URL", raising=False)
    monkeypatch.delenv("APIARY_URL", raising=False)
    monkeypatch.setenv("APIARY_BOT_TOKEN", "apk_secret_value")
    assert run_bot(parse("--capabilities", "code")) == 2
    err = capsys.readouterr().err
    assert "APIARY_URL" in err and "apk_secret_value" not in err


def test_a_bot_takes_url_and_key_like_every_command_with_its_old_names_as_aliases() -> None:
    """Found by outside testing: `apiary bot` took --hive/--token, every other command
    --url/--key."""
    new = parse("--url", "http://h:1", "--key", "k", "--capabilities", "code")
    old = parse("--hive", "http://h:1", "--token", "k", "--capabilities", "code")
    assert (new.url, new.key) == (old.url, old.key) == ("http://h:1", "k")
    usage = io.StringIO()
    parser = argparse.ArgumentParser(prog="apiary bot")
    add_bot_arguments(parser)
    parser.print_help(usage)
    assert "--url URL, --hive URL" in usage.getvalue()
    assert "--key KEY, --token KEY" in usage.getvalue()


@pytest.mark.parametrize(
    ("env", "url", "key"),
    [
        ({"APIARY_URL": "http://new", "APIARY_KEY": "op"}, "http://new", "op"),
        ({"APIARY_HIVE_URL": "http://old", "APIARY_BOT_TOKEN": "bot"}, "http://old", "bot"),
        (  # an operator's key for the CLI and a bot's enrolment key, in one shell
            {"APIARY_URL": "http://a", "APIARY_KEY": "op", "APIARY_BOT_TOKEN": "bot"},
            "http://a",
            "bot",
        ),
    ],
)
def test_a_bots_hive_and_key_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], url: str, key: str
) -> None:
    for name in ("APIARY_URL", "APIARY_KEY", "APIARY_HIVE_URL", "APIARY_BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert (hive_and_key(parse("--capabilities", "code"))) == (url, key)
