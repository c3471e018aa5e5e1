"""Advanced capabilities, working together with everything else, on a real server and real
bots over real HTTP.

**Request Validation.** Four clients, each with a key of its own, submit at the same time,
mixing good tasks with every kind of bad input outside testing found (a NUL in any text, a
lone surrogate, unknown fields and query parameters, wrong types, bad names, JSON that is
not JSON, a body of one NUL byte, an oversized payload, an oversized body, an empty batch
and one over the limit, an oversized header, no key, a made-up key):

- every bad request gets its 4xx as ``application/problem+json``, and leaves no trace in
  the log: the events each client caused are exactly its good submissions;
- every good task is routed and completes;
- no view stalls: every view reaches the end of the log within a deadline.

Then one more key hammers the door from four threads while the four submit good tasks at
their own pace: it gets 429s (with ``Retry-After`` and the RateLimit headers), none of the
others does, what the limiter let through of it completes, what it refused leaves no
trace, and the others' submit->start p50 stays within a stated bound of the calm phase's.
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.bootstrap import open_hive
from api.settings import Settings
from domain.cause import Cause
from domain.incidents import Incident
from domain.keys import Role
from domain.policies.retry import RetryPolicy, backoff
from domain.schedules import Schedule
from domain.tasks import Task, implied_start
from projections.histogram import bucket_of, bucket_range
from tests.e2e.harness import Bot, Hive, start_bot
from tests.integration.log_checks import double_holds, log_end, log_events, tick_faults
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

CLIENTS = 4
GOOD_PER_CLIENT = 40
MAX_PAYLOAD = 4096
MAX_BATCH = 20
PROBLEM = "application/problem+json"
VIEWS_DEADLINE_S = 10.0
PACE_PER_S = 10  # each well-behaved client, well under its key's limit below
CLIENT_LIMIT = {"per_s": 20, "burst": 20}  # per client key, for the burst
ABUSERS = 4  # threads hammering on one key
HEAD_BYTES = 20_000  # over the door's 16 KiB
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
    Bad("an oversized header", 431, "GET", "/v1/tasks", None, {"X-Padding": "x" * HEAD_BYTES}),
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
        """The plan's requests, at most ``PACE_PER_S`` a second (a well-behaved client)."""
        pace = threading.Event()
        for step in plan:
            pace.wait(1 / PACE_PER_S)  # a client's own pace, not a wait for an outcome
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
    keys = _client_keys(hive)
    abuser = Abuser(hive.client(keys.pop("abuser")))
    clients = [Client(name, hive.client(token)) for name, token in keys.items()]
    admin = hive.client(hive.key("admin"))
    try:
        wait_for(lambda: _ready_bots(clients[0].http) == len(bots), timeout=30, what="the bots")

        # Calm: every client mixes good tasks with every kind of bad request.
        _run_all(clients, [_plan(i) for i in range(CLIENTS)])
        calm = [task_id for c in clients for task_id in c.good]
        assert len(calm) == CLIENTS * GOOD_PER_CLIENT

        # A burst: one key hammers the door while the four submit good tasks at their pace.
        _set_rate_limits(admin, {"client": CLIENT_LIMIT})
        hammering = [threading.Thread(target=abuser.hammer) for _ in range(ABUSERS)]
        for t in hammering:
            t.start()
        _run_all(clients, [[None] * GOOD_PER_CLIENT] * CLIENTS)
        abuser.stop.set()
        for t in hammering:
            t.join(timeout=30)
        burst = [task_id for c in clients for task_id in c.good if task_id not in set(calm)]
        wrong = [f"{c.name}: {w}" for c in clients for w in c.wrong] + abuser.wrong
        assert not wrong, "\n".join(wrong)
        assert abuser.statuses[429] > 0, abuser.statuses  # throttled...
        assert len(burst) == CLIENTS * GOOD_PER_CLIENT  # ...and the others not once

        # Every good task is routed and completes (the abuser's admitted ones too). Read
        # with the admin key: the clients' keys are still under the burst's limit.
        reader = admin
        every = calm + burst + abuser.admitted
        done = {
            t["id"]: t
            for t in wait_for(
                lambda: _all_done(reader, every), timeout=90, what="every good task to complete"
            )
        }
        assert all(t["bot_id"] is not None for t in done.values())

        # No view stalls: every view reaches the end of the log.
        end = log_end(hive.db_url)
        wait_for(
            lambda: _views_at(reader, end),
            timeout=VIEWS_DEADLINE_S,
            what="every view at the log's end",
        )

        # No trace: each client caused exactly its good submissions, the abuser exactly
        # what was admitted (a 429 leaves nothing, as a 4xx does).
        events = log_events(hive.db_url)
        caused = Counter(e.actor for e in events)
        submitted = Counter(e.actor for e in events if isinstance(e, Task.Submitted))
        for c in clients:
            assert caused[c.name] == submitted[c.name] == 2 * GOOD_PER_CLIENT, (
                f"{c.name} caused {caused[c.name]} events, {submitted[c.name]} submissions; "
                f"it made {2 * GOOD_PER_CLIENT} good ones"
            )
        assert caused["abuser"] == submitted["abuser"] == len(abuser.admitted)

        # The throttled key does not slow the others: submit->start p50 within the bound.
        calm_p50 = _start_to_p50([done[t] for t in calm])
        burst_p50 = _start_to_p50([done[t] for t in burst])
        print(
            f"submit->start p50: calm {calm_p50 * 1000:.1f} ms, during the burst "
            f"{burst_p50 * 1000:.1f} ms; the abuser: {dict(abuser.statuses)}"
        )
        assert burst_p50 <= P50_FACTOR * calm_p50 + P50_SLACK_S, (calm_p50, burst_p50)
    finally:
        abuser.stop.set()
        for http in [admin, abuser.http, *(c.http for c in clients)]:
            http.close()
        for b in bots:
            b.stop()


