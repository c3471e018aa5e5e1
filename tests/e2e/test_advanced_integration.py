"""Advanced capabilities, working together with everything else, on a real server and real
bots over real HTTP.

**Request Validation.** Four clients, each with a key of its own, submit at the same time,
mixing good tasks with every kind of bad input outside testing found (a NUL in any text, a
lone surrogate, unknown fields and query parameters, wrong types, bad names, JSON that is
not JSON, a body of one NUL byte, an oversized payload, an oversized body, an empty batch
and one over the limit, no key, a made-up key, an oversized header):

- every bad request gets its 4xx as ``application/problem+json``, and leaves no trace in
  the log: the events each client caused are exactly its good submissions;
- every good task is routed and completes;
- no view stalls: every view reaches the end of the log within a deadline.

Later capabilities of the front door (the rate-limited burst: the throttled client gets 429s
while the others' submit->start p50 holds) add their part to this scenario.
"""

from __future__ import annotations

import json
import statistics
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest

from api.bootstrap import open_hive
from api.settings import Settings
from domain.cause import Cause
from domain.keys import Role
from domain.tasks import Task
from tests.e2e.harness import Hive, start_bot
from tests.integration.log_checks import log_end, log_events
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

CLIENTS = 4
GOOD_PER_CLIENT = 40
MAX_PAYLOAD = 4096
MAX_BATCH = 20
PROBLEM = "application/problem+json"
VIEWS_DEADLINE_S = 10.0
SETUP = Cause("operator", "advanced-integration")


@dataclass(frozen=True)
class Bad:
    """One bad request and the status it must get."""

    what: str
    status: int
    method: str
    path: str
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    keyless: bool = False


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


JSON = {"Content-Type": "application/json"}
BAD: list[Bad] = [
    Bad("NUL in the idempotency key", 422, "POST", "/v1/tasks",
        _json({"type": "noop", "idempotency_key": "\u0000"}), JSON),
    Bad("NUL in the payload", 422, "POST", "/v1/tasks",
        _json({"type": "noop", "payload": {"text": "a\u0000b"}}), JSON),
    Bad("NUL in a payload key", 422, "POST", "/v1/tasks",
        _json({"type": "noop", "payload": {"\u0000": 1}}), JSON),
    Bad("a lone surrogate", 422, "POST", "/v1/tasks",
        b'{"type": "noop", "payload": {"s": "\\ud800"}}', JSON),
    Bad("an unknown field", 422, "POST", "/v1/tasks", _json({"type": "noop", "colour": "red"}),
        JSON),
    Bad("a priority as text", 422, "POST", "/v1/tasks", _json({"type": "noop", "priority": "5"}),
        JSON),
    Bad("a bad type name", 422, "POST", "/v1/tasks", _json({"type": "Not A Name"}), JSON),
    Bad("an unknown query parameter", 422, "GET", "/v1/tasks?stat=running"),
    Bad("a NUL in a query", 422, "GET", "/v1/tasks?type=a%00b"),
    Bad("JSON that is not JSON", 400, "POST", "/v1/tasks", b'{"type": "noop",', JSON),
    Bad("a body of one NUL byte", 400, "POST", "/v1/tasks", b"\x00", JSON),
    Bad("a payload over the limit", 413, "POST", "/v1/tasks",
        _json({"type": "noop", "payload": {"text": "x" * MAX_PAYLOAD}}), JSON),
    Bad("a body over the limit", 413, "POST", "/v1/tasks/batch",
        _json({"tasks": [{"type": "noop", "payload": {"t": "x" * 3000}}] * 12}), JSON),
    Bad("an empty batch", 422, "POST", "/v1/tasks/batch", _json({"tasks": []}), JSON),
    Bad("a batch over the limit", 422, "POST", "/v1/tasks/batch",
        _json({"tasks": [{"type": "noop"}] * (MAX_BATCH + 1)}), JSON),
    Bad("a batch with one NUL deep inside", 422, "POST", "/v1/tasks/batch",
        _json({"tasks": [{"type": "noop"}, {"type": "noop", "payload": [[{"k": "\u0000"}]]}]}),
        JSON),
    Bad("no key", 401, "POST", "/v1/tasks", _json({"type": "noop"}), JSON, keyless=True),
    Bad("a made-up key", 401, "POST", "/v1/tasks", _json({"type": "noop"}),
        {**JSON, "Authorization": "Bearer apk_00000000000000000000000000000000_nope"},
        keyless=True),
]  # fmt: skip


@dataclass
class Client:
    """One of the four: its key's principal, what it submitted, what it got."""

    name: str
    http: httpx.Client
    good: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)

    def run(self, plan: list[Bad | None]) -> None:
        for step in plan:
            if step is None:
                answer = self.http.post("/v1/tasks", json={"type": "noop", "payload": {"n": 1}})
                if answer.status_code != 201:
                    self.wrong.append(f"a good task got {answer.status_code}: {answer.text}")
                else:
                    self.good.append(answer.json()["id"])
                continue
            self.wrong += _refusal_problems(self.http, step)


