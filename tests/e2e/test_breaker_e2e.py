"""A bad bot cannot dead-letter a queue of good tasks (issue 12, the circuit breaker): a real
`apiary serve`, a bad bot (``--exec false``: every task fails, retryable) and a good one,
a queue of good tasks allowed three attempts each. Every task succeeds, none is
dead-lettered, and the bad bot is quarantined by its breaker, with the evidence, as
``GET /v1/bots/{id}`` shows."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.harness import Bot, Hive, start_bot
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

TASKS = 40
# The breaker's defaults (5 failures in a row), but a cooldown longer than the test: its
# probe (integration: tests/integration/test_breaker.py) is not what this one is about.
BREAKER = {"consecutive_failures": 5, "cooldown_s": 600.0, "max_cooldown_s": 600.0}
RETRY = {"default": {"max_attempts": 3, "initial_backoff_s": 1.0, "max_backoff_s": 4.0}}


def configure(hive: Hive, admin: httpx.Client) -> None:
    current = admin.get("/v1/config")
    assert current.status_code == 200, current.text
    changed = admin.patch(
        "/v1/config",
        json={"changes": {"breaker": BREAKER, "retry": RETRY}, "reason": "breaker test"},
        headers={"If-Match": current.headers["ETag"]},
    )
    assert changed.status_code == 200, changed.text


def registered(client: httpx.Client, name: str) -> dict[str, Any] | None:
    items = client.get("/v1/bots", params={"name": name}).json()["items"]
    return items[0] if items else None


def test_a_bad_bot_is_quarantined_and_every_good_task_succeeds_elsewhere(hive: Hive) -> None:
    hive.start()
    admin = hive.client(hive.admin_key())
    configure(hive, admin)
    bots: list[Bot] = []
    try:
        bots.append(
            start_bot(hive, hive.key("bot"), "bad", "--capabilities", "work", "--exec", "false")
        )
        bots.append(
            start_bot(
                hive,
                hive.key("bot"),
                "good",
                "--capabilities",
                "work",
                "--max-concurrency",
                "4",
                "--exec",
                "echo 1",
            )
        )
        bad = wait_for(lambda: registered(admin, "bad"), timeout=60, what="the bad bot")
        assert bad is not None
        wait_for(lambda: registered(admin, "good"), timeout=60, what="the good bot")

        submitted = admin.post(
            "/v1/tasks/batch",
            json={"tasks": [{"type": "work", "payload": {"n": i}} for i in range(TASKS)]},
        )
        assert submitted.status_code == 201, submitted.text
        ids = [t["task"]["id"] for t in submitted.json()["items"]]

        def states() -> dict[str, int]:
            out: dict[str, int] = {}
            for task_id in ids:
                state = admin.get(f"/v1/tasks/{task_id}").json().get("state")
                out[state] = out.get(state, 0) + 1
            return out

        def settled() -> dict[str, int] | None:
            now = states()
            assert not now.get("dead") and not now.get("failed"), now
            return now if now.get("succeeded") == TASKS else None

        wait_for(settled, timeout=120, interval=0.5, what=f"{TASKS} tasks succeeded")

        shown = admin.get(f"/v1/bots/{bad['id']}").json()
        assert shown["state"] == "quarantined", shown
        assert shown["state_by"] == "engine:breaker"
        breaker = shown["breaker"]
        assert breaker["state"] == "open" and breaker["cooldown_s"] == 600.0
        evidence = breaker["evidence"]
        assert evidence["rule"] == "consecutive" and evidence["consecutive_failures"] >= 5
        assert len(evidence["kinds"]) == 5
        good = admin.get("/v1/bots", params={"name": "good"}).json()["items"][0]
        assert good["state"] == "ready" and good["breaker"]["state"] == "closed"
    finally:
        for bot in bots:
            bot.stop()
        admin.close()
