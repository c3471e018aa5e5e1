"""The messages endpoints (docs/http-api.md), through ``create_app`` with a real Hive."""

from __future__ import annotations

from typing import Any

from tests.unit.test_api_contract import World, assert_problem, register


def send(world: World, who: str, **body: Any) -> dict[str, Any]:
    response = world.client.post("/v1/messages", json=body, headers=world.auth(who))
    assert response.status_code == 201, response.text
    sent: dict[str, Any] = response.json()
    return sent


def claim(world: World, bot: str, bot_id: str, **body: Any) -> list[dict[str, Any]]:
    response = world.client.post(
        f"/v1/bots/{bot_id}/messages/claim", json=body, headers=world.auth(bot)
    )
    assert response.status_code == 200, response.text
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


def test_a_bot_sends_to_a_bot_which_claims_acks_and_the_history_shows_it(world: World) -> None:
    a, _ = register(world, "a")
    b, _ = register(world, "b")
    sent = send(world, "a", to_bot=b, body={"q": "hello"}, conversation="c1")
    [message] = sent["items"]
    assert message["sender"] == f"bot:{a}" and message["state"] == "routed"
    [got] = claim(world, "b", b)
    assert (got["body"], got["attempt"], got["seq"]) == ({"q": "hello"}, 1, 1)
    assert claim(world, "b", b) == []  # in flight
    ack = {"messages": [{"message_id": got["id"], "attempt": 1}]}
    response = world.client.post(f"/v1/bots/{b}/messages/ack", json=ack, headers=world.auth("b"))
    assert response.status_code == 200, response.text
    read = world.client.get(f"/v1/messages/{got['id']}", headers=world.auth("client")).json()
    assert read["state"] == "acknowledged"
    assert [h["type"] for h in read["history"]] == ["Sent", "Routed", "Delivered", "Acknowledged"]


def test_a_stale_ack_is_409_and_anothers_claim_is_403(world: World) -> None:
    b, _ = register(world, "b")
    register(world, "c")
    [m] = send(world, "client", to_bot=b, body=1)["items"]
    claim(world, "b", b)
    ack = {"messages": [{"message_id": m["id"], "attempt": 2}]}
    response = world.client.post(f"/v1/bots/{b}/messages/ack", json=ack, headers=world.auth("b"))
    assert_problem(response, 409, "stale-delivery")
    response = world.client.post(f"/v1/bots/{b}/messages/claim", json={}, headers=world.auth("c"))
    assert_problem(response, 403, "forbidden")
    response = world.client.get(f"/v1/messages/{m['id']}", headers=world.auth("c"))
    assert_problem(response, 404, "not-found")  # not c's business


def test_sending_is_validated_like_tasks(world: World) -> None:
    b, _ = register(world, "b")
    for body in (
        {"body": 1},
        {"to_bot": b, "to_capability": "code", "body": 1},
        {"to_capability": "code", "body": 1, "ttl_s": 0},
        {"to_capability": "code", "body": 1, "conversation": "Not A Name"},
    ):
        response = world.client.post("/v1/messages", json=body, headers=world.auth("client"))
        assert_problem(
            response, 422, "invalid-input" if "conversation" in body else "validation-failed"
        )
    big = {"to_bot": b, "body": "x" * 2000}
    response = world.client.post("/v1/messages", json=big, headers=world.auth("client"))
    assert_problem(response, 413, "payload-too-large")
    response = world.client.post(
        "/v1/messages", json={"to_pool": "empty", "body": 1}, headers=world.auth("client")
    )
    assert_problem(response, 409, "undeliverable")
    response = world.client.post(
        "/v1/messages", json={"to_bot": b, "body": 1}, headers=world.auth("enrol")
    )
    assert_problem(response, 403, "forbidden")


def test_a_bot_that_does_not_take_messages_says_so_and_is_sent_none(world: World) -> None:
    response = world.client.post(
        "/v1/bots",
        json={
            "name": "deaf",
            "capabilities": ["code"],
            "max_concurrency": 1,
            "version": "1",
            "takes_messages": False,
        },
        headers=world.auth("enrol"),
    )
    assert response.status_code == 201, response.text
    deaf = response.json()["bot_id"]
    reader, _ = register(world, "reader")
    listed = world.client.get("/v1/bots", headers=world.auth("admin")).json()["items"]
    assert {b["id"]: b["takes_messages"] for b in listed} == {deaf: False, reader: True}
    response = world.client.post(
        "/v1/messages", json={"to_bot": deaf, "body": 1}, headers=world.auth("client")
    )
    assert_problem(response, 409, "undeliverable")
    [m] = send(world, "client", to_capability="code", body=1)["items"]
    assert m["bot_id"] == reader
    response = world.client.post(
        "/v1/bots",
        json={
            "name": "x",
            "capabilities": ["code"],
            "max_concurrency": 1,
            "version": "1",
            "takes_messages": "yes",
        },
        headers=world.auth("enrol"),
    )
    assert_problem(response, 422, "validation-failed")
