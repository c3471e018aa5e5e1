"""GET /v1/bots and GET /v1/bots/{id} over the fleet view on PostgreSQL: live bots by
default, filters, keyset pages, unknown parameters refused (issue 11, finding 12; a
restart never shows a bot twice, item 9)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.bootstrap import Node
from domain.cause import Cause
from domain.keys import Role
from tests.integration.helpers import StartNode, view_caught_up

OPERATOR = Cause("operator", "req")
PROBLEM = "application/problem+json"


@pytest.fixture
def node(start_node: StartNode) -> Node:
    """On the wall clock (registration order), with a lease of 60 s: within a test the
    reaper marks no bot lost (a state changes only when the test says so)."""
    return start_node(real_time=True, bot_lease_ttl_s=60.0)


@pytest.fixture
def api(node: Node) -> Iterator[TestClient]:
    key = node.hive.keys.issue("alice", Role.CLIENT, OPERATOR).token
    with TestClient(create_app(node.container())) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        yield client


def register(node: Node, name: str, caps: list[str], *, pool: str | None = None) -> UUID:
    bot, _, _ = node.hive.fleet.register(
        name=name,
        capabilities=caps,
        max_concurrency=2,
        version_label="v1",
        cause=OPERATOR,
        pool=pool,
    )
    node.liveness.renew(bot.id, 60)  # it heartbeats
    return bot.id


def names(api: TestClient, **params: Any) -> list[str]:
    response = api.get("/v1/bots", params=params)
    assert response.status_code == 200, response.text
    return [b["name"] for b in response.json()["items"]]


def test_the_default_list_is_the_live_bots_and_state_asks_for_the_others(
    node: Node, api: TestClient
) -> None:
    _, draining, quarantined, lost, gone = (
        register(node, n, ["code"]) for n in ("ready", "draining", "quarantined", "lost", "gone")
    )
    node.hive.fleet.drain([draining], "scale down", OPERATOR)
    node.hive.fleet.quarantine(quarantined, "flaky", OPERATOR)
    node.hive.fleet.lose(lost, [], "heartbeat lease expired", OPERATOR)
    node.hive.fleet.deregister(gone, OPERATOR)
    view_caught_up(node, "fleet")

    assert names(api) == ["ready", "draining", "quarantined"]
    assert names(api, state="live") == names(api)
    assert names(api, state="lost") == ["lost"]
    assert names(api, state="deregistered") == ["gone"]
    assert names(api, state="draining") == ["draining"]
    assert names(api, state="all") == ["ready", "draining", "quarantined", "lost", "gone"]
    [shown] = api.get("/v1/bots", params={"state": "quarantined"}).json()["items"]
    assert (shown["id"], shown["state_reason"]) == (str(quarantined), "flaky")


def test_a_restart_never_shows_a_bot_twice(node: Node, api: TestClient) -> None:
    """A hive killed with -9 takes its demo bots with it: they never deregister, and stay
    ready in the log until the new hive's reaper finds their leases lapsed. Meanwhile the new
    hive's demo bots register under the same names: the default list shows each once."""
    before = [register(node, f"demo-{i}", ["code"]) for i in (1, 2, 3)]
    for bot in before:
        node.liveness.forget(bot)  # no heartbeat since the kill: no current lease
    after = [register(node, f"demo-{i}", ["code"]) for i in (1, 2, 3)]
    view_caught_up(node, "fleet")

    listed = api.get("/v1/bots").json()["items"]
    assert [(b["name"], b["id"]) for b in listed] == [
        (f"demo-{i}", str(bot)) for i, bot in zip((1, 2, 3), after, strict=True)
    ]
    assert len(names(api, state="ready")) == 6  # the log's states, for who asks


def test_filters_by_capability_pool_and_name(node: Node, api: TestClient) -> None:
    register(node, "coder", ["code"])
    register(node, "writer", ["writing"], pool="docs")
    register(node, "both", ["code", "writing"], pool="docs")
    view_caught_up(node, "fleet")

    assert names(api, capability="code") == ["coder", "both"]
    assert names(api, capability="writing", pool="docs") == ["writer", "both"]
    assert names(api, pool="docs", name="both") == ["both"]
    assert names(api, name="nobody") == []


def test_pages_follow_registration_order_with_a_cursor(node: Node, api: TestClient) -> None:
    made = [register(node, f"bot-{i}", ["code"]) for i in range(5)]
    view_caught_up(node, "fleet")

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/bots", params=params).json()
        seen += [b["id"] for b in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [str(b) for b in made] and pages == 3


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"states": "lost"}, ["query", "states"]),  # unknown, like /v1/tasks
        ({"state": "asleep"}, ["query", "state"]),
        ({"limit": 0}, ["query", "limit"]),
        ({"cursor": "s12"}, ["query", "cursor"]),
        ({"cursor": "r12.not-a-uuid"}, ["query", "cursor"]),
        ({"capability": "Not A Name"}, ["query", "capability"]),
        ({"name": "x\x00"}, ["query"]),
    ],
)
def test_unknown_or_bad_query_parameters_are_422(
    api: TestClient, params: dict[str, Any], loc: list[str]
) -> None:
    response = api.get("/v1/bots", params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["errors"][0]["loc"][: len(loc)] == loc


def test_one_bot_by_id_and_404_for_an_unknown_one(node: Node, api: TestClient) -> None:
    bot = register(node, "solo", ["code", "analysis"], pool="main")
    node.hive.fleet.deregister(bot, OPERATOR)
    view_caught_up(node, "fleet")

    shown = api.get(f"/v1/bots/{bot}")
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert (body["id"], body["name"], body["pool"]) == (str(bot), "solo", "main")
    assert body["state"] == "deregistered" and body["deregistered_at"] is not None
    assert body["capabilities"] == ["analysis", "code"]

    missing = api.get(f"/v1/bots/{uuid4()}")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    assert missing.json()["type"].endswith("/not-found")
    assert api.get("/v1/bots/not-a-uuid").status_code == 422
