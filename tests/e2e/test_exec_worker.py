"""docs/bots.md's worked example: a real ``apiary bot --exec "python examples/my_worker.py"``
against a real hive does tasks by the --exec contract, and, started without --messages,
is sent no messages (issue 11, findings 10 and 15)."""

from __future__ import annotations

import shlex
import sys

import pytest

from tests.e2e.harness import REPO, Hive, start_bot, task
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

WORKER = f"{shlex.quote(sys.executable)} {shlex.quote(str(REPO / 'examples' / 'my_worker.py'))}"


def test_my_worker_does_tasks_by_the_exec_contract(hive: Hive) -> None:
    hive.start()
    client = hive.client(hive.key("client"))
    bot = start_bot(hive, hive.key("bot"), "wordsmith", "--capabilities", "words", "--exec", WORKER)
    try:
        [me] = wait_for(
            lambda: client.get("/v1/bots").json()["items"], timeout=60, what="the bot registered"
        )
        assert me["takes_messages"] is False

        def submit(payload: object) -> str:
            body = {"type": "reverse", "capabilities": ["words"], "payload": payload}
            response = client.post("/v1/tasks", json=body)
            assert response.status_code == 201, response.text
            return str(response.json()["id"])

        good, loud, bad = (
            submit({"text": "small busy bees"}),
            submit({"text": "small busy bees", "shout": True}),
            submit({}),
        )

        def finished(task_id: str) -> dict[str, object]:
            return wait_for(
                lambda: (t := task(client, task_id))["state"] in ("succeeded", "failed") and t,
                timeout=60,
                what=f"task {task_id} finished",
            )

        assert finished(good)["result"] == {"words": 3, "reversed": "bees busy small"}
        assert finished(loud)["result"] == {"words": 3, "reversed": "BEES BUSY SMALL"}
        failed = finished(bad)
        assert failed["state"] == "failed"
        assert (
            failed["error"] == 'exited with status 2: my_worker: the payload needs "text", a string'
        )

        # It takes no messages: one to its capability waits for a bot that does.
        sent = client.post("/v1/messages", json={"to_capability": "words", "body": {"hi": 1}})
        assert sent.status_code == 201, sent.text
        [message] = sent.json()["items"]
        assert (message["state"], message["bot_id"]) == ("waiting", None)
        to_it = client.post("/v1/messages", json={"to_bot": me["id"], "body": {"hi": 1}})
        assert to_it.status_code == 409 and to_it.json()["type"].endswith("undeliverable")
    finally:
        assert bot.stop() == 0