# The bound on the others' submit->start p50 while one key is throttled: the calm p50 plus
# 300 ms. A refusal is not free: serve spends about 0.8 ms of CPU on a 429 (0.5-0.6 ms on a
# /healthz; measured with psutil over 2,000 requests each), the abuser's four threads run
# on the same two cores as serve, the bots and PostgreSQL, and what the limiter admits of
# the burst is real work for the same two bots. Measured here: calm 9-11 ms, during the
# burst 105-147 ms (about 280 requests a second from the abuser, 1 in 9 admitted).
P50_FACTOR, P50_SLACK_S = 1.0, 0.3


@dataclass
class Abuser:
    """One key, many threads, no pace: submits until told to stop."""

    http: httpx.Client
    stop: threading.Event = field(default_factory=threading.Event)
    statuses: Counter[int] = field(default_factory=Counter)
    admitted: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)

    def hammer(self) -> None:
        while not self.stop.is_set():
            answer = self.http.post("/v1/tasks", json={"type": "noop"})
            self.statuses[answer.status_code] += 1
            if answer.status_code == 201:
                self.admitted.append(answer.json()["id"])
            elif answer.status_code == 429:
                self.wrong += _throttle_problems(answer)
            else:
                self.wrong.append(f"abuser: {answer.status_code}: {answer.text}")


def _throttle_problems(answer: httpx.Response) -> list[str]:
    expected = {
        "content-type": PROBLEM,
        "ratelimit-limit": str(CLIENT_LIMIT["burst"]),
        "ratelimit-remaining": "0",
    }
    found = [
        f"429 {k}: {answer.headers.get(k)}"
        for k, v in expected.items()
        if answer.headers.get(k) != v
    ]
    for name in ("retry-after", "ratelimit-reset"):
        if not answer.headers.get(name, "").isdigit():
            found.append(f"429 {name}: {answer.headers.get(name)}")
    return found


