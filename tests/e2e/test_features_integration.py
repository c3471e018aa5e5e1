"""Features working together, on real PostgreSQL, a real server and real bot processes.

Orchestration + Scaling: a backlog of mixed task types makes the autoscaler launch bots of
the right pools, the tasks spread across them, and the fleet shrinks back to its minimum.
Scaling + Scheduling: a schedule's tasks run on bots the autoscaler launched for them.
Orchestration + Messaging: messages to a capability, a pool, a bot, and relayed by a task,
reach the right bots through the hive. Scheduling + Dashboard: the dashboard shows a
schedule's runs and their stage metrics. The whole workflow: submit -> orchestrate ->
scale -> message -> schedule, and the dashboard shows every status.
Every scenario runs under concurrent clients and checks the whole log afterwards: no task
was ever held by two bots at once, no message delivered to two recipients or out of its
conversation's order; and the dashboard's numbers equal those of views rebuilt from zero.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import httpx
import pytest

from api.bootstrap import rebuild_views
from api.settings import Settings
from domain.bots import Bot
from tests.e2e.harness import Hive, signed_in
from tests.integration.log_checks import (
    double_deliveries,
    double_holds,
    every_second_schedule,
    fired_ticks,
    log_end,
    log_events,
    out_of_order,
    pools_of_bots,
    tick_faults,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

POOLS = [
    {
        "name": "coders",
        "capabilities": ["code"],
        "min_bots": 0,
        "max_bots": 2,
        "max_concurrency": 4,
        "up_cooldown_s": 0,
        "down_cooldown_s": 1,
    },
    {
        "name": "writers",
        "capabilities": ["writing", "analysis"],
        "min_bots": 1,
        "max_bots": 2,
        "max_concurrency": 4,
        "up_cooldown_s": 0,
        "down_cooldown_s": 1,
    },
]


@pytest.fixture
def scaled_hive(make_hive: Callable[..., Hive]) -> Hive:
    return make_hive(APIARY_POOLS=json.dumps(POOLS), APIARY_SCALER_INTERVAL_S="0.2")


def submit_concurrently(
    client_token: str, url: str, specs: list[dict[str, Any]], submitters: int
) -> list[str]:
    """Submit ``specs`` from ``submitters`` threads in batches; return every task id."""
    ids: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def submit(part: list[dict[str, Any]]) -> None:
        try:
            with httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {client_token}"}, timeout=30
            ) as c:
                for i in range(0, len(part), 25):
                    r = c.post("/v1/tasks/batch", json={"tasks": part[i : i + 25]})
                    assert r.status_code == 201, r.text
                    with lock:
                        ids.extend(t["task"]["id"] for t in r.json()["items"])
        except BaseException as e:
            errors.append(e)

    threads = [
        threading.Thread(target=submit, args=(specs[n::submitters],)) for n in range(submitters)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[0]
    return ids


def pool_bots(client: httpx.Client) -> dict[str, dict[str, int]]:
    return {p["name"]: p["bots"] for p in client.get("/v1/pools").json()["items"]}


def states(client: httpx.Client, ids: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/tasks", params=params).json()
        out.update({t["id"]: t for t in page["items"]})
        cursor = page.get("next_cursor")
        if not cursor:
            return {i: out[i] for i in ids if i in out}


def test_orchestration_and_scaling_launch_the_right_pools_and_shrink_back(
    scaled_hive: Hive,
) -> None:
    hive = scaled_hive.start()
    client = hive.client(hive.key("client"))
    wait_for(
        lambda: pool_bots(client)["writers"].get("ready") == 1,
        timeout=30,
        what="the writers pool at its minimum of one bot",
    )
    assert pool_bots(client)["coders"] == {}

    specs = [
        {"type": "code", "payload": {"source": f"def f{i}(x):\n    return x\n"}}
        if i % 2
        else {"type": "writing", "payload": {"text": f"Task {i} is short.", "style": "summary"}}
        for i in range(400)
    ]
    ids = submit_concurrently(hive.key("client"), hive.url, specs, submitters=4)
    assert len(set(ids)) == 400

    done = wait_for(
        lambda: (
            (s := states(client, ids))
            and len(s) == 400
            and all(t["state"] in ("succeeded", "failed") for t in s.values())
            and s
        ),
        timeout=90,
        what="all 400 tasks finished",
    )
    assert [t for t in done.values() if t["state"] != "succeeded"] == []
    events = log_events(hive.db_url)
    pools = pools_of_bots(events)
    by_pool: dict[str | None, set[str]] = {}
    for t in done.values():
        pool = pools[UUID(t["bot_id"])]
        assert pool == ("coders" if t["type"] == "code" else "writers"), t
        by_pool.setdefault(pool, set()).add(t["bot_id"])
    assert by_pool["coders"], "the autoscaler launched coders for the code backlog"
    assert double_holds(events) == []

    wait_for(
        lambda: (b := pool_bots(client))["coders"] == {} and b["writers"] == {"ready": 1},
        timeout=60,
        what="the fleet back at its minimum (no coders, one writer)",
    )
    launches = wait_for(
        lambda: (
            (ls := client.get("/v1/pools/coders/launches").json()["items"])
            and all(lx["state"] in ("stopped", "failed") for lx in ls)
            and ls
        ),
        timeout=30,
        what="every coders launch closed",
    )
    assert [(lx["state"], lx["exit_code"]) for lx in launches] == [("stopped", 0)] * len(
        launches
    ), launches  # each drained, was stopped, deregistered and exited cleanly
    assert all(lx["bot_id"] for lx in launches)


def test_scheduled_tasks_run_on_bots_the_autoscaler_launched(scaled_hive: Hive) -> None:
    hive = scaled_hive.start()
    admin = hive.client(hive.key("admin"))
    template = {"type": "code", "payload": {"source": "x = 1\n"}}
    created = admin.post("/v1/schedules", json=every_second_schedule("nightly-lint", template))
    assert created.status_code == 201, created.text
    schedule_id = created.json()["id"]
    extra = [{"type": "code", "payload": {"source": f"y{i} = {i}\n"}} for i in range(200)]
    submitted = submit_concurrently(hive.key("client"), hive.url, extra, submitters=4)

    def scheduled_done() -> list[dict[str, Any]]:
        page = admin.get("/v1/tasks", params={"schedule_id": schedule_id, "limit": 500}).json()
        done = [t for t in page["items"] if t["state"] == "succeeded"]
        return done if len(done) >= 5 else []

    runs = wait_for(scheduled_done, timeout=60, what="five scheduled runs done")
    wait_for(
        lambda: all_succeeded(states(admin, submitted).values()),
        timeout=60,
        what="the submitted tasks done",
    )
    events = log_events(hive.db_url)
    launched = {e.originator_id for e in events if isinstance(e, Bot.Registered) and e.launch_id}
    assert all(UUID(t["bot_id"]) in launched for t in runs), "ran on a launched coder"
    assert tick_faults(fired_ticks(events), every_s=1) == []
    assert double_holds(events) == []


# -- Orchestration + Messaging, Scheduling + Dashboard, and the whole workflow -----------

MESSAGING_POOLS = [
    {**POOLS[0], "messages": True},
    {
        "name": "writers",
        "capabilities": ["writing", "analysis", "message"],  # they relay `message` tasks
        "min_bots": 2,
        "max_bots": 2,
        "max_concurrency": 4,
        "messages": True,
    },
]


@pytest.fixture
def messaging_hive(make_hive: Callable[..., Hive]) -> Hive:
    return make_hive(APIARY_POOLS=json.dumps(MESSAGING_POOLS), APIARY_SCALER_INTERVAL_S="0.2")


def in_parallel(clients: int, work: Callable[[int], None]) -> None:
    """Run ``work(n)`` for n in 0..clients-1 on threads of their own; any failure fails
    the caller, and every thread must end within the deadline (no deadlock)."""
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            work(n)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a client is still waiting after 120 s"
    assert not errors, errors[0]


def send(http: httpx.Client, **message: Any) -> list[dict[str, Any]]:
    r = http.post("/v1/messages", json=message)
    assert r.status_code == 201, r.text
    return list(r.json()["items"])


def conversation(http: httpx.Client, name: str) -> list[dict[str, Any]]:
    r = http.get("/v1/messages", params={"conversation": name, "limit": 500})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def acknowledged(http: httpx.Client, names: list[str], count: int) -> list[dict[str, Any]]:
    """Every message of the conversations, once ``count`` of them are all acknowledged."""
    found = [m for name in names for m in conversation(http, name)]
    done = len(found) == count and all(m["state"] == "acknowledged" for m in found)
    return found if done else []


def bots_by_pool(http: httpx.Client) -> dict[str, set[str]]:
    pools: dict[str, set[str]] = {}
    for b in http.get("/v1/bots").json()["items"]:
        if b["state"] == "ready":
            pools.setdefault(b["pool"], set()).add(b["id"])
    return pools


def test_messages_route_through_the_hive_to_the_right_bots(messaging_hive: Hive) -> None:
    hive = messaging_hive.start()
    client_key = hive.key("client")
    client = hive.client(client_key)
    writers = wait_for(
        lambda: w if len(w := bots_by_pool(client).get("writers", set())) == 2 else None,
        timeout=30,
        what="the two writers",
    )
    one_writer = sorted(writers)[0]
    relays: list[str] = []

    def chatter(n: int) -> None:  # one client: every kind of address, and a relay task
        with hive.client(client_key) as http:
            for i in range(5):
                send(http, to_capability="analysis", body={"i": i}, conversation=f"cap-{n}")
                send(http, to_pool="writers", body={"i": i}, conversation=f"pool-{n}")
                send(http, to_bot=one_writer, body={"i": i}, conversation=f"bot-{n}")
            relay = {"to_capability": "writing", "body": {"n": n}, "conversation": f"relay-{n}"}
            r = http.post("/v1/tasks", json={"type": "message", "payload": relay})
            assert r.status_code == 201, r.text
            relays.append(r.json()["id"])

    in_parallel(4, chatter)
    kinds = ("cap", "pool", "bot", "relay")
    names = [f"{kind}-{n}" for kind in kinds for n in range(4)]
    # 5 per capability/bot conversation, 5 x 2 copies per pool one, 1 per relay
    found = wait_for(
        lambda: acknowledged(client, names, 4 * (5 + 10 + 5 + 1)),
        timeout=60,
        what="every message acknowledged",
    )
    by_kind: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    for m in found:
        by_kind[m["conversation"].split("-")[0]].append(m)
    assert all(m["bot_id"] in writers for m in by_kind["cap"])  # a capable bot, by the hive
    assert {m["bot_id"] for m in by_kind["bot"]} == {one_writer}
    for n in range(4):  # every writer got each pool message once
        pool = [m for m in by_kind["pool"] if m["conversation"] == f"pool-{n}"]
        copies = [(m["body"]["i"], m["bot_id"]) for m in pool]
        assert sorted(copies) == sorted((i, w) for i in range(5) for w in writers)
    relayed = states(client, relays)
    assert len(relayed) == 4 and all_succeeded(relayed.values()), relayed
    assert {m["sender"] for m in by_kind["relay"]} <= {f"bot:{w}" for w in writers}

    events = log_events(hive.db_url)
    assert double_deliveries(events) == []
    assert out_of_order(events) == []
    assert double_holds(events) == []


class Dashboard:
    """What the dashboard shows, read as its pages read it: signed in with a key's cookie."""

    PAGES = ("overview", "bots", "schedules", "messages")

    def __init__(self, hive: Hive, key: str) -> None:
        self.hive = hive
        self.http = signed_in(hive.url, key, timeout=30)

    def data(self, page: str) -> dict[str, Any]:
        r = self.http.get(f"/dashboard/data/{page}")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def settled(self) -> dict[str, Any]:
        """Every page's numbers, once every view has applied the whole log (the log must
        not move meanwhile). Health checks and the processes are live state, not views:
        left out."""

        def read() -> dict[str, Any] | None:
            end = log_end(self.hive.db_url)
            shown = {page: self.data(page) for page in self.PAGES}
            positions = shown["overview"].pop("positions")
            shown["overview"].pop("checks")
            shown["overview"].pop("processes")
            caught_up = set(positions.values()) == {end} and log_end(self.hive.db_url) == end
            return shown if caught_up else None

        return wait_for(read, timeout=60, what="every view at the end of a still log")

    def equals_a_rebuild(self) -> None:
        """The dashboard's numbers now equal those of every view rebuilt from zero."""
        before = self.settled()
        rebuilt = rebuild_views(self.hive.db_url, Settings())
        assert set(rebuilt.values()) == {log_end(self.hive.db_url)}, rebuilt
        assert self.settled() == before


