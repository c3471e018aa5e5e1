"""Two real `apiary bot` processes exchange a message through a real `apiary serve`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.harness import Hive, apiary, start_bot
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e


def test_a_bot_messages_another_by_capability_and_the_cli_sends_and_lists(hive: Hive) -> None:
    hive.start()
    enrol, client_key = hive.key("bot"), hive.key("client")
    sender = start_bot(hive, enrol, "sender", "--capabilities", "message")
    listener = start_bot(hive, enrol, "listener", "--capabilities", "listen", "--messages")
    try:
        with hive.client(client_key) as http:
            bots = wait_for(lambda: _bots(http) if len(_bots(http)) == 2 else None, what="bots")
            relay = {"to_capability": "listen", "body": {"hi": 1}, "conversation": "e2e"}
            submitted = http.post("/v1/tasks", json={"type": "message", "payload": relay})
            assert submitted.status_code == 201, submitted.text
            done = apiary(
                "message", "send", "--url", hive.url, "--to-capability", "listen",
                "--body", '{"hi": 2}', "--conversation", "e2e",
                env={**hive.env, "APIARY_KEY": client_key}, check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr

            def acknowledged() -> list[dict[str, Any]]:
                page = http.get("/v1/messages", params={"conversation": "e2e"}).json()["items"]
                ok = len(page) == 2 and all(m["state"] == "acknowledged" for m in page)
                return page if ok else []

            first, second = wait_for(acknowledged, timeout=30, what="both messages acked")
            assert first["sender"] == f"bot:{bots['sender']}" and first["body"] == {"hi": 1}
            assert second["sender"] == "client"  # the key's principal
            assert first["bot_id"] == second["bot_id"] == bots["listener"]
        listed = apiary(
            "message", "list", "--url", hive.url, "--conversation", "e2e", "--json",
            env={**hive.env, "APIARY_KEY": client_key},
        )  # fmt: skip
        assert [m["seq"] for m in json.loads(listed.stdout)["items"]] == [1, 2]
        assert "message.received" in listener.log_path.read_text()
    finally:
        assert sender.stop() == 0 and listener.stop() == 0


def _bots(http: Any) -> dict[str, str]:
    return {b["name"]: b["id"] for b in http.get("/v1/bots").json()["items"]}


def test_a_bot_reads_its_messages_as_server_sent_events(hive: Hive) -> None:
    hive.start()
    enrol, client_key = hive.key("bot"), hive.key("client")
    with hive.client(enrol) as http:
        reg = http.post(
            "/v1/bots",
            json={"name": "sse", "capabilities": ["listen"], "max_concurrency": 1, "version": "1"},
        ).json()
    bot_id, token = reg["bot_id"], reg["token"]
    with hive.client(client_key) as http:
        for i in range(2):
            http.post(
                "/v1/messages", json={"to_bot": bot_id, "body": {"i": i}, "conversation": "s"}
            )
    got: list[dict[str, Any]] = []
    path = f"/v1/bots/{bot_id}/messages"
    with hive.client(token) as http, http.stream("GET", f"{path}/stream") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data: "):
                got.append(json.loads(line.removeprefix("data: ")))
                ack = {"messages": [{"message_id": got[-1]["id"], "attempt": 1}]}
                http.post(f"{path}/ack", json=ack).raise_for_status()
            if len(got) == 2:
                break
    assert [m["body"] for m in got] == [{"i": 0}, {"i": 1}]  # the second after the first's ack
    with hive.client(client_key) as http:
        sent = http.post("/v1/messages", json={"to_bot": bot_id, "body": 3}).json()["items"][0]
    env = {**hive.env, "APIARY_KEY": token}
    read = apiary("message", "read", "--url", hive.url, "--bot", bot_id, "--ack", "--json", env=env)
    claimed, _ = json.JSONDecoder().raw_decode(read.stdout)  # then the ack's answer
    assert [m["body"] for m in claimed["messages"]] == [3]
    shown = apiary("message", "show", "--url", hive.url, sent["id"], "--json", env=env)
    assert json.loads(shown.stdout)["state"] == "acknowledged"