def _run_all(clients: list[Client], plans: list[list[Bad | None]]) -> None:
    threads = [
        threading.Thread(target=c.run, args=(plan,), name=c.name)
        for c, plan in zip(clients, plans, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a client never finished"


def _all_done(reader: httpx.Client, task_ids: list[str]) -> list[dict[str, Any]]:
    tasks = [reader.get(f"/v1/tasks/{t}").json() for t in task_ids]
    return tasks if all(t.get("state") == "succeeded" for t in tasks) else []


def _views_at(reader: httpx.Client, end: int) -> bool:
    positions = [
        float(line.rsplit(" ", 1)[1])
        for line in reader.get("/metrics").text.splitlines()
        if line.startswith("apiary_projection_position{")
    ]
    return bool(positions) and min(positions) >= end


def _set_rate_limits(admin: httpx.Client, rate_limits: dict[str, Any]) -> None:
    current = admin.get("/v1/config")
    changed = admin.patch(
        "/v1/config",
        json={"changes": {"rate_limits": rate_limits}, "reason": "a burst"},
        headers={"If-Match": current.headers["ETag"]},
    )
    assert changed.status_code == 200, changed.text


def _ready_bots(reader: httpx.Client) -> int:
    return sum(b["state"] == "ready" for b in reader.get("/v1/bots").json()["items"])


def _client_keys(hive: Hive) -> dict[str, str]:
    """A client key per client, each with a principal of its own (so the log tells them
    apart), issued on the hive's database as an operator would."""
    writer = open_hive(hive.db_url, Settings())
    try:
        return {
            name: writer.keys.issue(name, Role.CLIENT, SETUP).token
            for name in [*(f"client-{i}" for i in range(CLIENTS)), "abuser"]
        }
    finally:
        writer.close()


# -- Retry Manager -------------------------------------------------------------------------

FLAKY = """
import json, pathlib, sys
key = json.load(sys.stdin)["key"]
seen = pathlib.Path(sys.argv[1]) / key
runs = int(seen.read_text()) + 1 if seen.exists() else 1
seen.write_text(str(runs))
if runs < 3:
    print(f"flaky: attempt {runs} of {key} fails", file=sys.stderr)
    sys.exit(75)  # EX_TEMPFAIL: a temporary failure, retried
print(json.dumps({"attempts": runs}))
"""
POISON = """
import os, signal
os.kill(os.getppid(), signal.SIGKILL)  # the handler takes its bot down with it
"""
ALTERNATING = """
import pathlib, sys
seen = pathlib.Path(sys.argv[1])
runs = int(seen.read_text()) + 1 if seen.exists() else 1
seen.write_text(str(runs))
sys.exit(75 if runs % 2 else 0)  # every other run fails: each run's first attempt
"""
DOOMED = "import sys; sys.exit(75)"
FINE = "print('{}')"

FLAKY_TASKS = 6
DOOMED_TASKS = 2
RETRY_POLICIES = {
    "flaky": {"max_attempts": 3, "initial_backoff_s": 0.5, "multiplier": 2.0,
              "max_backoff_s": 5.0, "jitter": 0.1},
    "poison": {"max_attempts": 3, "initial_backoff_s": 0.2, "max_backoff_s": 1.0},
    "tick": {"max_attempts": 3, "initial_backoff_s": 1.5, "max_backoff_s": 2.0},
    "doomed": {"max_attempts": 2, "initial_backoff_s": 0.1, "max_backoff_s": 1.0},
}  # fmt: skip


def test_retry_manager(make_hive: Callable[..., Hive], tmp_path: Path) -> None:
    """**Retry Manager**, with real bot processes running real commands (``--exec``):

    - an ``--exec`` bot fails the first two attempts of each task (exit 75, a temporary
      failure) and succeeds on the third: each task has exactly three attempts in the log,
      and each retry starts no sooner than its policy's backoff after the failure;
    - a poison task (its handler kills its bot with SIGKILL) is dead-lettered after its
      three attempts, each ended by the lost bot's lease, while the other tasks complete;
    - a schedule firing every second with ``buffer_one``, whose every run fails its first
      attempt: no two runs overlap, every tick is decided once (fired, buffered or
      skipped: none lost, none doubled), each run succeeds on its second attempt;
    - a bulk re-drive of the dead letters (a dry run counts them first) completes them
      once a good bot is added: each in a second series, its first one kept in the log.
    """
    hive = make_hive(APIARY_BOT_LEASE_TTL_S="2", APIARY_HEARTBEAT_INTERVAL_S="0.5").start()
    admin = hive.client(hive.admin_key())
    scripts = _scripts(tmp_path)
    bots = []
    try:
        _set_retry_policies(admin)
        enrol = hive.key("bot")

        def bot(name: str, capability: str, script: str, *args: str) -> None:
            command = " ".join([sys.executable, str(scripts[script]), *args])
            bots.append(
                start_bot(
                    hive, enrol, name, "--capabilities", capability, "--exec", command,
                    "--max-concurrency", "1",
                )
            )  # fmt: skip

        bot("flaky-1", "flaky", "flaky", str(tmp_path / "runs"))
        for n in range(3):
            bot(f"poison-{n}", "poison", "poison")
        bot("ticker", "tick", "alternating", str(tmp_path / "ticks"))
        bot("doomed-1", "doomed", "doomed")
        wait_for(lambda: _live_bots(admin) >= 6, timeout=60, what="six bots registered")

        flaky = [_submit(admin, "flaky", {"key": f"f{n}"}) for n in range(FLAKY_TASKS)]
        poison = _submit(admin, "poison", {})
        doomed = [_submit(admin, "doomed", {"n": n}) for n in range(DOOMED_TASKS)]
        created = admin.post("/v1/schedules", json=_buffered_schedule())
        assert created.status_code == 201, created.text
        schedule_id = created.json()["id"]

        # Flaky tasks succeed on their third attempt; the poison one is dead-lettered.
        wait_for(
            lambda: _states(admin, flaky) == {"succeeded"},
            timeout=60,
            what="every flaky task to succeed on its third attempt",
        )
        dead = wait_for(
            lambda: _in_state(admin, [poison, *doomed], "dead"),
            timeout=60,
            what="the poison task and the doomed ones dead-lettered",
        )
        assert {t["dead_reason"] for t in dead} == {
            "attempts exhausted: 3 of 3",
            "attempts exhausted: 2 of 2",
        }

        # Let the schedule run a few seconds, then pause it and let its last run finish.
        wait_for(
            lambda: _runs_succeeded(admin, schedule_id) >= 3,
            timeout=60,
            what="three runs of the schedule succeeded",
        )
        assert admin.post(f"/v1/schedules/{schedule_id}/pause").status_code == 200
        events = wait_for(
            lambda: _schedule_settled(hive, schedule_id),
            timeout=30,
            what="the schedule's last run finished",
        )
        _check_flaky(events, flaky)
        _check_poison(events, poison)
        _check_schedule(events, schedule_id)

        # A bulk re-drive, once the doomed bot is gone and a good one is here.
        bots.pop().stop()
        bot("fixer", "doomed", "fine")
        bot("fixer-poison", "poison", "fine")
        query = {"filter": {"states": ["dead"]}, "limit": 100, "reason": "bots fixed"}
        dry = admin.post("/v1/tasks/redrive", json={**query, "dry_run": True})
        assert dry.status_code == 200, dry.text
        assert dry.json()["count"] == 1 + DOOMED_TASKS
        done = admin.post("/v1/tasks/redrive", json={**query, "dry_run": False})
        assert done.status_code == 200, done.text
        assert sorted(done.json()["task_ids"]) == sorted([poison, *doomed])
        redriven = wait_for(
            lambda: _in_state(admin, [poison, *doomed], "succeeded"),
            timeout=60,
            what="the re-driven dead letters to complete",
        )
        assert {t["series"] for t in redriven} == {2}
        events = log_events(hive.db_url)
        for task_id in [poison, *doomed]:
            mine = [e for e in events if str(e.originator_id) == task_id]
            kinds = [type(e).__name__ for e in mine]
            assert kinds.count("DeadLettered") == 1 and kinds.count("Redriven") == 1, kinds
            [again] = [e for e in mine if isinstance(e, Task.Redriven)]
            assert (again.reason, again.actor) == ("bots fixed", "admin"), again
    finally:
        admin.close()
        for b in bots:
            if b.proc.poll() is None:
                b.stop()


def _scripts(tmp_path: Path) -> dict[str, Path]:
    sources = {
        "flaky": FLAKY,
        "poison": POISON,
        "alternating": ALTERNATING,
        "doomed": DOOMED,
        "fine": FINE,
    }
    (tmp_path / "runs").mkdir()
    paths = {}
    for name, source in sources.items():
        paths[name] = tmp_path / f"{name}.py"
        paths[name].write_text(source)
    return paths


def _set_retry_policies(admin: httpx.Client) -> None:
    current = admin.get("/v1/config")
    document = current.json()["document"]
    changes: dict[str, Any] = {
        "retry": {**document["retry"], "types": RETRY_POLICIES},
    }
    if "breaker" in document:  # a flaky bot fails two attempts in three, by design here
        changes["breaker"] = {**document["breaker"], "enabled": False}
    answer = admin.patch(
        "/v1/config",
        json={"changes": changes, "reason": "retry policies for the scenario"},
        headers={"If-Match": current.headers["ETag"]},
    )
    assert answer.status_code == 200, answer.text


def _submit(admin: httpx.Client, task_type: str, payload: dict[str, Any]) -> str:
    answer = admin.post(
        "/v1/tasks", json={"type": task_type, "capabilities": [task_type], "payload": payload}
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _buffered_schedule() -> dict[str, Any]:
    return {
        "name": "failing-ticks",
        "every_s": 1,
        "template": {"type": "tick", "capabilities": ["tick"]},
        "overlap": "buffer_one",
    }


def _live_bots(admin: httpx.Client) -> int:
    return len(admin.get("/v1/bots").json()["items"])


def _states(admin: httpx.Client, task_ids: list[str]) -> set[str]:
    return {admin.get(f"/v1/tasks/{t}").json()["state"] for t in task_ids}


def _in_state(admin: httpx.Client, task_ids: list[str], state: str) -> list[dict[str, Any]]:
    tasks = [admin.get(f"/v1/tasks/{t}").json() for t in task_ids]
    return tasks if all(t["state"] == state for t in tasks) else []


def _runs_succeeded(admin: httpx.Client, schedule_id: str) -> int:
    runs = admin.get("/v1/tasks", params={"schedule_id": schedule_id, "limit": 100})
    return sum(t["state"] == "succeeded" for t in runs.json()["items"])


def _schedule_settled(hive: Hive, schedule_id: str) -> list[Any]:
    """The log, once every run the schedule fired has finished."""
    events = log_events(hive.db_url)
    runs = _runs(events, schedule_id)
    finals = (Task.Succeeded, Task.Failed, Task.DeadLettered, Task.Cancelled)
    ended = {e.originator_id for e in events if isinstance(e, finals)}
    return events if runs and all(r in ended for r in runs) else []


def _runs(events: list[Any], schedule_id: str) -> list[Any]:
    return [
        e.task_id
        for e in events
        if isinstance(e, Schedule.Fired | Schedule.Released) and str(e.originator_id) == schedule_id
    ]


def _check_flaky(events: list[Any], flaky: list[str]) -> None:
    policy = RetryPolicy(max_attempts=3, initial_backoff_s=0.5, multiplier=2.0, max_backoff_s=5)
    gaps: list[float] = []
    for task_id in flaky:
        mine = [e for e in events if str(e.originator_id) == task_id]
        retries = [e for e in mine if isinstance(e, Task.RetryScheduled)]
        assert [r.attempt for r in retries] == [1, 2], [type(e).__name__ for e in mine]
        assert all(r.outcome == "failed" for r in retries)
        starts = [e.timestamp for e in mine if isinstance(e, Task.Started)]
        assert len(starts) == 3, "three attempts, each started"
        for retry, next_start in zip(retries, starts[1:], strict=True):
            gap = (next_start - retry.timestamp).total_seconds()
            assert gap >= backoff(policy, retry.attempt), (task_id, retry.attempt, gap)
            assert next_start >= retry.not_before
            gaps.append(gap / backoff(policy, retry.attempt))
        assert isinstance(mine[-1], Task.Succeeded)
    print(
        f"flaky: {len(flaky)} tasks x 3 attempts; failure -> next start / backoff: "
        f"min {min(gaps):.2f}, max {max(gaps):.2f}"
    )


def _check_poison(events: list[Any], poison: str) -> None:
    mine = [e for e in events if str(e.originator_id) == poison]
    ended = [e for e in mine if isinstance(e, Task.RetryScheduled | Task.DeadLettered)]
    assert [(type(e).__name__, e.attempt, e.outcome) for e in ended] == [
        ("RetryScheduled", 1, "lost"),
        ("RetryScheduled", 2, "lost"),
        ("DeadLettered", 3, "lost"),
    ]
    assert len({e.bot_id for e in ended}) == 3, "each attempt on a bot of its own"
    took = (ended[-1].timestamp - mine[0].timestamp).total_seconds()
    print(f"poison: dead-lettered after 3 lost attempts, {took:.1f} s after its submission")


def _check_schedule(events: list[Any], schedule_id: str) -> None:
    mine = [
        e for e in events if isinstance(e, Schedule.Event) and str(e.originator_id) == schedule_id
    ]
    decided: list[datetime] = []
    for e in mine:
        if isinstance(e, Schedule.Fired | Schedule.Buffered):
            decided.append(e.tick)
        elif isinstance(e, Schedule.Skipped):
            decided += [e.first + timedelta(seconds=n) for n in range(e.count)]
    assert decided and decided == sorted(decided), decided
    assert not tick_faults(decided, 1.0), tick_faults(decided, 1.0)
    runs = _runs(events, schedule_id)
    spans = []
    for run in runs:
        theirs = [e for e in events if e.originator_id == run]
        retries = [e for e in theirs if isinstance(e, Task.RetryScheduled)]
        assert len(retries) == 1 and isinstance(theirs[-1], Task.Succeeded), [
            type(e).__name__ for e in theirs
        ]
        spans.append((theirs[0].timestamp, theirs[-1].timestamp))
    for (_, ended), (began, _) in itertools.pairwise(sorted(spans)):
        assert began >= ended, "a run fired while the one before it was still retrying"
    buffered = sum(isinstance(e, Schedule.Buffered) for e in mine)
    skipped = sum(e.count for e in mine if isinstance(e, Schedule.Skipped))
    assert buffered, "a run's retry outlasts a tick (1.5 s backoff, 1 s ticks): one is buffered"
    print(
        f"schedule: {len(decided)} ticks decided once each ({buffered} buffered while a run "
        f"retried, {skipped} skipped), {len(runs)} runs of 2 attempts, none overlapping"
    )


# -- Performance Profiler ---------------------------------------------------------------

SLOW_TASKS = 12
FAST_TASKS = 20  # of each of the two other types
SLOW_POOL = {
    "name": "slow",
    "capabilities": ["slow"],
    "min_bots": 1,
    "max_bots": 1,
    "max_concurrency": 1,
    "up_cooldown_s": 0,
    "exec": "sh -c 'sleep 0.2; echo {}'",
}


def test_performance_profiler(make_hive: Callable[..., Hive]) -> None:
    """**Performance Profiler.** A pool capped at one bot of one slot runs tasks of 0.2 s,
    so its tasks queue; two real bots run two other types (``noop``, ``analysis``).

    - While the capped pool's tasks still wait, the report's top finding is queue wait for
      its type, in that pool, at its max with work pending.
    - Once everything ran, the orchestration overhead the report gives per type (p50, p95)
      equals the exact nearest-rank value computed from each task's own events (submission
      to start: end to end less the run), within the histogram's stated error: the
      estimate lies in the exact value's bucket (``projections/histogram.py``).
    """
    hive = make_hive(APIARY_POOLS=json.dumps([SLOW_POOL]), APIARY_SCALER_INTERVAL_S="0.2").start()
    admin = hive.client(hive.admin_key())
    enrol = hive.key("bot")
    bots = [
        start_bot(hive, enrol, f"quick-{n}", "--capabilities", "noop,analysis",
                  "--max-concurrency", "4")
        for n in range(2)
    ]  # fmt: skip
    try:
        wait_for(lambda: _live_bots(admin) >= 3, timeout=60, what="the pool's bot and two more")
        slow = _submit_batch(admin, [{"type": "slow", "payload": {}}] * SLOW_TASKS)
        fast = _submit_batch(
            admin,
            [{"type": "noop", "payload": {}}] * FAST_TASKS
            + [{"type": "analysis", "payload": {"values": [1, 2, 3]}}] * FAST_TASKS,
        )
        wait_for(
            lambda: _succeeded(admin, "noop") + _succeeded(admin, "analysis") == len(fast),
            timeout=30,
            what="the fast ones",
        )
        wait_for(lambda: 6 <= _succeeded(admin, "slow") < len(slow) - 2, what="some slow ones")
        top = admin.get("/v1/profile", params={"window": "5m"}).json()["findings"][0]
        assert top["rule"] == "queue_wait" and top["severity"] == "critical", top
        assert top["evidence"]["type"] == "slow" and top["evidence"]["pool"] == "slow", top
        assert top["evidence"]["at_max"] and top["evidence"]["pool_pending"] > 0, top
        print(f"profiler: top finding: {top['summary']}")

        wait_for(lambda: _succeeded(admin, "slow") == len(slow), timeout=30, what="the slow ones")
        exact = _overheads(log_events(hive.db_url))
        counts = {t: len(v) for t, v in exact.items()}
        report = wait_for(
            lambda: _profile_counting(admin, counts),
            timeout=10,
            what="the stages view caught up with every task",
        )
        for t in report["types"]:
            samples = sorted(exact[t["type"]])
            for q, name in ((0.5, "p50_s"), (0.95, "p95_s")):
                true = samples[math.ceil(q * len(samples)) - 1]
                lower, upper = bucket_range(bucket_of(true))
                got = t["stages"]["overhead"][name]
                assert lower <= got <= upper, (t["type"], name, got, true)
                print(f"profiler: {t['type']} overhead {name} {got:.4f} s, exact {true:.4f} s")
    finally:
        for b in bots:
            b.stop()
        hive.stop()


def _submit_batch(admin: httpx.Client, tasks: list[dict[str, Any]]) -> list[str]:
    answer = admin.post("/v1/tasks/batch", json={"tasks": tasks})
    assert answer.status_code == 201, answer.text
    return [str(item["task"]["id"]) for item in answer.json()["items"]]


def _succeeded(admin: httpx.Client, task_type: str) -> int:
    answer = admin.get("/v1/tasks", params={"state": "succeeded", "type": task_type, "limit": 500})
    assert answer.status_code == 200, answer.text
    return len(answer.json()["items"])


def _profile(admin: httpx.Client) -> dict[str, Any]:
    answer = admin.get("/v1/profile", params={"window": "5m"})
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def _profile_counting(admin: httpx.Client, counts: dict[str, int]) -> dict[str, Any]:
    """The report, once its overheads count ``counts`` tasks per type (empty before)."""
    report = _profile(admin)
    found = {
        t["type"]: t["stages"]["overhead"]["count"]
        for t in report["types"]
        if "overhead" in t["stages"]
    }
    return report if found == counts else {}


def _overheads(events: list[Any]) -> dict[str, list[float]]:
    """Per type, each finished task's overhead from its events' timestamps: end to end
    (submission -> outcome) less the run (its start, reported or implied by ``ran_s``,
    -> outcome). One attempt each here."""
    submitted: dict[Any, Task.Submitted] = {}
    started: dict[Any, datetime] = {}
    out: dict[str, list[float]] = {}
    for e in events:
        if isinstance(e, Task.Submitted):
            submitted[e.originator_id] = e
        elif isinstance(e, Task.Started):
            started[e.originator_id] = e.timestamp
        elif isinstance(e, Task.Succeeded) and e.originator_id in submitted:
            s = submitted[e.originator_id]
            began = started.get(e.originator_id) or implied_start(e)
            assert began is not None
            run = e.timestamp - began
            out.setdefault(s.type, []).append(((e.timestamp - s.timestamp) - run).total_seconds())
    return out


# -- Incident Detector ------------------------------------------------------------------

WORKERS = 4
KILLED = 3
WORK_TASKS = 8  # held by the workers when three of them are killed
URGENT = 9  # above degradation.shed_below_priority: the core
LOW = 1  # below it: shed while degraded
DETECTOR = {
    "bot_lease_ttl_s": 2.0,
    "incidents": {"window_s": 10.0, "quiet_s": 3.0, "update_every_s": 1.0, "cascade_bots": 3},
    "degradation": {"calm_s": 2.0, "shed_below_priority": 5, "degraded_submissions": "shed"},
}
FRAGILE_POLICY = {"max_attempts": 2, "initial_backoff_s": 0.2, "max_backoff_s": 1.0}


def test_incident_detector(make_hive: Callable[..., Hive]) -> None:
    """**Incident Detector**, with real bot processes: three of four workers are killed
    with ``kill -9`` while they hold tasks, and another type's handler fails, within a
    minute:

    - one cascade incident opens, citing the right events: every item of its evidence is
      the event at that log position (aggregate, version, name), the killed bots'
      ``Bot.Lost`` among them, and the hive enters ``degraded`` by the policy;
    - the API keeps answering (``/healthz``, reads, each answer saying the mode);
      high-priority tasks still complete, on the remaining worker and newly started ones;
      low-priority submissions are shed (503 with ``Retry-After``, nothing written);
    - once bots are back and failures stop, the incident resolves by itself and the mode
      returns to normal;
    - no task is lost or held twice: every task accepted ends, and the log never shows a
      task assigned while another bot held it.
    """
    hive = make_hive(APIARY_BOT_LEASE_TTL_S="2", APIARY_HEARTBEAT_INTERVAL_S="0.5").start()
    admin = hive.client(hive.admin_key())
    client = hive.client(hive.key("client"))
    enrol = hive.key("bot")
    bots: dict[str, Bot] = {}
    try:
        _configure_detector(admin)

        def bot(name: str, capability: str, command: str) -> None:
            bots[name] = start_bot(
                hive, enrol, name, "--capabilities", capability, "--exec", command,
                "--max-concurrency", "2",
            )  # fmt: skip

        slow = f"{sys.executable} -c 'import time; time.sleep(1.5)'"
        for n in range(WORKERS):
            bot(f"worker-{n}", "work", slow)
        bot("fragile-1", "fragile", "false")  # exit 1: a failure, retried, then dead
        names = [f"worker-{n}" for n in range(WORKERS)]
        ids = wait_for(lambda: _bot_ids(admin, [*names, "fragile-1"]), timeout=60, what="bots")

        work = [_submit_at(client, "work", URGENT) for _ in range(WORK_TASKS)]
        wait_for(
            lambda: len(_in_state(admin, work, "running")) >= KILLED * 2,
            timeout=30,
            what="the workers running tasks",
        )
        fragile = [_submit_at(client, "fragile", URGENT) for _ in range(3)]
        killed = names[:KILLED]
        for name in killed:
            bots[name].kill9()
        t_kill = time.monotonic()

        cascade = wait_for(
            lambda: _open_incident(admin, "cascade"), timeout=30, what="a cascade incident"
        )
        assert (cascade["subject"], cascade["severity"]) == ("hive", "critical"), cascade
        t_open = time.monotonic()
        mode = wait_for(lambda: _mode_is(admin, "degraded"), timeout=15, what="degraded")
        t_degraded = time.monotonic()
        assert mode["set_by"] == "policy" and cascade["id"] in json.dumps(mode["incidents"]), mode

        # Degraded: the API answers, the core works, low priority is shed.
        health = client.get("/healthz")
        assert health.status_code == 200 and health.headers["X-Apiary-Mode"] == "degraded"
        shed = client.post("/v1/tasks", json={"type": "work", "payload": {}, "priority": LOW})
        assert shed.status_code == 503, shed.text
        assert shed.headers["content-type"] == PROBLEM and int(shed.headers["Retry-After"]) > 0
        for n in range(2):
            bot(f"worker-new-{n}", "work", slow)
        urgent = [_submit_at(client, "work", URGENT) for _ in range(4)]
        done = wait_for(
            lambda: _all_in(admin, [*work, *urgent], "succeeded"),
            timeout=60,
            what="every work task, the killed bots' too, to succeed",
        )
        started = ["worker-new-0", "worker-new-1"]
        new = set(wait_for(lambda: _bot_ids(admin, started), timeout=30, what="new").values())
        alive = {ids["worker-3"], *new}
        assert {t["bot_id"] for t in done if t["id"] in urgent} <= alive

        # Failures stop (the fragile tasks are dead letters), bots are back: it resolves.
        wait_for(lambda: _all_in(admin, fragile, "dead"), timeout=30, what="fragile tasks dead")
        resolved = wait_for(
            lambda: _incident_resolved(admin, cascade["id"]), timeout=60, what="resolved"
        )
        assert resolved["resolved_by"].startswith("engine:"), resolved
        t_resolved = time.monotonic()
        wait_for(lambda: _mode_is(admin, "normal"), timeout=30, what="the mode back to normal")
        print(
            f"incidents: kill -9 -> cascade seen {t_open - t_kill:.1f} s (lease 2 s), "
            f"-> degraded seen {t_degraded - t_open:.2f} s; evidence "
            f"{len(cascade['evidence'])} events; resolved {t_resolved - t_open:.1f} s after "
            f"opening, normal {time.monotonic() - t_resolved:.1f} s after that"
        )
        again = client.post("/v1/tasks", json={"type": "work", "payload": {}, "priority": LOW})
        assert again.status_code == 201, again.text
        wait_for(lambda: _all_in(admin, [again.json()["id"]], "succeeded"), timeout=30)

        # The evidence is the log's, and nothing was lost or held twice.
        events = log_events(hive.db_url)
        assert not [e for e in events if e.request_id == shed.headers["X-Request-ID"]]
        lost = {ids[name] for name in killed}
        _check_evidence(hive, cascade, lost, whole=False)  # as it opened: what had tripped it
        final = admin.get(f"/v1/incidents/{cascade['id']}").json()  # updated as it went on
        _check_evidence(hive, final, lost, whole=True)
        cascades = [e for e in events if isinstance(e, Incident.Opened) and e.rule == "cascade"]
        assert len(cascades) == 1, "one cascade incident for the one cascade"
        assert double_holds(events) == []
        final = (Task.Succeeded, Task.Failed, Task.DeadLettered, Task.Cancelled)
        submitted = {e.originator_id for e in events if isinstance(e, Task.Submitted)}
        ended = {e.originator_id for e in events if isinstance(e, final)}
        assert submitted == ended, "every task accepted ended"
    finally:
        admin.close()
        client.close()
        for b in bots.values():
            if b.proc.poll() is None:
                b.kill9()


def _configure_detector(admin: httpx.Client) -> None:
    current = admin.get("/v1/config")
    document = current.json()["document"]
    changes: dict[str, Any] = {
        **DETECTOR,
        "incidents": {**document["incidents"], **DETECTOR["incidents"]},  # type: ignore[dict-item]
        "degradation": {**document["degradation"], **DETECTOR["degradation"]},  # type: ignore[dict-item]
        "retry": {**document["retry"], "types": {"fragile": FRAGILE_POLICY}},
        "breaker": {**document["breaker"], "enabled": False},  # failures stay the detector's
    }
    answer = admin.patch(
        "/v1/config",
        json={"changes": changes, "reason": "the incident detector's scenario"},
        headers={"If-Match": current.headers["ETag"]},
    )
    assert answer.status_code == 200, answer.text


def _submit_at(client: httpx.Client, task_type: str, priority: int) -> str:
    answer = client.post("/v1/tasks", json={"type": task_type, "payload": {}, "priority": priority})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _bot_ids(reader: httpx.Client, names: list[str]) -> dict[str, str] | None:
    items = reader.get("/v1/bots", params={"limit": 100}).json()["items"]
    found = {b["name"]: b["id"] for b in items if b["state"] != "lost"}
    return {n: found[n] for n in names} if set(names) <= set(found) else None


def _open_incident(reader: httpx.Client, rule: str) -> dict[str, Any] | None:
    items = reader.get("/v1/incidents", params={"rule": rule, "state": "open"}).json()["items"]
    return reader.get(f"/v1/incidents/{items[0]['id']}").json() if items else None


def _incident_resolved(reader: httpx.Client, incident_id: str) -> dict[str, Any] | None:
    found = reader.get(f"/v1/incidents/{incident_id}").json()
    return found if found["state"] == "resolved" else None


def _mode_is(reader: httpx.Client, mode: str) -> dict[str, Any] | None:
    found = reader.get("/v1/mode")
    assert found.status_code == 200, found.text
    return found.json() if found.json()["mode"] == mode else None


def _all_in(reader: httpx.Client, task_ids: list[str], state: str) -> list[dict[str, Any]] | None:
    answers = [reader.get(f"/v1/tasks/{t}") for t in task_ids]
    if any(a.status_code != 200 for a in answers):
        return None  # not in the tasks view yet
    found = [a.json() for a in answers]
    return found if all(t["state"] == state for t in found) else None


def _check_evidence(hive: Hive, incident: dict[str, Any], killed: set[str], whole: bool) -> None:
    """Every item of the evidence names the event at its position; the losses it cites are
    the killed bots' (all of them once the incident has been updated: ``whole``)."""
    log = open_hive(hive.db_url, Settings())
    try:
        for item in incident["evidence"]:
            [stored] = log.recorder.select_notifications(item["position"], 1)
            assert stored.id == item["position"], item
            assert (str(stored.originator_id), stored.originator_version) == (
                item["aggregate_id"],
                item["version"],
            ), item
            assert stored.topic.endswith(":" + item["event"]), (stored.topic, item)
    finally:
        log.close()
    lost = {e["bot_id"] for e in incident["evidence"] if e["event"] == "Bot.Lost"}
    assert (lost == killed) if whole else (lost and lost <= killed), (lost, killed)