@contextmanager
def watched(dashboard: Dashboard, readers: int = 2) -> Iterator[None]:
    """Clients that keep reading the dashboard's pages (paced, a round every 0.2 s) while
    the body runs: each read must succeed while the work goes on."""
    stop = threading.Event()

    def watch(_: int) -> None:
        while not stop.is_set():
            for page in Dashboard.PAGES:
                dashboard.data(page)
            stop.wait(0.2)

    watchers = threading.Thread(target=in_parallel, args=(readers, watch))
    watchers.start()
    try:
        yield
    finally:
        stop.set()
        watchers.join(timeout=30)
    assert not watchers.is_alive()


def schedule_runs(http: httpx.Client, schedule_id: str) -> list[dict[str, Any]]:
    page = http.get("/v1/tasks", params={"schedule_id": schedule_id, "limit": 500})
    return list(page.json()["items"])


def all_succeeded(tasks: Iterable[dict[str, Any]]) -> bool:
    return all(t["state"] == "succeeded" for t in tasks)


def pause_after(admin: httpx.Client, schedule_id: str, runs: int, others: list[str]) -> None:
    """Once ``runs`` of the schedule's runs succeeded, pause it; wait until every run and
    every one of ``others`` succeeded."""
    wait_for(
        lambda: sum(t["state"] == "succeeded" for t in schedule_runs(admin, schedule_id)) >= runs,
        timeout=60,
        what=f"{runs} scheduled runs done",
    )
    paused = admin.post(f"/v1/schedules/{schedule_id}/pause")
    assert paused.status_code == 200, paused.text
    wait_for(
        lambda: (
            all_succeeded(schedule_runs(admin, schedule_id))
            and all_succeeded(states(admin, others).values())
        ),
        timeout=90,
        what="every run and task done",
    )


