"""Bots killed with kill -9 open a cascade (issue 13, the incident detector): a real
`apiary serve`, four real bots each running a task; three of them are killed. Their
leases lapse, the reaper marks them lost, and one cascade incident opens (and a bots-lost
one), citing each lost bot's ``Bot.Lost`` event, as ``GET /v1/incidents`` shows; the
remaining bot runs on."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.harness import Bot, Hive, start_bot
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

CHANGES = {"bot_lease_ttl_s": 2.0, "incidents": {"window_s": 120.0, "quiet_s": 600.0}}


def configure(admin: httpx.Client) -> None:
    current = admin.get("/v1/config")
    assert current.status_code == 200, current.text
    changed = admin.patch(
        "/v1/config",
        json={"changes": CHANGES, "reason": "incident test"},
        headers={"If-Match": current.headers["ETag"]},
    )
    assert changed.status_code == 200, changed.text


def bot_ids(client: httpx.Client, names: list[str]) -> dict[str, str] | None:
    """Each bot's id by its name, once every one of ``names`` has registered."""
    items = client.get("/v1/bots", params={"limit": 100}).json()["items"]
    found = {b["name"]: b["id"] for b in items}
    return found if set(names) <= set(found) else None


def running(client: httpx.Client) -> int:
    items = client.get("/v1/tasks", params={"state": "running"}).json()["items"]
    return len(items)


def open_incident(client: httpx.Client, rule: str) -> dict[str, Any] | None:
    items = client.get("/v1/incidents", params={"rule": rule, "state": "open"}).json()["items"]
    return client.get(f"/v1/incidents/{items[0]['id']}").json() if items else None


def test_three_bots_killed_open_one_cascade_citing_their_losses(hive: Hive) -> None:
    hive.start()
    admin = hive.client(hive.admin_key())
    configure(admin)
    names = [f"worker-{i}" for i in range(4)]
    bots: dict[str, Bot] = {}
    try:
        for name in names:
            bots[name] = start_bot(
                hive, hive.key("bot"), name, "--capabilities", "work", "--exec", "sleep 60"
            )
        ids = wait_for(lambda: bot_ids(admin, names), timeout=60, what="four bots registered")
        submitted = admin.post(
            "/v1/tasks/batch", json={"tasks": [{"type": "work", "payload": {}}] * 4}
        )
        assert submitted.status_code == 201, submitted.text
        wait_for(lambda: running(admin) == 4, timeout=30, what="a task running on each bot")

        killed = names[:3]
        for name in killed:
            bots[name].kill9()
        cascade = wait_for(
            lambda: open_incident(admin, "cascade"), timeout=30, what="a cascade incident"
        )
        assert (cascade["subject"], cascade["severity"]) == ("hive", "critical")
        lost = {e["bot_id"] for e in cascade["evidence"] if e["event"] == "Bot.Lost"}
        assert lost == {ids[name] for name in killed}
        for item in cascade["evidence"]:
            assert item["position"] > 0 and item["version"] >= 1 and item["at"]
        assert open_incident(admin, "bots-lost") is not None
        listed = admin.get("/v1/incidents", params={"rule": "cascade"}).json()["items"]
        assert len(listed) == 1  # one incident for the one cascade, however many rounds
        assert bots[names[3]].proc.poll() is None
    finally:
        admin.close()
        for bot in bots.values():
            if bot.proc.poll() is None:
                bot.kill9()
