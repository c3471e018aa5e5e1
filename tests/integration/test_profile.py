"""The bottleneck report on real PostgreSQL: a pool capped at one bot makes its tasks
queue, and ``GET /v1/profile`` says so first, with the numbers; its stages per type, pool
and bot come from the stages view's window, on an injected clock."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.bootstrap import Node
from domain.cause import Cause
from domain.hive import Report, TaskSpec
from domain.keys import Role
from projections.histogram import bucket_of, bucket_range
from tests.clock import FakeClock
from tests.integration.helpers import StartNode, change_config, held, view_caught_up
from tests.waiting import wait_for

ALICE = Cause("alice", "req")


@pytest.fixture
def node(start_node: StartNode) -> Node:
    return start_node(bot_lease_ttl_s=600.0)


def test_a_capped_pool_s_queue_is_the_top_finding(node: Node, clock: FakeClock) -> None:
    """Nine code tasks for a pool of one bot of one slot: each waits for the one before
    (run 2 s, picked up in 0.1 s); six run, three still wait. Ten ping tasks run at once."""
    change_config(node, ALICE, pools=[{"name": "coders", "capabilities": ["code"], "max_bots": 1}])
    coder, _, _ = node.hive.fleet.register(
        name="coder",
        capabilities=["code"],
        max_concurrency=1,
        version_label="v1",
        cause=ALICE,
        pool="coders",
    )
    pinger, _, _ = node.hive.fleet.register(
        name="pinger", capabilities=["ping"], max_concurrency=10, version_label="v1", cause=ALICE
    )
    for bot in (coder, pinger):
        node.liveness.renew(bot.id, 600)
    pings = [s.task.id for s in node.hive.tasks.submit([TaskSpec("ping")] * 10, ALICE).items]
    codes = [s.task.id for s in node.hive.tasks.submit([TaskSpec("code")] * 9, ALICE).items]
    by_pinger = Cause(f"bot:{pinger.id}", "r")
    held_pings = wait_for(lambda: held(node.hive, pings), what="the pings assigned")
    node.hive.tasks.start(pinger.id, [Report(t.id, t.fencing_token) for t in held_pings], by_pinger)
    clock.advance(0.01)
    node.hive.tasks.finish(pinger.id, [Report(t, 1, "1") for t in pings], by_pinger)
    by_coder = Cause(f"bot:{coder.id}", "r")
    for task_id in codes[:6]:
        (task,) = wait_for(lambda t=task_id: held(node.hive, [t]), what="the next code task")
        clock.advance(0.1)
        node.hive.tasks.start(coder.id, [Report(task.id, task.fencing_token)], by_coder)
        clock.advance(2.0)
        node.hive.tasks.finish(coder.id, [Report(task.id, task.fencing_token, "1")], by_coder)
    wait_for(lambda: held(node.hive, [codes[6]]), what="the seventh assigned")
    view_caught_up(node, "stages")
    view_caught_up(node, "tasks")

    key = node.hive.keys.issue("dash", Role.CLIENT, ALICE).token
    auth = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(node.container())) as client:
        assert client.get("/v1/profile").status_code == 401
        for bad in ("2h", "9s", "5", "five", "5 m"):
            refused = client.get("/v1/profile", params={"window": bad}, headers=auth)
            assert refused.status_code == 422, bad
            assert refused.headers["content-type"] == "application/problem+json"
        assert client.get("/v1/profile?window=10s", headers=auth).status_code == 200
        body = client.get("/v1/profile?window=5m", headers=auth).json()
        origin = {"Origin": "http://testserver"}
        signed = client.post("/dashboard/session", json={"key": key}, headers=origin)
        assert signed.status_code == 200, signed.text
        assert 'data-page="profile"' in client.get("/dashboard/profile?window=1h").text
        shown = client.get("/dashboard/data/profile?window=1h").json()
        assert shown["window_s"] == 3600 and shown["findings"][0]["rule"] == "queue_wait"
        assert client.get("/dashboard/data/profile?window=2h").status_code == 422

    assert body["window_s"] == 300.0
    top = body["findings"][0]
    assert top["rule"] == "queue_wait" and top["severity"] == "critical"
    # seven waits 0, 2.1, ..., 12.6 s (mean 6.3) over six ends of 7.35 s on average
    assert top["summary"] == (
        "86% of end-to-end time for type `code` is queue wait; "
        "pool coders is at max_bots=1 with 2 pending"
    )
    assert top["evidence"] | {"pending": 2} == top["evidence"]
    assert {k: top["evidence"][k] for k in ("pool", "bots", "max_bots", "at_max")} == {
        "pool": "coders",
        "bots": 1,
        "max_bots": 1,
        "at_max": True,
    }
    types = {t["type"]: t for t in body["types"]}
    assert types["code"]["pools"] == ["coders"] and types["ping"]["pools"] == []
    overhead = types["code"]["stages"]["overhead"]
    assert overhead["count"] == 6
    exact = sorted(2.1 * k + 0.11 for k in range(6))  # the wait (the pings ran 10 ms first)
    for q, field in ((0.5, "p50_s"), (0.95, "p95_s"), (0.99, "p99_s")):
        lower, upper = bucket_range(bucket_of(exact[math.ceil(q * 6) - 1]))
        assert lower <= overhead[field] <= upper
    assert overhead["sum_s"] == pytest.approx(sum(exact))
    assert types["ping"]["stages"]["start_done"]["count"] == 10
    (coders,) = body["pools"]
    assert (coders["name"], coders["bots"], coders["at_max"], coders["pending"]) == (
        "coders",
        1,
        True,
        2,
    )
    assert coders["stages"]["start_done"]["count"] == 6
    bots = {b["name"]: b for b in body["bots"]}
    assert bots["coder"]["pool"] == "coders" and bots["pinger"]["pool"] is None
    assert bots["pinger"]["stages"]["end_to_end"]["count"] == 10
    assert body["process"] == {"loops": [], "routes": [], "views": [], "pools": []}