def test_the_dashboard_shows_scheduled_work_and_equals_a_rebuild(scaled_hive: Hive) -> None:
    hive = scaled_hive.start()
    admin = hive.client(hive.key("admin"))
    dashboard = Dashboard(hive, hive.key("client"))
    template = {"type": "analysis", "payload": {"values": [1, 2, 3]}}
    created = admin.post("/v1/schedules", json=every_second_schedule("minutely-stats", template))
    assert created.status_code == 201, created.text
    schedule_id = created.json()["id"]
    specs = [{"type": "analysis", "payload": {"values": [i, i + 1]}} for i in range(200)]
    with watched(dashboard):
        submitted = submit_concurrently(hive.key("client"), hive.url, specs, submitters=4)
        pause_after(admin, schedule_id, 5, submitted)

    shown = dashboard.settled()
    scheduled = schedule_runs(admin, schedule_id)
    (schedule,) = shown["schedules"]["items"]
    assert schedule["id"] == schedule_id and schedule["state"] == "paused"
    assert schedule["fired"] == len(scheduled)
    assert schedule["runs"] == {"succeeded": len(scheduled)}
    total = len(scheduled) + len(submitted)
    assert shown["overview"]["tasks_by_state"] == {"succeeded": total}
    (analysis,) = shown["overview"]["stages"]["items"]
    assert analysis["type"] == "analysis"
    assert {s["count"] for s in analysis["stages"].values()} == {total}
    assert sum(m["succeeded"] for m in shown["overview"]["stages"]["minutes"]) == total
    dashboard.equals_a_rebuild()

    events = log_events(hive.db_url)
    assert tick_faults(fired_ticks(events), every_s=1) == []
    assert double_holds(events) == []


