"""docs/bots.md's worked example: a real ``apiary bot --exec "python examples/my_worker.py"``
against a real hive does tasks by the --exec contract, and, started without --messages,
is sent no messages (issue 11, findings 10 and 15)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from api.bootstrap import open_hive
from api.settings import Settings
from domain.tasks import Task
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
        assert (  # 65, EX_DATAERR: bad input, failed for good on its first attempt
            failed["error"]
            == 'exited with status 65: my_worker: the payload needs "text", a string'
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


# Exits 75 (EX_TEMPFAIL) the first time it sees a payload's marker, then succeeds.
FLAKY = (
    "import json, os, sys\n"
    "marker = json.load(sys.stdin)['marker']\n"
    "if not os.path.exists(marker):\n"
    "    open(marker, 'w').close()\n"
    "    print('the mirror is busy', file=sys.stderr)\n"
    "    sys.exit(75)\n"
    "print(json.dumps({'ok': True}))\n"
)


def test_a_temporary_failure_is_tried_again_and_succeeds(hive: Hive, tmp_path: Path) -> None:
    hive.start()
    client = hive.client(hive.key("client"))
    command = f"{shlex.quote(sys.executable)} -c {shlex.quote(FLAKY)}"
    bot = start_bot(hive, hive.key("bot"), "flaky", "--capabilities", "mirror", "--exec", command)
    try:
        body = {"type": "mirror", "payload": {"marker": str(tmp_path / "seen")}}
        made = client.post("/v1/tasks", json=body)
        assert made.status_code == 201, made.text
        task_id = made.json()["id"]
        done = wait_for(
            lambda: (t := task(client, task_id))["state"] in ("succeeded", "failed", "dead") and t,
            timeout=60,
            what="the task finished",
        )
        assert (done["state"], done["result"]) == ("succeeded", {"ok": True})
    finally:
        assert bot.stop() == 0
    [scheduled] = events(hive, UUID(task_id), Task.RetryScheduled)
    assert (scheduled.attempt, scheduled.error_kind) == (1, "temporary")
    assert scheduled.error == "exited with status 75: the mirror is busy"
    assert scheduled.delay_s >= 1.0  # the default policy's first backoff


def events(hive: Hive, task_id: UUID, kind: type[Any]) -> list[Any]:
    """``task_id``'s events of class ``kind``, read from the log."""
    reader = open_hive(hive.db_url, Settings())
    try:
        return [e for e in reader.history(task_id) if isinstance(e, kind)]
    finally:
        reader.close()