def _refusal_problems(http: httpx.Client, bad: Bad) -> list[str]:
    headers = dict(bad.headers)
    if bad.keyless and "Authorization" not in headers:
        headers["Authorization"] = ""
    request = http.build_request(bad.method, bad.path, content=bad.content, headers=headers)
    if bad.keyless and not headers["Authorization"]:
        del request.headers["Authorization"]
    answer = http.send(request)
    found = []
    if answer.status_code != bad.status:
        found.append(f"{bad.what}: {answer.status_code}, expected {bad.status}: {answer.text}")
    if not answer.headers.get("content-type", "").startswith(PROBLEM):
        found.append(f"{bad.what}: served as {answer.headers.get('content-type')}")
    return found


def _plan(seed: int) -> list[Bad | None]:
    """Good submissions with every bad request spread among them (each client its order)."""
    plan: list[Bad | None] = [None] * GOOD_PER_CLIENT
    for i, bad in enumerate(BAD):
        plan.insert((i * 7 + seed * 3) % (len(plan) + 1), bad)
    return plan


def _start_to_p50(tasks: list[dict[str, Any]]) -> float:
    waits = [
        (datetime.fromisoformat(t["started_at"]) - datetime.fromisoformat(t["submitted_at"]))
        for t in tasks
    ]
    return statistics.median(w.total_seconds() for w in waits)


@pytest.fixture
def validating_hive(make_hive: Callable[..., Hive]) -> Hive:
    return make_hive(
        APIARY_MAX_PAYLOAD_BYTES=str(MAX_PAYLOAD), APIARY_MAX_BATCH=str(MAX_BATCH)
    ).start()


def test_request_validation_under_concurrent_clients(validating_hive: Hive) -> None:
    hive = validating_hive
    enrol = hive.key("bot")
    bots = [
        start_bot(hive, enrol, f"worker-{i}", "--capabilities", "noop", "--max-concurrency", "8")
        for i in range(2)
    ]
    clients = [Client(name, hive.client(token)) for name, token in _client_keys(hive).items()]
    try:
        wait_for(lambda: _ready_bots(clients[0].http) == len(bots), timeout=30, what="the bots")
        threads = [
            threading.Thread(target=c.run, args=(_plan(i),), name=c.name)
            for i, c in enumerate(clients)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "a client never finished"
        wrong = [f"{c.name}: {w}" for c in clients for w in c.wrong]
        assert not wrong, "\n".join(wrong)

        # Every good task is routed and completes.
        reader = clients[0].http
        every = [task_id for c in clients for task_id in c.good]
        assert len(every) == CLIENTS * GOOD_PER_CLIENT

        def all_done() -> list[dict[str, Any]]:
            tasks = [reader.get(f"/v1/tasks/{t}").json() for t in every]
            return tasks if all(t.get("state") == "succeeded" for t in tasks) else []

        done = wait_for(all_done, timeout=60, what="every good task to complete")
        assert all(t["bot_id"] is not None for t in done)

        # No view stalls: every view reaches the end of the log.
        end = log_end(hive.db_url)

        def views_at_end() -> bool:
            answer = reader.get("/metrics")
            lags = [
                line
                for line in answer.text.splitlines()
                if line.startswith("apiary_projection_position{")
            ]
            return bool(lags) and all(float(line.rsplit(" ", 1)[1]) >= end for line in lags)

        wait_for(views_at_end, timeout=VIEWS_DEADLINE_S, what="every view at the log's end")

        # No trace: the events each client caused are exactly its good submissions.
        events = log_events(hive.db_url)
        caused = Counter(e.actor for e in events)
        submitted = Counter(e.actor for e in events if isinstance(e, Task.Submitted))
        for c in clients:
            assert caused[c.name] == submitted[c.name] == GOOD_PER_CLIENT, (
                f"{c.name} caused {caused[c.name]} events, {submitted[c.name]} submissions; "
                f"it made {GOOD_PER_CLIENT} good ones"
            )
        print(f"submit->start p50 of the good tasks: {_start_to_p50(done) * 1000:.1f} ms")
    finally:
        for c in clients:
            c.http.close()
        for b in bots:
            b.stop()


def _ready_bots(reader: httpx.Client) -> int:
    return sum(b["state"] == "ready" for b in reader.get("/v1/bots").json()["items"])


def _client_keys(hive: Hive) -> dict[str, str]:
    """A client key per client, each with a principal of its own (so the log tells them
    apart), issued on the hive's database as an operator would."""
    writer = open_hive(hive.db_url, Settings())
    try:
        return {
            f"client-{i}": writer.keys.issue(f"client-{i}", Role.CLIENT, SETUP).token
            for i in range(CLIENTS)
        }
    finally:
        writer.close()
