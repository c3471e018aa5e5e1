"""Keys on PostgreSQL: the keys view and its list, last use written beside the log, and a
revocation in force on every API process within a second (two Nodes on one database, each
serving HTTP: revoked through one, refused by the other)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.bootstrap import Node
from domain.cause import Cause
from domain.keys import Role
from tests.integration.helpers import StartNode, view_caught_up
from tests.waiting import wait_for

ROOT = Cause("root", "req-1")


@pytest.fixture
def clients() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def serve(stack: ExitStack, node: Node) -> TestClient:
    return stack.enter_context(TestClient(create_app(node.container())))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_key_revoked_through_one_api_process_is_refused_by_another_within_a_second(
    start_node: StartNode, clients: ExitStack
) -> None:
    engine = start_node(real_time=True)  # role all: views, loops and HTTP
    other = start_node(real_time=True, role="api")
    admin = engine.hive.keys.issue("root", Role.ADMIN, ROOT).token
    one, two = serve(clients, engine), serve(clients, other)
    victim = one.post("/v1/keys", json={"role": "client", "name": "victim"}, headers=bearer(admin))
    assert victim.status_code == 201, victim.text
    token, key_id = victim.json()["token"], victim.json()["id"]
    for client in (one, two):  # both processes have it cached now (for 5 s)
        assert client.get("/v1/tasks", headers=bearer(token)).status_code == 200

    revoked = two.post(f"/v1/keys/{key_id}/revoke", headers=bearer(admin))
    assert revoked.status_code == 200, revoked.text
    at = time.monotonic()
    assert two.get("/v1/tasks", headers=bearer(token)).status_code == 401  # its own write
    wait_for(
        lambda: one.get("/v1/tasks", headers=bearer(token)).status_code == 401,
        timeout=1.0,
        what="the other process to refuse the revoked key",
    )
    print(f"revoked on one process -> refused on the other: {time.monotonic() - at:.3f} s")


def test_a_rotated_key_is_refused_by_every_process_within_a_second(
    start_node: StartNode, clients: ExitStack
) -> None:
    engine = start_node(real_time=True)
    other = start_node(real_time=True, role="api")
    admin = engine.hive.keys.issue("root", Role.ADMIN, ROOT).token
    old = engine.hive.keys.issue("deploy", Role.CLIENT, ROOT)
    one, two = serve(clients, engine), serve(clients, other)
    for client in (one, two):
        assert client.get("/v1/tasks", headers=bearer(old.token)).status_code == 200
    rotated = one.post(f"/v1/keys/{old.key.id}/rotate", headers=bearer(admin))
    assert rotated.status_code == 201, rotated.text
    wait_for(
        lambda: two.get("/v1/tasks", headers=bearer(old.token)).status_code == 401,
        timeout=1.0,
        what="the other process to refuse the rotated key",
    )
    assert two.get("/v1/tasks", headers=bearer(rotated.json()["token"])).status_code == 200


def test_the_list_reads_the_keys_view_with_each_keys_last_use(
    start_node: StartNode, clients: ExitStack
) -> None:
    node = start_node(real_time=True)
    admin = node.hive.keys.issue("root", Role.ADMIN, ROOT).token
    client = serve(clients, node)
    made = [
        client.post("/v1/keys", json={"role": "client", "name": f"k{i}"}, headers=bearer(admin))
        for i in range(3)
    ]
    unused, used = made[0].json(), made[1].json()
    client.post(f"/v1/keys/{made[2].json()['id']}/revoke", headers=bearer(admin))
    node.hive.fleet.register(
        name="builder", capabilities=["code"], max_concurrency=1, version_label="1", cause=ROOT
    )
    assert client.get("/v1/tasks", headers=bearer(used["token"])).status_code == 200
    node.key_uses.write()  # what the process writes every few seconds, now
    view_caught_up(node, "keys")

    listed = client.get("/v1/keys", headers=bearer(admin)).json()["items"]
    assert [(k["name"], k["role"], k["bot_id"] is not None) for k in listed] == [
        ("root", "admin", False),
        ("k0", "client", False),
        ("k1", "client", False),
        ("builder", "bot", True),
    ]
    last_use = {k["name"]: k["last_used_at"] for k in listed}
    assert last_use["k1"] is not None and last_use["root"] is not None
    assert last_use["k0"] is None
    shown = client.get(f"/v1/keys/{used['id']}", headers=bearer(admin)).json()
    assert shown["last_used_at"] == last_use["k1"]
    everything = client.get("/v1/keys?include_revoked=true", headers=bearer(admin)).json()
    revoked = [k for k in everything["items"] if k["name"] == "k2"]
    assert revoked[0]["state"] == "revoked" and revoked[0]["revoked_by"] == "root"
    assert unused["id"] in {k["id"] for k in listed}
    assert "secret" not in str(everything) and "hash" not in str(everything)
    page = client.get("/v1/keys?limit=2", headers=bearer(admin)).json()
    after = client.get(f"/v1/keys?limit=2&cursor={page['next_cursor']}", headers=bearer(admin))
    assert [k["name"] for k in page["items"] + after.json()["items"]] == [k["name"] for k in listed]
    assert UUID(listed[3]["bot_id"])