def test_the_whole_workflow_under_concurrent_clients(messaging_hive: Hive) -> None:
    """Submit -> orchestrate -> scale -> message -> schedule, from four clients at once
    while two more watch the dashboard; then the dashboard shows every status, equals a
    rebuild, and the log shows nothing held or delivered twice."""
    hive = messaging_hive.start()
    client_key, admin = hive.key("client"), hive.client(hive.key("admin"))
    client = hive.client(client_key)
    dashboard = Dashboard(hive, client_key)
    wait_for(lambda: len(bots_by_pool(client).get("writers", ())) == 2, what="two writers")
    template = {"type": "analysis", "payload": {"values": [3, 1, 2]}}
    created = admin.post("/v1/schedules", json=every_second_schedule("stats", template))
    assert created.status_code == 201, created.text
    schedule_id = created.json()["id"]
    submitted: list[str] = []

    def work(n: int) -> None:  # one client: code for the coders, and messages
        with hive.client(client_key) as http:
            code = [{"type": "code", "payload": {"source": f"v{n}_{i} = {i}\n"}} for i in range(50)]
            for i in range(0, 50, 25):
                r = http.post("/v1/tasks/batch", json={"tasks": code[i : i + 25]})
                assert r.status_code == 201, r.text
                submitted.extend(t["task"]["id"] for t in r.json()["items"])
            relay = {"to_capability": "code", "body": {"n": n}, "conversation": f"relay-{n}"}
            r = http.post("/v1/tasks", json={"type": "message", "payload": relay})
            assert r.status_code == 201, r.text
            submitted.append(r.json()["id"])
            for i in range(3):
                send(http, to_pool="writers", body={"i": i}, conversation=f"pool-{n}")
                send(http, to_capability="analysis", body={"i": i}, conversation=f"cap-{n}")

    with watched(dashboard):
        in_parallel(4, work)
        names = [f"{kind}-{n}" for kind in ("relay", "pool", "cap") for n in range(4)]
        messages = wait_for(
            lambda: acknowledged(client, names, 4 * (1 + 3 * 2 + 3)),
            timeout=90,
            what="every message acknowledged (the relays' by launched coders)",
        )
        pause_after(admin, schedule_id, 3, submitted)
        wait_for(lambda: pool_bots(client)["coders"] == {}, timeout=60, what="no coders again")

    shown = dashboard.settled()
    scheduled = schedule_runs(admin, schedule_id)
    total = len(submitted) + len(scheduled)
    assert shown["overview"]["tasks_by_state"] == {"succeeded": total}
    assert shown["overview"]["queue"] == []
    stages = {
        t["type"]: t["stages"]["end_to_end"]["count"] for t in shown["overview"]["stages"]["items"]
    }
    assert stages == {"code": 200, "message": 4, "analysis": len(scheduled)}
    assert shown["messages"] == {"by_state": {"acknowledged": len(messages)}, "dead_letters": []}
    (schedule,) = shown["schedules"]["items"]
    assert schedule["runs"] == {"succeeded": len(scheduled)} and schedule["state"] == "paused"
    assert {b["pool"] for b in shown["bots"]["items"]} == {"writers"}
    events = log_events(hive.db_url)
    pools = pools_of_bots(events)
    relays = [m for m in messages if m["conversation"].startswith("relay-")]
    assert {pools[UUID(m["bot_id"])] for m in relays} == {"coders"}  # launched to take them
    dashboard.equals_a_rebuild()

    events = log_events(hive.db_url)
    assert double_holds(events) == []
    assert double_deliveries(events) == []
    assert out_of_order(events) == []
    assert tick_faults(fired_ticks(events), every_s=1) == []
