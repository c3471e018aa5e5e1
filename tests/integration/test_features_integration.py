"""Features working together, on real PostgreSQL, a real server and real bot processes.

Orchestration + Scaling: a backlog of mixed task types makes the autoscaler launch bots of
the right pools, the tasks spread across them, and the fleet shrinks back to its minimum.
Scaling + Scheduling: a schedule's tasks run on bots the autoscaler launched for them.
Every scenario runs under concurrent submitters and checks the whole log afterwards: no
task was ever held by two bots at once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from domain.bots import Bot
from tests.e2e.harness import Hive
from tests.integration.log_checks import (
    double_holds,
    every_second_schedule,
    fired_ticks,
    log_events,
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
def scaled_hive(db_url: str, tmp_path: Path) -> Iterator[Hive]:
    h = Hive(
        db_url=db_url,
        home=tmp_path / "home",
        settings={"APIARY_POOLS": json.dumps(POOLS), "APIARY_SCALER_INTERVAL_S": "0.2"},
    )
    yield h
    h.stop()


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
        lambda: all(t["state"] == "succeeded" for t in states(admin, submitted).values()),
        timeout=60,
        what="the submitted tasks done",
    )
    events = log_events(hive.db_url)
    launched = {e.originator_id for e in events if isinstance(e, Bot.Registered) and e.launch_id}
    assert all(UUID(t["bot_id"]) in launched for t in runs), "ran on a launched coder"
    assert tick_faults(fired_ticks(events), every_s=1) == []
    assert double_holds(events) == []
